"""The prediction log's cold tier: hourly Parquet partitions beside the hot table ``prediction_log``.

The API writes rows into the table (the hot tier). ``compact`` moves each closed hour of each model
into Parquet files in the artifact store (the workspace, or S3 with ``LEANOPS_ARTIFACTS=s3://…``)::

    prediction-log/<model>/<YYYY-MM-DD>/<HH>/<schema>/part-<sha256 of its record ids>.parquet

one typed column per input feature (``inputs.<name>``) beside log id, request id, record index,
time, alias, version, input hash, output, latency and requester. A model version whose records
have other columns or types gets another ``<schema>`` folder. A value that has no single Parquet
type (a column mixing text and numbers) is kept as its JSON text, listed in the file's metadata.

Crash safety: a file is durable (fsynced and renamed into place, or uploaded) before its rows are
deleted from the table, and a record is known by its request id and record index: a compaction
killed between the two steps is finished by the next run, which deletes the rows the files
already hold instead of writing them again. One compactor runs at a time (a lease). Retention deletes whole hours.

Reads over both tiers are in ``reads`` and the export in ``export``: they read the table plus the
partitions they need, only the columns they need (pyarrow: already a dependency, reads local files and
S3 objects; DuckDB would add a second engine for the same scans).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.actors import Actor
from core.errors import InvalidInput
from core.platform import leases
from core.platform.database import transaction
from core.platform.storage import TMP_PREFIX, DataStore, LocalStore, S3Store
from db.models import PredictionLog, utcnow

log = logging.getLogger("leanops.predictions.store")

ROOT = "prediction-log"
LEASE = "prediction-log-compactor"
INPUT = "inputs."
JSON_COLUMNS = b"leanops.json_columns"
META = ("log_id", "request_id", "record_index", "ts", "alias", "version", "input_hash", "output", "latency_ms",
        "requested_by", "batch_id", "record_id")  # the last two: batch scoring's rows only (``batches``)
TS = pa.timestamp("us", tz="UTC")
# A partition file is sorted by request id (time-prefixed) and cut in row groups of this many rows: the
# row groups' min/max statistics let a lookup by request id read one row group of a file, not all of it.
ROW_GROUP = 8192
FIXED = {"log_id": pa.int64(), "request_id": pa.string(), "record_index": pa.int32(), "ts": TS,
         "alias": pa.string(), "version": pa.int32(), "input_hash": pa.string(), "latency_ms": pa.float64(),
         "requested_by": pa.string()}
HOT_COLUMNS = (PredictionLog.id, PredictionLog.request_id, PredictionLog.record_index, PredictionLog.ts,
               PredictionLog.alias, PredictionLog.version, PredictionLog.input_hash, PredictionLog.inputs,
               PredictionLog.output, PredictionLog.latency_ms, PredictionLog.requested_by)

def hour_of(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_prefix(model: str, hour: datetime) -> str:
    return f"{ROOT}/{model}/{hour:%Y-%m-%d}/{hour:%H}"


def new_request_id(at: datetime | None = None) -> str:
    """A request id that starts with its time (48-bit milliseconds, then 80 random bits, 32 hex characters):
    a lookup by request id reads only the partitions of that hour."""
    return f"{int((at or utcnow()).timestamp() * 1000):012x}{uuid.uuid4().hex[:20]}"


def time_of(request_id: str) -> datetime | None:
    if len(request_id) != 32:
        return None
    try:
        at = datetime.fromtimestamp(int(request_id[:12], 16) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return at if datetime(2020, 1, 1, tzinfo=UTC) < at < utcnow() + timedelta(days=1) else None


def request_id_before(column: Any, cutoff: datetime) -> Any:
    """SQL: ``column`` is a time-prefixed request id (``new_request_id``) of a request before ``cutoff``.

    Twelve zero-padded lowercase hex digits compare as text as their numbers do. An id of another length
    says nothing of its time: False. An older 32-digit uuid4 id is read as a time only if its first digits
    happen to fall after 2020 (about 1 in 1,300)."""
    low = f"{int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1000):012x}"
    return ((func.length(column) == 32) & (column >= low)
            & (column < f"{int(cutoff.timestamp() * 1000):012x}"))

# -- rows → typed Arrow tables --------------------------------------------------------------------

def _typed(values: list[Any]) -> tuple[pa.Array, bool]:
    """One column with the type its values share, else their JSON texts (True: JSON-encoded)."""
    try:
        arr = pa.array(values, from_pandas=True)
        if not pa.types.is_nested(arr.type):
            return arr, False
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    return pa.array([None if v is None else json.dumps(v, sort_keys=True, default=str) for v in values],
                    pa.string()), True


def to_tables(rows: list[Any]) -> list[pa.Table]:
    """Hot-tier rows (``HOT_COLUMNS``) as Arrow tables, one per set of input columns and types."""
    groups: dict[tuple[str, ...], list[Any]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row.inputs)), []).append(row)
    tables = []
    for names, group in groups.items():
        columns: dict[str, pa.Array] = {
            "log_id": pa.array([r.id for r in group], pa.int64()),
            "request_id": pa.array([r.request_id for r in group], pa.string()),
            "record_index": pa.array([r.record_index for r in group], pa.int32()),
            "ts": pa.array([r.ts for r in group], TS),
            "alias": pa.array([r.alias for r in group], pa.string()),
            "version": pa.array([r.version for r in group], pa.int32()),
            "input_hash": pa.array([r.input_hash for r in group], pa.string()),
            "latency_ms": pa.array([r.latency_ms for r in group], pa.float64()),
            "requested_by": pa.array([r.requested_by for r in group], pa.string())}
        encoded = []
        output, as_json = _typed([r.output for r in group])
        columns["output"] = output
        if as_json:
            encoded.append("output")
        for name in names:
            arr, as_json = _typed([r.inputs.get(name) for r in group])
            columns[INPUT + name] = arr
            if as_json:
                encoded.append(INPUT + name)
        table = pa.table(columns)
        tables.append(table.replace_schema_metadata({JSON_COLUMNS: ",".join(encoded).encode()}))
    return tables


def schema_id(table: pa.Table) -> str:
    """Folder name for a table's columns and types: the same features and types share partitions."""
    text = ";".join(f"{f.name}:{f.type}" for f in table.schema)
    return hashlib.sha256(text.encode()).hexdigest()[:12]

