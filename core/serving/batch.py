"""Batch scoring: a file, a dataset version or a SQL query scored by a model version, chunk by chunk.

``score`` reads the input a chunk at a time (``batch_io``), checks and casts every chunk exactly as a predict
request is checked (the model's signature: a missing column or a value that cannot be cast is refused naming
the row and the column), predicts, and writes three things per chunk: the output rows (the input columns, or
only the id column, then ``prediction``, one ``probability_<class>`` per class for classifiers and, with
``explain``, one ``shap_<column>`` per input column and ``shap_base``), the prediction log's rows (every scored
row, under the run's batch id: ``core.platform.prediction_log.batches``) and the progress. Memory is bounded by
the chunk. Nothing is visible until the end: the log file and the output are renamed into place (or the table
transaction commits) only once every row is written, so a run killed midway leaves no partial output and can
be run again.

Every run is recorded (``batch_runs``: rows, time, version, output sha256) and audited (``batch.scored``, or
``batch.failed`` with the reason).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.accounts.auth import require
from core.actors import Actor
from core.errors import InvalidInput
from core.platform.database import transaction
from core.platform.prediction_log.batches import BatchLog, log_table
from core.platform.prediction_log.parquet import new_request_id
from core.platform.prediction_log.writer import requester
from core.platform.registry_port import CHAMPION
from core.serving import batch_runs
from core.serving.batch_io import FileOutput, Input, StoreOutput, TableOutput
from core.serving.cache import LoadedModel
from core.serving.signature import Column, Frame, InputSchema, RecordError
from core.settings import Settings
from db.models import utcnow

log = logging.getLogger("leanops.batch")
CHUNK_ROWS = 100_000
Output = FileOutput | StoreOutput | TableOutput
Progress = Callable[[float, str], None]
_RECORD = re.compile(r"^record (\d+)")


@dataclass(frozen=True)
class Scored:
    model: str
    version: int
    rows: int
    out: str
    batch_id: str
    seconds: float
    output_sha256: str
    log_key: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "rows": self.rows, "out": self.out,
                "batch_id": self.batch_id, "seconds": round(self.seconds, 3), "output_sha256": self.output_sha256}


def load_model(factory: sessionmaker[Session], settings: Settings, *, model: str, alias: str | None = None,
               version: int | None = None, keep_file: bool = False) -> LoadedModel:
    """The version ``alias`` (default champion) points at in LeanOps' record, or ``version``, loaded the way the
    API loads it: only files LeanOps vouches for (``core.serving.trust``); ``keep_file``: with the vetted model
    file's bytes (``LoadedModel.file``)."""
    from core.serving import trust
    from core.serving.cache import RecordedAliases, check_alias, load_version, resolve

    if version is None:
        alias = check_alias(alias or CHAMPION)
        version = resolve(settings.registry, RecordedAliases(factory), name=model, alias=alias)
    expected = trust.Record(factory, settings).sha256(model, version)
    return load_version(settings.registry, name=model, alias=alias or f"v{version}", version=version,
                        expected_sha256=expected, from_tag=False, keep_file=keep_file)


def score(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, model: str, source: Input,
          output: Output, alias: str | None = None, version: int | None = None, id_column: str | None = None,
          explain: bool = False, progress: Progress | None = None,
          job_id: int | None = None, schedule: str | None = None, loaded: LoadedModel | None = None) -> Scored:
    """Score every row of ``source`` with ``model`` (``alias``, default champion, or ``version``) into ``output``.

    Raises:
        PermissionDenied: the actor may not predict with this model.
        NotFound: no such model or alias.
        InvalidInput: the input does not fit the model (naming the row and the column), or is over the limits.
    """
    with transaction(factory) as session:
        require(session, actor, "predict", f"model:{model}")
    started = time.perf_counter()
    try:
        loaded = loaded or load_model(factory, settings, model=model, alias=alias, version=version)
    except BaseException:
        output.discard()
        raise
    ts = utcnow()
    batch_id = new_request_id(ts)
    with transaction(factory) as session:
        batch_runs.start(session, batch_id=batch_id, model=model, version=loaded.version,
                         alias=alias if version is None else None, source=source.label, out=output.where,
                         id_column=id_column, explain=explain, created_by=actor.name, started_at=ts, job_id=job_id,
                         schedule=schedule)
    journal = BatchLog(settings.data_store, model=model, batch_id=batch_id, ts=ts,
                       scratch=settings.home / "tmp" / "batch")
    report = progress or (lambda share, stage: None)
    rows = 0
    # A chunk's output and log rows are written on a thread while the next chunk is read and predicted (Arrow
    # writes without the GIL): one chunk's writes in flight at most, so memory stays bounded by two chunks. A
    # table destination keeps its connection on this thread.
    threaded = not isinstance(output, TableOutput)
    writes = ThreadPoolExecutor(1, thread_name_prefix="leanops-score-write")
    behind: Future[None] | None = None
    try:
        for chunk in source.chunks():
            if id_column is not None and id_column not in chunk.column_names:
                raise InvalidInput(f"id column {id_column!r} is not in {source.label}; its columns are: "
                                   f"{', '.join(chunk.column_names[:50])}")
            out, logged = _score_chunk(loaded, chunk, offset=rows, label=source.label, id_column=id_column,
                                       explain=explain, batch_id=batch_id, ts=ts, who=requester(actor))
            if behind is not None:
                behind.result()  # the previous chunk's writes: their error is this run's
            if not threaded:
                output.write(out)
            behind = writes.submit(_write, output if threaded else None, out, journal, logged)
            rows += chunk.num_rows
            share = rows / source.rows if source.rows else source.progress()
            report(min(share or 0.0, 0.99), f"scored {rows:,} rows" + (f" of {source.rows:,}" if source.rows else ""))
        if behind is not None:
            behind.result()
        if rows == 0:
            raise InvalidInput(f"{source.label} has no rows to score")
        report(0.99, f"publishing {rows:,} rows")
        log_key = journal.publish()  # the log first: what a user receives is never missing from monitoring
        digest = output.publish()
    except BaseException as exc:
        writes.shutdown(wait=True)  # nothing is written after the discard
        journal.discard()
        output.discard()
        _failed(factory, actor, batch_id=batch_id, model=model, exc=exc, seconds=time.perf_counter() - started)
        raise
    finally:
        writes.shutdown(wait=True)
    return _succeeded(factory, actor, model=model, version=loaded.version, rows=rows, batch_id=batch_id,
                      source=source.label, out=output.where, digest=digest, explain=explain, id_column=id_column,
                      job_id=job_id, schedule=schedule, seconds=time.perf_counter() - started, log_key=log_key)


