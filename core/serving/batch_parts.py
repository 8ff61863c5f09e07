"""Batch scoring of Parquet on S3, partition by partition: on the Dask cluster ``LEANOPS_DASK_ADDRESS`` names,
else in this process (issue 25 item 4). A team that outgrows one machine points the same command at a cluster.

Input ``s3://bucket/prefix/`` is every Parquet object under the prefix, in key order (names starting with '.'
or '_' are skipped, as pyarrow, Spark and Dask skip them); ``s3://bucket/key.parquet`` is that one object.
Every object's footer is read and checked against the table limits before any of its data is; a partition is
up to ``PART_ROWS`` rows of one object's row groups.

Output ``s3://bucket/prefix/`` receives one folder per run, ``<model>-<YYYYmmddTHHMMSSZ>-<batch id>/``, holding
``part-00000.parquet``… (the columns ``core.serving.batch`` writes) and ``_SUCCESS``, a JSON manifest of the run
(model, version, batch id, rows, every part's rows and sha256) put last: read a run's folder once its
``_SUCCESS`` is there (the convention of Spark and Hadoop). Each partition is scored and written by a worker
under the prefix's hidden staging folder ``.tmp-<batch id>/``; once every part is written they are copied into
the run's folder (server-side) and the manifest is put. A run that fails or is cancelled deletes what it wrote;
one killed before publishing leaves only the hidden staging folder; killed while copying, a folder with no
``_SUCCESS``. The run's output sha256 is the manifest's, which names every part's.

The prediction log gets every row as ``batch.score`` logs them: each partition's log rows come back with its
result and this process writes them into the run's one log file, published before the output.

Workers run LeanOps' image (the same code and libraries: ``dask worker tcp://scheduler:8786``). The model goes to
them as the bytes of its vetted skops file with their sha256; each worker checks the hash and loads the file
with LeanOps' trusted types, as serving does: nothing is unpickled from the model. They get the workspace's S3
endpoint and credentials with the run (LEANOPS_S3_*; with no access key set, their own credential chain).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy.orm import Session, sessionmaker

from core.actors import Actor
from core.errors import InvalidInput, NotFound, StoreUnavailable
from core.serving.cache import LoadedModel
from core.serving.signature import InputSchema
from core.settings import Settings

PART_ROWS = 1_000_000
SUCCESS = "_SUCCESS"
CONNECT_TIMEOUT_S = 10
IN_FLIGHT_PER_THREAD = 2  # partitions queued per worker thread: the cluster stays busy, memory stays bounded


def is_s3(where: str | None) -> bool:
    return bool(where) and str(where).startswith("s3://")


def split_url(url: str, *, what: str) -> tuple[str, str]:
    """``s3://bucket/rest`` → (bucket, rest). InvalidInput for anything else."""
    bucket, _, rest = url[5:].partition("/") if is_s3(url) else ("", "", "")
    if not bucket or ".." in rest.split("/"):
        raise InvalidInput(f"{what} {url[:200]!r} is not s3://bucket/prefix/ or s3://bucket/key.parquet")
    return bucket, rest


@dataclass(frozen=True)
class S3Access:
    """The workspace's S3 endpoint and credentials (LEANOPS_S3_*), as pyarrow's S3 file system takes them."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str

    @classmethod
    def of(cls, settings: Settings) -> S3Access:
        secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else ""
        return cls(settings.s3_endpoint_url, settings.s3_access_key_id, secret, settings.s3_region)

    def filesystem(self) -> Any:  # a pyarrow.fs.S3FileSystem
        from urllib.parse import urlsplit

        import pyarrow.fs as pafs

        options: dict[str, Any] = {"region": self.region or "us-east-1"}
        if self.endpoint_url:
            url = urlsplit(self.endpoint_url)
            options |= {"endpoint_override": url.netloc or url.path, "scheme": url.scheme or "https"}
        if self.access_key_id:
            options |= {"access_key": self.access_key_id, "secret_key": self.secret_access_key}
        return pafs.S3FileSystem(connect_timeout=5, request_timeout=30,
                                 retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=5), **options)

    def failed(self, exc: BaseException, doing: str) -> StoreUnavailable:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return StoreUnavailable(f"S3{where} could not {doing}: {str(exc).splitlines()[0] if str(exc) else exc!r} "
                                "(check the URL, LEANOPS_S3_ENDPOINT_URL and the credentials)")


@dataclass(frozen=True)
class Part:
    """Rows ``start``… of one object (``path``: bucket/key) read as its ``row_groups``; ``offset`` is the first
    row's index in the whole input (its record index in the prediction log)."""

    index: int
    path: str
    row_groups: tuple[int, ...]
    start: int
    offset: int
    rows: int