# -- files ----------------------------------------------------------------------------------------

@dataclass
class Touched:
    """What reads of the partitions cost inside a ``counting()`` block: files read and folders listed."""

    files: set[str] = field(default_factory=set)
    reads: int = 0
    listings: int = 0


_touched: ContextVar[Touched | None] = ContextVar("prediction_log_touched", default=None)


@contextmanager
def counting() -> Iterator[Touched]:
    """Count the partition files read and the listings made in this block (this thread or task only)."""
    seen = Touched()
    token = _touched.set(seen)
    try:
        yield seen
    finally:
        _touched.reset(token)


def list_files(store: DataStore, prefix: str) -> list[str]:
    """Keys of the finished Parquet files under ``prefix`` (any depth)."""
    if (seen := _touched.get()) is not None:
        seen.listings += 1
    if isinstance(store, LocalStore):
        folder = store.path(prefix)
        if not folder.is_dir():
            return []
        return sorted(p.relative_to(store.root).as_posix() for p in folder.rglob("*.parquet")
                      if not p.name.startswith(TMP_PREFIX))
    if isinstance(store, S3Store):
        return sorted(key for key, _ in store.keys(prefix) if key.endswith(".parquet"))
    raise InvalidInput(f"the prediction log cannot list files in a {type(store).__name__}")


def _write_durably(store: DataStore, key: str, table: pa.Table, scratch: Path) -> int:
    """Write ``table`` to ``key`` so that it survives a crash once this returns; its size in bytes."""
    if isinstance(store, LocalStore):
        final = store.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{final.name}")
        try:
            pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP)
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return final.stat().st_size
    scratch.mkdir(parents=True, exist_ok=True)
    tmp = scratch / f"{uuid.uuid4().hex}.parquet"
    try:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP)
        store.put(key, tmp)  # S3 answers only once the whole object is stored
        return tmp.stat().st_size
    finally:
        tmp.unlink(missing_ok=True)


def read_file(store: DataStore, key: str, *, columns: list[str] | None = None,
              filters: Any = None, inputs: bool = False) -> pa.Table:
    """One partition file, only ``columns`` (those it has; with ``inputs`` also every input column it has),
    rows matching ``filters`` (a pyarrow expression)."""
    if (seen := _touched.get()) is not None:
        seen.files.add(key)
        seen.reads += 1
    return _read(store, key, columns=columns, filters=filters, inputs=inputs)


READERS = 4  # files ``read_files`` reads at once: Arrow decodes without the GIL, S3 answers in parallel


def read_files(store: DataStore, keys: list[str], *, columns: list[str] | None = None,
               filters: Any = None) -> list[pa.Table]:
    """``read_file`` of each of ``keys``, in order, several at a time: a chart's hundreds of small hourly files
    are mostly opening, footer and per-file overhead, which threads overlap. ``filters``: one expression for
    every file, or a list with one per key."""
    each = filters if isinstance(filters, list) else [filters] * len(keys)
    if len(keys) < 2:
        return [read_file(store, key, columns=columns, filters=f) for key, f in zip(keys, each, strict=True)]
    if (seen := _touched.get()) is not None:  # counted here: the readers' threads do not see this context
        seen.files.update(keys)
        seen.reads += len(keys)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(READERS, len(keys)), thread_name_prefix="leanops-partition-read") as pool:
        return list(pool.map(lambda key, f: _read(store, key, columns=columns, filters=f), keys, each))


