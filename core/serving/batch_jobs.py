"""Batch scoring as a queued job (the Registry page's *Score a file*, ``POST /v1/models/{name}/batch-jobs``) and
as a scheduled one (a model's ``batch`` policy: source → destination on a cron).

A queued job scores an uploaded file (staged under the workspace's ``tmp/batch-inputs``; the job's params name
the staged file, never a path) or a dataset version, into the data store (``batch-outputs/job-<id>/…``), from
where the download route hands it out once the job succeeded. A scheduled job (params ``{"model",
"schedule"}``) reads the model's policy when it runs: ``source`` and ``destination`` as ``core.policy.Batch``
documents them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session, sessionmaker

from core.actors import Actor
from core.errors import InvalidInput, NotFound
from core.platform import job_queue
from core.platform.storage import DataStore
from core.serving import batch, batch_io, batch_parts, batch_runs
from core.settings import Settings

STAGED = "tmp/batch-inputs"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def stage_upload(settings: Settings, *, filename: str, data: IO[bytes], max_bytes: int) -> str:
    """Keep an uploaded file for a queued job; its staged name (InvalidInput when over ``max_bytes``)."""
    name = f"{uuid.uuid4().hex}-{_SAFE.sub('_', Path(filename).name)[-120:] or 'upload'}"
    folder = settings.home / STAGED
    folder.mkdir(parents=True, exist_ok=True)
    path, size = folder / name, 0
    try:
        with path.open("wb") as out:
            for block in iter(lambda: data.read(1 << 20), b""):
                size += len(block)
                if size > max_bytes:
                    raise InvalidInput(f"the file is over {max_bytes // 2**20} MB (LEANOPS_MAX_UPLOAD_MB)")
                out.write(block)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return name


def _staged(settings: Settings, name: str) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise InvalidInput(f"staged input {name[:80]!r} is not a staged file name")
    return settings.home / STAGED / name


def queue(session: Session, settings: Settings, *, actor: Actor, model: str, staged: str | None = None,
          filename: str | None = None, dataset: str | None = None, alias: str | None = None,
          version: int | None = None, id_column: str | None = None, explain: bool = False,
          out_format: str = "parquet") -> job_queue.JobView:
    """Queue scoring of a staged upload or a dataset version. Returns the job (poll it; download when done)."""
    from core.serving.inference import check_name

    check_name(model)
    if (staged is None) == (dataset is None):
        raise InvalidInput("score one input: an uploaded file or a dataset")
    if out_format not in ("parquet", "csv"):
        raise InvalidInput(f"format {out_format!r} is not parquet or csv")
    params: dict[str, Any] = {"model": model, "alias": alias, "version": version, "id_column": id_column,
                              "explain": explain, "format": out_format}
    if staged is not None:
        _staged(settings, staged)
        params |= {"staged": staged, "filename": Path(filename or staged).name[:200]}
    else:
        params["dataset"] = dataset
    return job_queue.JobView.of(job_queue.enqueue(session, actor=actor, kind=job_queue.BATCH_SCORE.name,
                                                  params=params))


def run(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, job_id: int, params: dict[str, Any],
        progress: Callable[..., None]) -> dict[str, Any]:
    """The ``batch.score`` job: a queued upload or dataset, or a model's scheduled batch policy."""
    if params.get("schedule"):
        return _scheduled(factory, settings, actor=actor, job_id=job_id, params=params, progress=progress)
    model = str(params["model"])
    staged = params.get("staged")
    stem = Path(str(params.get("filename") or params.get("dataset") or "input")).stem.replace(":", "-") or "input"
    name = f"{stem}-scored.{params.get('format') or 'parquet'}"
    out = batch_io.StoreOutput(settings.data_store, output_key(job_id, name), settings.home / "tmp" / "batch")
    try:
        if staged:
            source = batch.open_source(factory, settings, path=_staged(settings, str(staged)),
                                       label=str(params.get("filename") or staged))
        else:
            source = batch.open_source(factory, settings, dataset=str(params["dataset"]))
        scored = batch.score(factory, settings, actor=actor, model=model, source=source, output=out,
                             alias=params.get("alias"), version=params.get("version"),
                             id_column=params.get("id_column"), explain=bool(params.get("explain")),
                             progress=lambda share, stage: progress(share, stage), job_id=job_id)
    except BaseException:
        out.discard()
        raise
    finally:
        if staged:
            _staged(settings, str(staged)).unlink(missing_ok=True)
    return scored.as_dict() | {"download": f"/v1/models/{model}/batch-jobs/{job_id}/output"}