def plan(access: S3Access, url: str, *, limits: Any, part_rows: int = PART_ROWS) -> list[Part]:
    """The partitions of the input ``url``, every object's footer checked against ``limits`` first.

    Raises:
        InvalidInput: a bad URL, an object that is not Parquet or is over the limits.
        NotFound: no Parquet object there.
        StoreUnavailable: S3 cannot be reached.
    """
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from core.data import tables

    bucket, key = split_url(url, what="input")
    fs = access.filesystem()
    try:
        if url.endswith("/") or not key:
            root = f"{bucket}/{key}".rstrip("/")
            found = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
            paths = sorted(info.path for info in found if info.type == pafs.FileType.File
                           and info.path.lower().endswith(".parquet")
                           and not any(p[:1] in "._" for p in info.path[len(root) + 1:].split("/")))
        else:
            info = fs.get_file_info(f"{bucket}/{key}")
            paths = [info.path] if info.type == pafs.FileType.File else []
    except OSError as exc:
        raise access.failed(exc, f"list {url[:200]}") from None
    if not paths:
        raise NotFound(f"no Parquet object at {url[:200]} (a prefix ends with '/'; names starting with '.' or "
                       "'_' are skipped)")
    parts: list[Part] = []
    offset = 0
    for path in paths:
        label = f"s3://{path}"
        try:
            with fs.open_input_file(path) as fh:
                meta = pq.ParquetFile(fh).metadata
        except OSError as exc:
            raise access.failed(exc, f"read {label}") from None
        except pa.ArrowException as exc:
            raise InvalidInput(f"{label} is not a readable Parquet file: {str(exc).splitlines()[0]}") from None
        tables._check_footer(meta, label, limits)  # noqa: SLF001 - the readers' own limit check
        groups: list[int] = []
        start = rows = 0
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if groups and rows + n > part_rows:
                parts.append(Part(len(parts), path, tuple(groups), start, offset, rows))
                offset, start, groups, rows = offset + rows, start + rows, [], 0
            groups.append(g)
            rows += n
        if rows:
            parts.append(Part(len(parts), path, tuple(groups), start, offset, rows))
            offset += rows
    return parts


# -- the model, as workers get it ----------------------------------------------------------------------

@dataclass(frozen=True)
class ModelFile:
    """A version's vetted skops file (bytes and sha256) and what LeanOps read from its MLmodel file."""

    name: str
    alias: str
    version: int
    data: bytes = field(repr=False)
    sha256: str
    schema: InputSchema | None
    classes: list[Any] | None

    @classmethod
    def of(cls, loaded: LoadedModel) -> ModelFile:
        """What a worker needs of ``loaded``, loaded with ``keep_file`` (its vetted skops file's bytes)."""
        assert loaded.file is not None, "load the version with keep_file=True"
        return cls(loaded.name, loaded.alias, loaded.version, loaded.file, hashlib.sha256(loaded.file).hexdigest(),
                   loaded.schema, loaded.classes)