def _succeeded(factory: sessionmaker[Session], actor: Actor, *, model: str, version: int, rows: int, batch_id: str,
               source: str, out: str, digest: str, explain: bool, id_column: str | None, job_id: int | None,
               schedule: str | None, seconds: float, log_key: str | None) -> Scored:
    with transaction(factory) as session:
        batch_runs.finish(session, batch_id=batch_id, status="succeeded", rows=rows, output_sha256=digest,
                          seconds=seconds)
        audit.record(session, actor, "batch.scored", f"model:{model}",
                     {"batch_id": batch_id, "version": version, "rows": rows, "source": source, "out": out,
                      "output_sha256": digest, "explain": explain, "id_column": id_column, "job_id": job_id,
                      "schedule": schedule, "seconds": round(seconds, 3)})
    return Scored(model, version, rows, out, batch_id, seconds, digest, log_key)


def _write(output: Output | None, out: pa.Table, journal: BatchLog, logged: pa.Table) -> None:
    if output is not None:
        output.write(out)
    journal.write(logged)


def _failed(factory: sessionmaker[Session], actor: Actor, *, batch_id: str, model: str, exc: BaseException,
            seconds: float) -> None:
    reason = str(exc) or type(exc).__name__
    if type(exc).__name__ == "JobCancelled":
        reason = "cancelled by a user"
    try:
        with transaction(factory) as session:
            batch_runs.finish(session, batch_id=batch_id, status="failed", error=reason, seconds=seconds)
            audit.record(session, actor, "batch.failed", f"model:{model}",
                         {"batch_id": batch_id, "reason": reason[:500]})
    except Exception:  # noqa: BLE001 - the run's own error is what the caller needs to see
        log.exception("could not record the failure of batch %s", batch_id)


def _coerce(loaded: LoadedModel, chunk: pa.Table, *, offset: int, label: str) -> Any:
    names = chunk.column_names
    schema = loaded.schema or InputSchema(tuple(Column(str(n)) for n in names), typed=False)
    frame = Frame({n: chunk.column(n).combine_chunks() for n in names}, chunk.num_rows)
    try:
        coerced = schema.coerce_frame(frame)
    except RecordError as exc:
        problems = [_RECORD.sub(lambda m: f"row {offset + int(m.group(1)) + 1:,}", str(p)) for p in exc.problems]
        raise InvalidInput(f"{label}: " + "; ".join(problems) + " (rows counted from 1, after the header)") from None
    for values in coerced.columns.values():
        # A missing text value of a file is NaN, as pandas reads files (and as training read them), not the
        # None of a JSON null: a pipeline imputing NaN sees what it saw in training.
        if values.dtype == object:
            missing = pd.isna(values)
            if missing.any():
                values[missing] = np.nan
    return schema, coerced


# Classifiers whose ``predict`` is by definition the class of the highest ``predict_proba``: one pass through the
# model gives both (a batch pays for the model once, not twice); any other predicts and then gives probabilities.
ARGMAX = frozenset({"RandomForestClassifier", "ExtraTreesClassifier", "DecisionTreeClassifier",
                    "HistGradientBoostingClassifier", "GradientBoostingClassifier", "LogisticRegression",
                    "XGBClassifier", "LGBMClassifier", "GaussianNB", "KNeighborsClassifier"})