def output_key(job_id: int, filename: str) -> str:
    return batch.output_key(f"job-{job_id}", filename)


def output_of(session: Session, store: DataStore, *, model: str, job_id: int) -> tuple[str, str]:
    """(store key, file name) of a succeeded batch job's output; NotFound or InvalidInput saying why not."""
    view = job_queue.get(session, job_id)
    if view.kind != job_queue.BATCH_SCORE.name or view.params.get("model") != model:
        raise NotFound(f"job {job_id} is not a batch scoring job of model {model!r}")
    if view.status != "succeeded":
        raise InvalidInput(f"job {job_id} is {view.status}: its output can be downloaded once it succeeded")
    run_ = batch_runs.of_job(session, job_id=job_id)
    if run_ is None or run_.status != "succeeded" or not store.exists(run_.out):
        raise NotFound(f"job {job_id} has no output in the store (it went to {run_.out if run_ else 'nowhere'})")
    return run_.out, Path(run_.out).name


# -- scheduled: the model's batch policy ------------------------------------------------------------------

def _scheduled(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, job_id: int,
               params: dict[str, Any], progress: Callable[..., None]) -> dict[str, Any]:
    model = str(params["model"])
    rules = settings.policies.rules_for(model).batch
    if not rules.source or not rules.destination:
        raise InvalidInput(f"model {model!r} has no batch.source and batch.destination in its policy")
    if batch_parts.is_s3(rules.source):
        scored = batch_parts.score_s3(factory, settings, actor=actor, model=model, source=rules.source,
                                      out=rules.destination, id_column=rules.id_column, explain=rules.explain,
                                      job_id=job_id, schedule=str(params["schedule"]),
                                      progress=lambda share, stage: progress(share, stage))
        return scored.as_dict() | {"source": rules.source}
    source = _policy_source(factory, settings, actor=actor, source=rules.source)
    output = _policy_destination(settings, model=model, destination=rules.destination)
    scored = batch.score(factory, settings, actor=actor, model=model, source=source, output=output,
                         id_column=rules.id_column, explain=rules.explain, job_id=job_id,
                         schedule=str(params["schedule"]), progress=lambda share, stage: progress(share, stage))
    return scored.as_dict() | {"source": source.label}


def _policy_source(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, source: str) -> batch_io.Input:
    kind, _, rest = source.partition(":")
    if kind == "dataset":
        return batch.open_source(factory, settings, dataset=rest)
    if kind == "sql":
        return batch.sql_source(factory, settings, actor=actor, source=rest)
    if kind == "folder":
        folder = Path(rest)
        files = sorted((p for p in folder.glob("*") if p.suffix.lower() in (".csv", ".parquet") and p.is_file()
                        and not p.name.startswith(".")), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
        if not files:
            raise NotFound(f"batch.source folder {rest!r} has no CSV or Parquet file")
        return batch.open_source(factory, settings, path=files[-1])
    raise InvalidInput(f"batch.source {source[:80]!r} is not dataset:NAME, sql:SOURCE:SQL, folder:/path or "
                       "s3://bucket/prefix/")


def destinations(settings: Settings) -> dict[str, str]:
    """The write-enabled SQL destinations (LEANOPS_BATCH_DESTINATIONS): name → URL."""
    if settings.batch_destinations is None:
        return {}
    try:
        found = json.loads(settings.batch_destinations.get_secret_value())
    except ValueError:
        raise InvalidInput("LEANOPS_BATCH_DESTINATIONS is not a JSON object of NAME: URL") from None
    if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
        raise InvalidInput("LEANOPS_BATCH_DESTINATIONS is not a JSON object of NAME: URL")
    return {str(k): v for k, v in found.items()}


def _policy_destination(settings: Settings, *, model: str, destination: str) -> batch.Output:
    from db.models import utcnow

    kind, _, rest = destination.partition(":")
    if kind == "folder":
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        return batch_io.FileOutput(Path(rest) / f"{model}-{stamp}.parquet")
    if kind == "table":
        name, sep, table = rest.partition("/")
        urls = destinations(settings)
        if not sep or name not in urls:
            known = ", ".join(sorted(urls)) or "none is configured (LEANOPS_BATCH_DESTINATIONS)"
            raise InvalidInput(f"batch.destination {destination!r} names no write-enabled destination; "
                               f"destinations: {known}")
        return batch_io.TableOutput(urls[name], table, label=f"table:{name}/{table}")
    raise InvalidInput(f"batch.destination {destination[:80]!r} is not folder:/path or table:NAME/TABLE")