_MODELS: dict[str, LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def _loaded(model: ModelFile) -> LoadedModel:
    """The model on a worker: hash checked, loaded with LeanOps' trusted types, kept for the run's next parts."""
    from core.serving import trust

    with _MODELS_LOCK:
        if (found := _MODELS.get(model.sha256)) is not None:
            return found
        label = f"{model.name} v{model.version}"
        if hashlib.sha256(model.data).hexdigest() != model.sha256:
            raise trust.Refused(f"{label} could not be loaded on a worker: its file changed on the way")
        with tempfile.TemporaryDirectory(prefix="leanops-model-") as tmp:
            path = Path(tmp) / "model.skops"
            path.write_bytes(model.data)
            fitted = trust.load_skops(path, label=label)
        loaded = LoadedModel(name=model.name, alias=model.alias, version=model.version, model=fitted,
                             schema=model.schema, flavor="sklearn", classes=model.classes)
        _MODELS.clear()  # one run's model at a time per worker process
        _MODELS[model.sha256] = loaded
        return loaded


# -- one partition (on a worker, or here) ------------------------------------------------------------

@dataclass(frozen=True)
class Job:
    """What every partition of a run needs besides its own rows."""

    access: S3Access
    staging: str  # bucket/prefix/.tmp-<batch id>
    batch_id: str
    ts: datetime
    id_column: str | None
    explain: bool
    who: str
    chunk_rows: int
    stop: str | None = None  # on a cluster: the name of the Dask event a failed run sets (``_run``)


@dataclass(frozen=True)
class Written:
    index: int
    rows: int
    path: str
    sha256: str


def score_part(part: Part, job: Job, model: ModelFile) -> tuple[Written, pa.Table]:
    """Score one partition into its staged part file; (what was written, its prediction-log rows)."""
    import pyarrow.parquet as pq

    from core.data import tables
    from core.serving.batch import _score_chunk
    from core.serving.batch_io import FileOutput

    loaded = _loaded(model)
    fs = job.access.filesystem()
    label = f"s3://{part.path}"
    logs: list[pa.Table] = []
    done = 0
    with tempfile.TemporaryDirectory(prefix="leanops-part-") as tmp:
        out = FileOutput(Path(tmp) / "part.parquet")
        try:
            with fs.open_input_file(part.path) as fh:
                parquet = pq.ParquetFile(fh, pre_buffer=True)  # S3: each row group in a few coalesced reads
                if sum(parquet.metadata.row_group(g).num_rows for g in part.row_groups) != part.rows:
                    raise InvalidInput(f"{label} changed while it was being scored; run the scoring again")
                columns = [c for c in parquet.schema_arrow.names if not tables.INDEX_COLUMN.match(c)]
                if job.id_column is not None and job.id_column not in columns:
                    raise InvalidInput(f"id column {job.id_column!r} is not in {label}; its columns are: "
                                       f"{', '.join(columns[:50])}")
                for batch in parquet.iter_batches(batch_size=job.chunk_rows, row_groups=list(part.row_groups),
                                                  columns=columns):
                    chunk = pa.Table.from_batches([batch])
                    scored, logged = _score_chunk(loaded, chunk, offset=part.start + done, label=label,
                                                  id_column=job.id_column, explain=job.explain,
                                                  batch_id=job.batch_id, ts=job.ts, who=job.who,
                                                  first_index=part.offset + done)
                    out.write(scored)
                    logs.append(logged)
                    done += chunk.num_rows
            digest = out.publish()
            staged = f"{job.staging}/part-{part.index:05d}.parquet"
            with out.final.open("rb") as src, fs.open_output_stream(staged) as sink:
                shutil.copyfileobj(src, sink, 8 << 20)  # a multipart upload: the object appears whole, at close
            if job.stop is not None and _stopped(job.stop):
                # the run failed while this part was being scored (a running task cannot be cancelled), and
                # may have cleared its staging folder already: the part is this task's to delete
                fs.delete_file(staged)
        except OSError as exc:
            raise job.access.failed(exc, f"score {label}") from None
        finally:
            out.discard()
    return Written(part.index, done, staged, digest), pa.concat_tables(logs, promote_options="permissive")


def _stopped(name: str) -> bool:
    from distributed import Event

    return bool(Event(name).is_set())


def _run(parts: list[Part], job: Job, model: ModelFile, *, address: str) -> Generator[tuple[Written, pa.Table]]:
    """Every partition's result as it is done: here one after another, or on the cluster at ``address``."""
    if not address:
        for part in parts:
            yield score_part(part, job, model)
        return
    from dask.distributed import Client, Event, as_completed

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise StoreUnavailable(f"the Dask scheduler at {address} (LEANOPS_DASK_ADDRESS) is unreachable: {exc}; "
                               "start the cluster or unset the variable to score in this process") from None
    with client:
        shared = client.scatter(model, broadcast=True)  # once per worker, not once per partition
        width = max(2, IN_FLIGHT_PER_THREAD * sum(client.nthreads().values()))
        queued = iter(parts)

        def submit(part: Part) -> Any:
            return client.submit(score_part, part, job, shared, key=f"leanops-score-{job.batch_id}-{part.index}",
                                 pure=False)

        running = as_completed([submit(p) for p in islice(queued, width)], loop=client.loop)
        try:
            for future in running:
                result = future.result()  # a partition's error (bad rows, S3) is the run's
                if (following := next(queued, None)) is not None:
                    running.add(submit(following))
                yield result
        except BaseException:  # failed, cancelled, or abandoned by the caller (GeneratorExit)
            if job.stop is not None:
                Event(job.stop, client=client).set()  # before the caller clears the staging folder
            raise
        finally:
            client.cancel(list(running.futures))


# -- the run ------------------------------------------------------------------------------------------

def score_s3(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, model: str, source: str,
             out: str, alias: str | None = None, version: int | None = None, id_column: str | None = None,
             explain: bool = False, progress: Callable[[float, str], None] | None = None,
             job_id: int | None = None, schedule: str | None = None, chunk_rows: int = 100_000) -> Any:
    """Score every row of the S3 input ``source`` into a new run folder under the S3 prefix ``out``.

    Returns a ``core.serving.batch.Scored`` (``out``: the run's folder URL).

    Raises:
        PermissionDenied, NotFound, InvalidInput: as ``batch.score``; InvalidInput also for a bad URL.
        StoreUnavailable: S3 or the Dask scheduler cannot be reached.
    """
    from core.accounts.auth import require
    from core.data.tables import TableLimits
    from core.platform.database import transaction
    from core.platform.prediction_log.batches import BatchLog
    from core.platform.prediction_log.parquet import new_request_id
    from core.platform.prediction_log.writer import requester
    from core.serving import batch, batch_runs
    from db.models import utcnow

    with transaction(factory) as session:
        require(session, actor, "predict", f"model:{model}")
    out_bucket, out_prefix = split_url(out, what="output")
    if not out.endswith("/"):
        raise InvalidInput(f"output {out[:200]!r} must be an S3 prefix ending in '/': each run writes a folder "
                           "of part files there")
    access = S3Access.of(settings)
    started = time.perf_counter()
    parts = plan(access, source, limits=TableLimits.of(settings))
    total = sum(p.rows for p in parts)
    loaded = batch.load_model(factory, settings, model=model, alias=alias, version=version, keep_file=True)
    shipped = ModelFile.of(loaded)
    ts = utcnow()
    batch_id = new_request_id(ts)
    folder = f"{out_bucket}/{out_prefix}{model}-{ts.strftime('%Y%m%dT%H%M%SZ')}-{batch_id}"
    job = Job(access, f"{out_bucket}/{out_prefix}.tmp-{batch_id}", batch_id, ts, id_column, explain,
              requester(actor), max(chunk_rows, 1), stop=f"leanops-stop-{batch_id}" if settings.dask_address else None)
    with transaction(factory) as session:
        batch_runs.start(session, batch_id=batch_id, model=model, version=loaded.version,
                         alias=alias if version is None else None, source=source, out=f"s3://{folder}/",
                         id_column=id_column, explain=explain, created_by=actor.name, started_at=ts, job_id=job_id,
                         schedule=schedule)
    journal = BatchLog(settings.data_store, model=model, batch_id=batch_id, ts=ts,
                       scratch=settings.home / "tmp" / "batch")
    report = progress or (lambda share, stage: None)
    where = "on the Dask cluster" if settings.dask_address else "in this process"
    report(0.0, f"scoring {total:,} rows in {len(parts)} partition(s) {where}")
    written: list[Written] = []
    fs = access.filesystem()
    try:
        with closing(_run(parts, job, shipped, address=settings.dask_address)) as results:
            for done, logged in results:
                journal.write(logged)
                written.append(done)
                rows = sum(w.rows for w in written)
                report(min(rows / max(total, 1), 0.99), f"scored {rows:,} of {total:,} rows "
                                                        f"({len(written)} of {len(parts)} partitions)")
        rows = sum(w.rows for w in written)
        if rows == 0:
            raise InvalidInput(f"{source[:200]} has no rows to score")
        report(0.99, f"publishing {rows:,} rows")
        log_key = journal.publish()  # the log first: what a user receives is never missing from monitoring
        digest = _publish(fs, access, sorted(written, key=lambda w: w.index), folder=folder,
                          manifest={"model": model, "version": loaded.version, "batch_id": batch_id, "rows": rows,
                                    "source": source, "created_at": ts.isoformat()})
    except BaseException as exc:
        journal.discard()
        _remove(fs, f"{folder}/{SUCCESS}", folder)
        batch._failed(factory, actor, batch_id=batch_id, model=model, exc=exc,  # noqa: SLF001 - one record
                      seconds=time.perf_counter() - started)
        raise
    finally:
        _remove(fs, job.staging)
    seconds = time.perf_counter() - started
    return batch._succeeded(factory, actor, model=model, version=loaded.version, rows=rows,  # noqa: SLF001
                            batch_id=batch_id, source=source, out=f"s3://{folder}/", digest=digest, explain=explain,
                            id_column=id_column, job_id=job_id, schedule=schedule, seconds=seconds, log_key=log_key)


def _publish(fs: Any, access: S3Access, written: list[Written], *, folder: str, manifest: dict[str, Any]) -> str:
    """Copy the staged parts into the run's folder and put ``_SUCCESS`` last; the manifest's sha256."""
    parts = []
    try:
        for w in written:
            final = f"{folder}/part-{w.index:05d}.parquet"
            fs.copy_file(w.path, final)  # server-side
            parts.append({"file": final.rsplit("/", 1)[1], "rows": w.rows, "sha256": w.sha256})
        body = json.dumps(manifest | {"parts": parts}, indent=2).encode()
        with fs.open_output_stream(f"{folder}/{SUCCESS}") as sink:
            sink.write(body)
    except OSError as exc:
        raise access.failed(exc, f"publish s3://{folder}/") from None
    return hashlib.sha256(body).hexdigest()


def _remove(fs: Any, *paths: str) -> None:
    """Delete objects and folders (best effort: a failure here must not hide the run's own error)."""
    import pyarrow.fs as pafs

    for path in paths:
        try:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.File:
                fs.delete_file(path)
            elif info.type == pafs.FileType.Directory:
                fs.delete_dir(path)
        except OSError:
            pass