def _predict(loaded: LoadedModel, columns: dict[str, np.ndarray]) -> Any:
    from core.serving.cache import Prediction

    final = loaded.model.steps[-1][1] if hasattr(loaded.model, "steps") else loaded.model
    if not (loaded.can_explain and type(final).__name__ in ARGMAX and hasattr(loaded.model, "classes_")):
        return loaded.predict(columns, probabilities=loaded.can_explain)
    frame = loaded.schema.frame(columns) if loaded.schema is not None else pd.DataFrame(columns)
    try:
        proba = np.asarray(loaded.model.predict_proba(frame))
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"{loaded.name} v{loaded.version} could not predict these records: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return Prediction(np.asarray(loaded.model.classes_)[proba.argmax(axis=1)], proba)


def _score_chunk(loaded: LoadedModel, chunk: pa.Table, *, offset: int, label: str, id_column: str | None,
                 explain: bool, batch_id: str, ts: Any, who: str,
                 first_index: int | None = None) -> tuple[pa.Table, pa.Table]:
    """A chunk's output rows and prediction-log rows. ``offset``: its first row's number in ``label`` (for
    messages); ``first_index``: its first row's index in the whole run (default ``offset``)."""
    schema, coerced = _coerce(loaded, chunk, offset=offset, label=label)
    began = time.perf_counter()
    try:
        result = _predict(loaded, coerced.columns)
    except InvalidInput as exc:
        raise InvalidInput(f"{label}, rows {offset + 1:,}-{offset + chunk.num_rows:,}: {exc}") from None
    took = time.perf_counter() - began
    out = chunk.select([id_column]) if id_column is not None else chunk
    out = out.append_column("prediction", pa.array(result.outputs))
    if result.probabilities is not None and loaded.classes is not None:
        for i, cls in enumerate(loaded.classes):
            out = out.append_column(f"probability_{cls}", pa.array(result.probabilities[:, i], pa.float64()))
    if explain:
        from core.serving.explain import explain as explain_rows

        why = explain_rows(loaded.model, schema.frame(coerced.columns))
        for j, name in enumerate(why.columns):
            out = out.append_column(f"shap_{name}", pa.array(why.values[:, j], pa.float64()))
        out = out.append_column("shap_base", pa.array(why.base, pa.float64()))
    ids = chunk.column(id_column).to_numpy(zero_copy_only=False) if id_column is not None else None
    logged = log_table(batch_id=batch_id, ts=ts, alias=loaded.alias, version=loaded.version, requested_by=who,
                       inputs=coerced.columns, outputs=np.asarray(result.outputs),
                       first_index=offset if first_index is None else first_index,
                       record_ids=ids, latency_ms=took * 1000 / max(chunk.num_rows, 1))
    return out, logged


# -- inputs and outputs by name (the entries' words) --------------------------------------------------

def open_source(factory: sessionmaker[Session], settings: Settings, *, path: Path | None = None,
                dataset: str | None = None, chunk_rows: int = CHUNK_ROWS, label: str | None = None) -> Input:
    """The input an entry named: a local file, or a dataset version (``NAME`` is its trusted default:
    certificate passed, not deprecated; ``NAME:V`` that version)."""
    from core.data import datasets
    from core.data.tables import TableLimits
    from core.platform.database import reading
    from core.serving import batch_io

    limits = TableLimits.of(settings)
    if (path is None) == (dataset is None):
        raise InvalidInput("score one input: a file or a dataset")
    if path is not None:
        return batch_io.file_input(path, limits=limits, chunk_rows=chunk_rows, label=label)
    assert dataset is not None
    with reading(factory) as session:
        view = datasets.resolve(session, ref=dataset)
    return batch_io.store_input(settings.data_store, view.path, label=f"dataset {view.name}:{view.version}",
                                limits=limits, chunk_rows=chunk_rows)


def output_key(batch_name: str, filename: str) -> str:
    """Where a queued run's output is kept in the data store (the download route reads it there)."""
    return f"batch-outputs/{batch_name}/{Path(filename).name}"


def sql_source(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, source: str,
               chunk_rows: int = CHUNK_ROWS) -> Input:
    """``NAME:SQL``: a query on the configured read-only source NAME (capped by the source's row limit)."""
    from core.data import sources
    from core.serving import batch_io

    name, sep, sql = source.partition(":")
    if not sep or not name.strip() or not sql.strip():
        raise InvalidInput(f"source {source[:80]!r} is not NAME:SQL, e.g. crm:SELECT * FROM customers")
    with transaction(factory) as session:
        frame = sources.query(session, settings, actor=actor, source=name.strip(), sql=sql)
    return batch_io.frame_input(frame, label=f"sql:{name.strip()}", chunk_rows=chunk_rows)