def _read(store: DataStore, key: str, *, columns: list[str] | None, filters: Any, inputs: bool = False) -> pa.Table:
    source: Any = store.path(key) if isinstance(store, LocalStore) else store.open(key)
    schema = pq.read_schema(source)
    if not isinstance(source, Path):
        source.seek(0)
    wanted = None if columns is None else [c for c in schema.names if c in columns or inputs and c.startswith(INPUT)]
    table = pq.read_table(source, columns=wanted, filters=filters)
    encoded = (schema.metadata or {}).get(JSON_COLUMNS, b"").decode()
    return table.replace_schema_metadata({JSON_COLUMNS: encoded.encode()})


def _compacted(store: DataStore, prefix: str) -> set[tuple[str, int]]:
    """(request_id, record_index) of every record the files under ``prefix`` hold: a record's identity (a row's
    id is not: SQLite hands the ids of deleted rows out again)."""
    found: set[tuple[str, int]] = set()
    for key in list_files(store, prefix):
        table = read_file(store, key, columns=["request_id", "record_index"])
        found.update(zip(table.column("request_id").to_pylist(), table.column("record_index").to_pylist(),
                         strict=True))
    return found


def each_hour(since: datetime, until: datetime) -> Iterator[datetime]:
    hour = hour_of(since)
    while hour < until:
        yield hour
        hour += timedelta(hours=1)


def partition_files(store: DataStore, model: str, since: datetime, until: datetime) -> list[str]:
    days = sorted({h.strftime("%Y-%m-%d") for h in each_hour(since, until)})
    if len(days) > 3:  # a long range: one listing of the model, filtered by hour
        keys = list_files(store, f"{ROOT}/{model}")
    else:
        keys = [k for day in days for k in list_files(store, f"{ROOT}/{model}/{day}")]
    wanted = {h.strftime("%Y-%m-%d/%H") for h in each_hour(since, until)}
    return [k for k in keys if "/".join(k.split("/")[2:4]) in wanted]


def newest_hours(store: DataStore, models: list[str]) -> Iterator[tuple[datetime, list[str]]]:
    """(hour, its files) of ``models``, newest hour first. A local store is listed one day folder at a time,
    so a reader that stops early lists only the newest days; other stores are listed whole."""
    def by_hour(keys: list[str]) -> Iterator[tuple[datetime, list[str]]]:
        found: dict[datetime, list[str]] = {}
        for key in keys:
            hour = hour_of_key(key)
            if hour is not None:
                found.setdefault(hour, []).append(key)
        for hour in sorted(found, reverse=True):
            yield hour, found[hour]

    if not isinstance(store, LocalStore):
        yield from by_hour([k for m in models for k in list_files(store, f"{ROOT}/{m}")])
        return
    days = sorted({d.name for m in models if (folder := store.path(f"{ROOT}/{m}")).is_dir()
                   for d in folder.iterdir() if d.is_dir()}, reverse=True)
    for day in days:
        yield from by_hour([k for m in models for k in list_files(store, f"{ROOT}/{m}/{day}")])


def files_of_hour(store: DataStore, hour: datetime) -> list[str]:
    models = logged_models(store)
    return [k for m in models for k in list_files(store, hour_prefix(m, hour))]


def logged_models(store: DataStore) -> list[str]:
    if isinstance(store, LocalStore):
        folder = store.path(ROOT)
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return sorted({key.split("/")[1] for key in list_files(store, ROOT)})


def hour_of_key(key: str) -> datetime | None:
    parts = key.split("/")  # prediction-log/<model>/<day>/<hour>/<schema>/<file>
    try:
        return datetime.strptime(f"{parts[2]} {parts[3]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except (ValueError, IndexError):
        return None


def frame_of(table: pa.Table, features: list[str] | None) -> Any:
    import pandas as pd

    encoded = set(filter(None, (table.schema.metadata or {}).get(JSON_COLUMNS, b"").decode().split(",")))
    frame = table.to_pandas(types_mapper=None)
    for name in encoded & set(frame.columns):
        frame[name] = [None if v is None else json.loads(v) for v in frame[name]]
    frame.columns = [c[len(INPUT):] if c.startswith(INPUT) else c for c in frame.columns]
    if features is not None:
        for name in features:
            if name not in frame.columns:
                frame[name] = pd.NA
    return frame

# -- compaction -----------------------------------------------------------------------------------

def compact(factory: sessionmaker[Session], store: DataStore, *, actor: Actor, holder: str, scratch: Path,
            now: datetime | None = None, grace_minutes: int = 15, chunk: int = 200_000,
            lease_seconds: float = 300.0, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Move every closed hour of the hot tier into Parquet partitions; idempotent and crash-safe.

    An hour is closed once ``grace_minutes`` have passed since its end, so the last quarter hour (the
    Overview's traffic window) and late writes stay in the table. ``holder`` names this compactor
    in the lease; another compactor running raises LeaseHeld (a killed one's lease runs out after
    ``lease_seconds``; a live one renews it after every chunk).
    """
    now = now or utcnow()
    cutoff = hour_of(now - timedelta(minutes=max(grace_minutes, 15)))
    def renew() -> None:
        with transaction(factory) as session:
            leases.acquire(session, name=LEASE, holder=holder, ttl=lease_seconds)

    renew()
    done = {"partitions": 0, "files": 0, "rows": 0, "bytes": 0, "already_compacted": 0}
    try:
        while True:
            with factory() as session:
                oldest = session.execute(select(PredictionLog.model, func.min(PredictionLog.ts))
                                         .where(PredictionLog.ts < cutoff).group_by(PredictionLog.model)
                                         .order_by(PredictionLog.model).limit(1)).first()
            if oldest is None:
                break
            model, first = oldest
            hour = hour_of(first)
            _compact_hour(factory, store, model=model, hour=hour, chunk=chunk, scratch=scratch, done=done,
                          renew=renew)
            done["partitions"] += 1
            if progress is not None:
                progress(f"{model} {hour:%Y-%m-%d %H}:00 compacted ({done['rows']} rows so far)")
    finally:
        with transaction(factory) as session:
            leases.release(session, name=LEASE, holder=holder)
    if done["rows"] or done["already_compacted"]:
        with transaction(factory) as session:
            audit.record(session, actor, "predictions.compacted", ROOT, {"before": cutoff.isoformat(), **done})
    return {"before": cutoff.isoformat(), **done}


def _compact_hour(factory: sessionmaker[Session], store: DataStore, *, model: str, hour: datetime, chunk: int,
                  scratch: Path, done: dict[str, int], renew: Callable[[], None]) -> None:
    prefix = hour_prefix(model, hour)
    already = _compacted(store, prefix)  # files a killed run wrote but whose rows it did not delete
    end = hour + timedelta(hours=1)
    after = 0
    while True:
        with factory() as session:
            rows = session.execute(select(*HOT_COLUMNS).where(
                PredictionLog.model == model, PredictionLog.ts >= hour, PredictionLog.ts < end,
                PredictionLog.id > after).order_by(PredictionLog.id).limit(chunk)).all()
        if not rows:
            return
        after = rows[-1].id
        fresh = [r for r in rows if (r.request_id, r.record_index) not in already]
        for table in to_tables(fresh):
            table = table.sort_by([("request_id", "ascending"), ("record_index", "ascending")])
            # named by its records: a rerun never overwrites another file, and never writes these again
            digest = hashlib.sha256("\n".join(f"{r}:{i}" for r, i in zip(
                table.column("request_id").to_pylist(), table.column("record_index").to_pylist(),
                strict=True)).encode()).hexdigest()[:20]
            key = f"{prefix}/{schema_id(table)}/part-{digest}.parquet"
            done["bytes"] += _write_durably(store, key, table, scratch)
            done["files"] += 1
        done["rows"] += len(fresh)
        done["already_compacted"] += len(rows) - len(fresh)
        gone = [r.id for r in rows]
        renew()  # still ours (a long backlog outlives one lease period): else LeaseHeld, and nothing is deleted
        with transaction(factory) as session:  # only now do the rows leave the hot tier
            for at in range(0, len(gone), 1000):
                session.execute(delete(PredictionLog).where(PredictionLog.id.in_(gone[at: at + 1000])))


def compacted_request_ids(store: DataStore, items: list[Any]) -> set[str]:
    """Which request ids of ``items`` (``Served``) the partitions of their hours already hold (a replay skips them)."""
    by_prefix: dict[str, set[str]] = {}
    for item in items:
        by_prefix.setdefault(hour_prefix(item.model, hour_of(item.ts)), set()).add(item.request_id)
    found: set[str] = set()
    for prefix, ids in by_prefix.items():
        for key in list_files(store, prefix):
            table = read_file(store, key, columns=["request_id"], filters=pc.field("request_id").isin(list(ids)))
            found.update(table.column("request_id").to_pylist())
    return found


def drop_partitions(store: DataStore, *, before: datetime) -> int:
    """Retention: delete the files of every hour that ended before ``before``; how many files went."""
    gone = 0
    for key in list_files(store, ROOT):
        parts = key.split("/")  # prediction-log/<model>/<day>/<hour>/<schema>/<file>
        try:
            hour = datetime.strptime(f"{parts[2]} {parts[3]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
        except (ValueError, IndexError):
            continue
        if hour + timedelta(hours=1) <= before and store.delete(key):
            gone += 1
    return gone
