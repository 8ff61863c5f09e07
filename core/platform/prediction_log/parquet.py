"""The prediction log's two tiers: the hot table ``prediction_log`` and hourly Parquet partitions.

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

Reads (a window of a model for drift, the predictions that got feedback, a request id, an export)
read the table plus the partitions they need, only the columns they need (pyarrow: already a
dependency, reads local files and S3 objects; DuckDB would add a second engine for the same scans).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import and_, delete, desc, func, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.actors import Actor
from core.errors import InvalidInput
from core.platform import leases
from core.platform.database import transaction
from core.platform.registry_port import CHAMPION, SHADOW
from core.platform.storage import TMP_PREFIX, DataStore, LocalStore, S3Store
from db.models import PredictionLog, utcnow

log = logging.getLogger("leanops.predictions.store")

ROOT = "prediction-log"
LEASE = "prediction-log-compactor"
INPUT = "inputs."
JSON_COLUMNS = b"leanops.json_columns"
META = ("log_id", "request_id", "record_index", "ts", "alias", "version", "input_hash", "output", "latency_ms",
        "requested_by")
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


def _time_of(request_id: str) -> datetime | None:
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


# -- rows → typed Arrow tables -------------------------------------------------------------------

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


# -- files ---------------------------------------------------------------------------------------

def list_files(store: DataStore, prefix: str) -> list[str]:
    """Keys of the finished Parquet files under ``prefix`` (any depth)."""
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


# -- compaction ----------------------------------------------------------------------------------

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


# -- reads ---------------------------------------------------------------------------------------

def _hours(since: datetime, until: datetime) -> Iterator[datetime]:
    hour = hour_of(since)
    while hour < until:
        yield hour
        hour += timedelta(hours=1)


def _partition_files(store: DataStore, model: str, since: datetime, until: datetime) -> list[str]:
    days = sorted({h.strftime("%Y-%m-%d") for h in _hours(since, until)})
    if len(days) > 3:  # a long range: one listing of the model, filtered by hour
        keys = list_files(store, f"{ROOT}/{model}")
    else:
        keys = [k for day in days for k in list_files(store, f"{ROOT}/{model}/{day}")]
    wanted = {h.strftime("%Y-%m-%d/%H") for h in _hours(since, until)}
    return [k for k in keys if "/".join(k.split("/")[2:4]) in wanted]


def _frame_of(table: pa.Table, features: list[str] | None) -> Any:
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


def window(source: sessionmaker[Session] | Session, store: DataStore, *, model: str, since: datetime,
           until: datetime | None = None, features: list[str] | None = None,
           meta: tuple[str, ...] = ("ts", "version", "output")) -> Any:
    """A model's logged predictions with ``since <= ts < until``: ``meta`` columns plus ``features``
    (all inputs when None), from the partitions (only those columns read) and the hot table (read through
    ``source``: a session factory, or a caller's open session)."""
    import pandas as pd

    until = until or utcnow() + timedelta(seconds=1)
    # Only these columns are read (all inputs when ``features`` is None, but never the ids and hashes a
    # drift check does not use: at a million rows they would double its memory).
    columns = list(dict.fromkeys([*meta, "ts", *(INPUT + f for f in features or [])]))
    everything = features is None
    frames = []
    condition = ((pc.field("ts") >= pa.scalar(since, TS)) & (pc.field("ts") < pa.scalar(until, TS))
                 & (pc.field("alias") != SHADOW))  # the challenger's shadow rows are not the model's traffic
    for key in _partition_files(store, model, since, until):
        frames.append(_frame_of(read_file(store, key, columns=columns, filters=condition, inputs=everything),
                                features))
    hot = _execute(source, select(*HOT_COLUMNS).where(PredictionLog.model == model, PredictionLog.ts >= since,
                                                      PredictionLog.ts < until, PredictionLog.alias != SHADOW)
                   .order_by(PredictionLog.id))
    for table in to_tables(list(hot)):
        table = table.select([c for c in table.schema.names if c in columns or everything and c.startswith(INPUT)])
        frames.append(_frame_of(table, features))
    keep = [*meta, *(features or [])]
    if not frames:
        return pd.DataFrame(columns=keep if features is not None else list(meta))
    out = pd.concat(frames, ignore_index=True, sort=False, copy=False)
    frames.clear()  # the pieces go before the sort copies the whole
    out = out.sort_values("ts", kind="stable", ignore_index=True)
    if features is not None:
        out = out[[c for c in keep if c in out.columns]]
    else:
        out = out[[c for c in out.columns if c in meta or c not in META]]
    return out


def _execute(source: sessionmaker[Session] | Session, query: Any) -> list[Any]:
    """Rows of ``query`` in ``source``: an open session (a caller inside its unit of work) or a factory."""
    if isinstance(source, Session):
        return list(source.execute(query).all())
    with source() as session:
        return list(session.execute(query).all())


def _hot_record(r: Any) -> dict[str, Any]:
    return {"request_id": r.request_id, "record_index": r.record_index, "ts": r.ts, "model": r.model,
            "alias": r.alias, "version": r.version, "input_hash": r.input_hash, "inputs": r.inputs,
            "output": r.output, "latency_ms": r.latency_ms, "requested_by": r.requested_by}


def _records(table: pa.Table, model: str) -> list[dict[str, Any]]:
    """Partition rows as the same dicts ``_hot_record`` makes of table rows."""
    return [{"request_id": row["request_id"], "record_index": int(row["record_index"]),
             "ts": row["ts"].to_pydatetime(), "model": model, "alias": row["alias"],
             "version": int(row["version"]), "input_hash": row["input_hash"],
             "inputs": {k: _plain(v) for k, v in row.items() if k not in META},
             "output": _plain(row["output"]), "latency_ms": float(row["latency_ms"]),
             "requested_by": row["requested_by"]}
            for row in _frame_of(table, None).to_dict("records")]


def lookup(factory: sessionmaker[Session] | Session, store: DataStore, *, request_id: str) -> list[dict[str, Any]]:
    """The records of one request (each: request_id, record_index, ts, model, alias, version, input_hash,
    inputs, output, latency_ms, requested_by), from the hot table or else the partitions of its hour.
    ``factory`` may be an open session (a caller inside its unit of work)."""
    hot = _execute(factory, select(*HOT_COLUMNS, PredictionLog.model)
                   .where(PredictionLog.request_id == request_id, PredictionLog.alias != SHADOW)
                   .order_by(PredictionLog.record_index))
    if hot:
        return [_hot_record(r) for r in hot]
    at = _time_of(request_id)
    if at is not None:  # logged at the time its id was made (the API makes both as a request arrives)
        hours = list(_hours(at - timedelta(minutes=1), at + timedelta(minutes=5)))
        keys = [k for h in hours for k in _keys_of_hour(store, h)]
    else:  # an id from before time-prefixed ids: every partition
        keys = list_files(store, ROOT)
    found = []
    wanted = (pc.field("request_id") == request_id) & (pc.field("alias") != SHADOW)
    for key in _holding(store, keys, request_id):  # every column only of the file that holds the request
        found.extend(_records(read_file(store, key, filters=wanted), key.split("/")[1]))
    return sorted(found, key=lambda r: r["record_index"])


def _holding(store: DataStore, keys: list[str], request_id: str) -> list[str]:
    """The files among ``keys`` that hold ``request_id``. Files are sorted by request id in row groups with
    min/max statistics, so each file costs its footer and at most one row group of one column; local files
    are scanned as one dataset (in parallel)."""
    match = pc.field("request_id") == request_id
    if isinstance(store, LocalStore):
        if not keys:
            return []
        by_path = {str(store.path(k)): k for k in keys}
        hits = ds.dataset(list(by_path), format="parquet").to_table(columns=["__filename"], filter=match)
        return sorted({by_path[name] for name in hits.column("__filename").to_pylist()})
    return [k for k in keys if read_file(store, k, columns=["request_id"], filters=match).num_rows]


def _hour_of_key(key: str) -> datetime | None:
    parts = key.split("/")  # prediction-log/<model>/<day>/<hour>/<schema>/<file>
    try:
        return datetime.strptime(f"{parts[2]} {parts[3]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except (ValueError, IndexError):
        return None


def recent(factory: sessionmaker[Session] | Session, store: DataStore, *, model: str | None = None,
           limit: int = 20) -> list[dict[str, Any]]:
    """The ``limit`` newest logged predictions (of ``model``, or of every model), newest first, as ``lookup``'s
    dicts. The hot table holds the newest hours, so the partitions are read only when it has fewer than
    ``limit`` rows (after a quiet hour everything may be compacted); then newest hour first, each file's
    ``ts`` column first and whole rows only for the newest ones."""
    query = (select(*HOT_COLUMNS, PredictionLog.model).where(PredictionLog.alias != SHADOW)
             .order_by(PredictionLog.ts.desc(), PredictionLog.id.desc()).limit(limit))
    if model:
        query = query.where(PredictionLog.model == model)
    out = [_hot_record(r) for r in _execute(factory, query)]
    by_hour: dict[datetime, list[str]] = {}
    if len(out) < limit:
        for key in list_files(store, f"{ROOT}/{model}" if model else ROOT):
            hour = _hour_of_key(key)
            if hour is not None:
                by_hour.setdefault(hour, []).append(key)
    condition = pc.field("alias") != SHADOW
    for hour in sorted(by_hour, reverse=True):
        need = limit - len(out)
        if need <= 0:
            break
        keys = by_hour[hour]
        times = pa.chunked_array([read_file(store, k, columns=["ts"], filters=condition).column("ts") for k in keys],
                                 TS)
        if not len(times):
            continue
        newest = pc.select_k_unstable(times, need, sort_keys=[("dummy", "descending")])
        cut = pc.min(pc.take(times, newest))
        wanted = condition & (pc.field("ts") >= cut)
        found = [r for k in keys for r in _records(read_file(store, k, filters=wanted), k.split("/")[1])]
        out.extend(sorted(found, key=lambda r: r["ts"], reverse=True)[:need])
    return sorted(out, key=lambda r: r["ts"], reverse=True)[:limit]


def count(factory: sessionmaker[Session] | Session, store: DataStore, *, model: str | None = None,
          version: int | None = None) -> int:
    """How many predictions (of ``model``, of its ``version``) are logged, hot and compacted; the challenger's
    shadow rows are not counted. Local files are counted as one dataset: a row group whose statistics settle
    the condition (one alias, one version) is counted from its footer, unread."""
    query = select(func.count()).select_from(PredictionLog).where(PredictionLog.alias != SHADOW)
    condition = pc.field("alias") != SHADOW
    if model:
        query = query.where(PredictionLog.model == model)
    if version is not None:
        query = query.where(PredictionLog.version == version)
        condition = condition & (pc.field("version") == version)
    total = _execute(factory, query)[0][0] or 0
    keys = list_files(store, f"{ROOT}/{model}" if model else ROOT)
    if isinstance(store, LocalStore) and keys:
        return int(total + ds.dataset([str(store.path(k)) for k in keys], format="parquet").count_rows(
            filter=condition))
    for key in keys:
        total += read_file(store, key, columns=["alias"], filters=condition).num_rows
    return int(total)


def per_request(factory: sessionmaker[Session] | Session, store: DataStore, *, since: datetime, until: datetime,
                limit: int) -> list[tuple[str, str, float, int]]:
    """(model, request_id, latency ms, records) of every request logged with ``since <= ts < until`` (at most
    ``limit``), hot and compacted, reading four columns of the partitions of those hours."""
    hot = _execute(factory, select(PredictionLog.model, PredictionLog.request_id, func.max(PredictionLog.latency_ms),
                                   func.count())
                   .where(PredictionLog.ts >= since, PredictionLog.ts < until, PredictionLog.alias != SHADOW)
                   .group_by(PredictionLog.model, PredictionLog.request_id).limit(limit))
    out = {(m, rid): (float(latency), int(rows)) for m, rid, latency, rows in hot}
    read_hot = set(out)
    condition = ((pc.field("ts") >= pa.scalar(since, TS)) & (pc.field("ts") < pa.scalar(until, TS))
                 & (pc.field("alias") != SHADOW))
    for model in _models(store):
        for key in _partition_files(store, model, since, until):
            if len(out) >= limit:
                break
            table = read_file(store, key, columns=["request_id", "latency_ms"], filters=condition)
            grouped = table.group_by("request_id").aggregate([("latency_ms", "max"), ("latency_ms", "count")])
            for rid, latency, rows in zip(*(grouped.column(c).to_pylist() for c in
                                             ("request_id", "latency_ms_max", "latency_ms_count")), strict=True):
                if (model, rid) in read_hot:
                    continue  # compacted since the table was read: counted there
                seen_latency, seen_rows = out.get((model, rid), (0.0, 0))  # one request split over two files
                out[(model, rid)] = (max(seen_latency, latency), seen_rows + rows)
    return [(m, rid, latency, rows) for (m, rid), (latency, rows) in list(out.items())[:limit]]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _keys_of_hour(store: DataStore, hour: datetime) -> list[str]:
    models = _models(store)
    return [k for m in models for k in list_files(store, hour_prefix(m, hour))]


def _models(store: DataStore) -> list[str]:
    if isinstance(store, LocalStore):
        folder = store.path(ROOT)
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return sorted({key.split("/")[1] for key in list_files(store, ROOT)})


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


def labelled(session: Session, store: DataStore, *, model: str, version: int | None = None, limit: int | None = None
             ) -> list[tuple[datetime, int, Any, Any]]:
    """(prediction time, version, prediction, label) of the labelled predictions of ``model`` (``version``),
    newest first (at most ``limit``): feedback joined with the hot table, plus ``labelled_compacted``."""
    from db.models import Feedback

    query = (select(PredictionLog.ts, PredictionLog.version, PredictionLog.output, Feedback.label)
             .join(Feedback, and_(Feedback.request_id == PredictionLog.request_id,
                                  Feedback.record_index == PredictionLog.record_index))
             .where(PredictionLog.model == model, Feedback.model == model, PredictionLog.alias != SHADOW)
             .order_by(desc(PredictionLog.ts), desc(PredictionLog.id)))
    if version is not None:
        query = query.where(PredictionLog.version == version)
    both = [tuple(row) for row in session.execute(query)] + labelled_compacted(session, store, model=model,
                                                                                version=version)
    both.sort(key=lambda row: row[0], reverse=True)
    return both[:limit] if limit is not None else both


def labelled_compacted(session: Session, store: DataStore, *, model: str, version: int | None = None
                       ) -> list[tuple[datetime, int, Any, Any]]:
    """(prediction time, version, prediction, label) of the labelled predictions of ``model`` that left the
    hot table: feedback rows whose prediction is not in the table, looked up in the partitions of their
    request ids' hours (all of the model's partitions for ids without a time), reading four columns."""
    from db.models import Feedback

    labels = {(r.request_id, r.record_index): r.label for r in session.execute(
        select(Feedback.request_id, Feedback.record_index, Feedback.label).where(Feedback.model == model)
        .where(~select(PredictionLog.id).where(PredictionLog.request_id == Feedback.request_id).exists()))}
    if not labels:
        return []
    ids = sorted({rid for rid, _ in labels})
    hours = {_time_of(rid) for rid in ids}
    if None in hours:
        keys = list_files(store, f"{ROOT}/{model}")
    else:
        keys = sorted({k for at in hours if at is not None
                       for h in _hours(at - timedelta(hours=1), at + timedelta(hours=1))
                       for k in list_files(store, hour_prefix(model, h))})
    out = []
    condition = pc.field("request_id").isin(ids) & (pc.field("alias") != SHADOW)
    if version is not None:
        condition = condition & (pc.field("version") == version)
    for key in keys:
        table = read_file(store, key, columns=["request_id", "record_index", "ts", "version", "output"],
                          filters=condition)
        frame = _frame_of(table, None)
        for row in frame.itertuples(index=False):
            record = (row.request_id, int(row.record_index))
            if record in labels:
                out.append((row.ts.to_pydatetime(), int(row.version), _plain(row.output), labels[record]))
    return out


def shadow_pairs(session: Session, store: DataStore, *, model: str, champion: int, challenger: int,
                 since: datetime | None, limit: int) -> list[tuple[datetime, str, Any, float, Any, float, Any]]:
    """(time, request id, challenger output, challenger ms, champion output, champion ms, label or None) of the
    newest ``limit`` records the challenger scored in shadow since ``since``, paired with the champion's answer
    to the same record: from the hot table and the partitions (the challenger's rows first, then the
    champion's rows of those request ids only, four columns each)."""
    from sqlalchemy.orm import aliased

    from db.models import Feedback

    shadow, main = aliased(PredictionLog), aliased(PredictionLog)
    query = (select(shadow.ts, shadow.request_id, shadow.output, shadow.latency_ms, main.output, main.latency_ms,
                    Feedback.label, shadow.record_index)
             .join(main, and_(main.request_id == shadow.request_id, main.record_index == shadow.record_index,
                              main.model == model, main.alias == CHAMPION, main.version == champion))
             .outerjoin(Feedback, and_(Feedback.request_id == shadow.request_id,
                                       Feedback.record_index == shadow.record_index, Feedback.model == model))
             .where(shadow.model == model, shadow.alias == SHADOW, shadow.version == challenger)
             .order_by(desc(shadow.ts), desc(shadow.id)).limit(limit))
    if since is not None:
        query = query.where(shadow.ts >= since)
    # keyed by record: one that a compactor is moving is in a file before it leaves the table (seen twice)
    out: dict[tuple[str, int], Any] = {(row[1], row[7]): tuple(row[:7]) for row in session.execute(query)}
    keys = (list_files(store, f"{ROOT}/{model}") if since is None
            else _partition_files(store, model, since, utcnow() + timedelta(hours=1)))
    wanted = ["request_id", "record_index", "ts", "output", "latency_ms"]
    side = (pc.field("alias") == SHADOW) & (pc.field("version") == challenger)
    if since is not None:
        side = side & (pc.field("ts") >= pa.scalar(since, TS))
    scored = [t for k in keys if (t := read_file(store, k, columns=wanted, filters=side)).num_rows]
    if not scored:
        return _newest(out, limit)
    shadows = _frame_of(pa.concat_tables(scored, promote_options="permissive"), None)
    shadows = shadows.sort_values("ts", ascending=False, kind="stable").head(limit)
    ids = pa.array(shadows["request_id"].unique())
    answered = (pc.field("alias") == CHAMPION) & (pc.field("version") == champion) & pc.field("request_id").isin(ids)
    mains = [t for k in keys if (t := read_file(store, k, columns=wanted, filters=answered)).num_rows]
    if not mains:
        return _newest(out, limit)
    pairs = shadows.merge(_frame_of(pa.concat_tables(mains, promote_options="permissive"), None),
                          on=["request_id", "record_index"], suffixes=("", "_main"))
    labels: dict[tuple[str, int], Any] = {}
    unique = pairs["request_id"].unique().tolist()
    for at in range(0, len(unique), 1000):
        labels.update({(r.request_id, r.record_index): r.label for r in session.execute(
            select(Feedback.request_id, Feedback.record_index, Feedback.label)
            .where(Feedback.model == model, Feedback.request_id.in_(unique[at: at + 1000])))})
    for row in pairs.itertuples(index=False):
        record = (row.request_id, int(row.record_index))
        out.setdefault(record, (row.ts.to_pydatetime(), row.request_id, _plain(row.output), float(row.latency_ms),
                                _plain(row.output_main), float(row.latency_ms_main), labels.get(record)))
    return _newest(out, limit)


def _newest(pairs: dict[Any, Any], limit: int) -> list[Any]:
    return sorted(pairs.values(), key=lambda row: row[0], reverse=True)[:limit]


# -- export --------------------------------------------------------------------------------------

EXPORT_META = {"request_id": pa.string(), "record_index": pa.int32(), "ts": TS, "version": pa.int32()}


def _common(types: list[pa.DataType]) -> pa.DataType:
    """One type for a column seen with ``types`` in different partitions: null gives way, ints widen to
    float, anything else mixed becomes text."""
    known = {t for t in types if not pa.types.is_null(t)}
    if not known:
        return pa.string()
    if len(known) == 1:
        return known.pop()
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in known):
        return pa.float64()
    return pa.string()


def export(factory: sessionmaker[Session], store: DataStore, *, actor: Actor, model: str, out: Path,
           since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
    """Write every logged prediction of ``model`` with ``since <= ts < until`` to ``out`` (.parquet or .csv):
    request_id, record_index, ts, version, one column per input (named as the input; ``inputs.NAME`` if the
    name is one of these), output. Reads one partition at a time, so memory stays bounded by a partition."""
    import pyarrow.csv as pacsv

    from core.accounts.auth import require

    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InvalidInput(f"--out {out.name!r}: the export is written as .parquet or .csv, by its file name")
    if since is not None and until is not None and since >= until:
        raise InvalidInput(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    with transaction(factory) as session:
        require(session, actor, "read", f"model:{model}")
    low = since or datetime(1970, 1, 1, tzinfo=UTC)
    high = until or utcnow() + timedelta(days=1)
    keys = (list_files(store, f"{ROOT}/{model}") if since is None or until is None
            else _partition_files(store, model, low, high))
    with factory() as session:
        hot = session.execute(select(*HOT_COLUMNS).where(PredictionLog.model == model, PredictionLog.ts >= low,
                                                         PredictionLog.ts < high, PredictionLog.alias != SHADOW)
                              .order_by(PredictionLog.id)).all()
    hot_tables = to_tables(list(hot))
    # one schema for the file: every input any partition has, each with the one type its values share
    seen: dict[str, list[pa.DataType]] = {"output": []}
    for schema in [pq.read_schema(store.path(k) if isinstance(store, LocalStore) else store.open(k)) for k in keys] \
            + [t.schema for t in hot_tables]:
        encoded = set((schema.metadata or {}).get(JSON_COLUMNS, b"").decode().split(","))
        for f in schema:
            if f.name == "output" or f.name.startswith(INPUT):
                seen.setdefault(f.name, []).append(pa.string() if f.name in encoded else f.type)
    inputs = sorted(n for n in seen if n.startswith(INPUT))
    named = {n: (n if n[len(INPUT):] in EXPORT_META or n[len(INPUT):] == "output" else n[len(INPUT):])
             for n in inputs}
    target = pa.schema([*(pa.field(n, t) for n, t in EXPORT_META.items()),
                        *(pa.field(named[n], _common(seen[n])) for n in inputs),
                        pa.field("output", _common(seen["output"]))])
    condition = ((pc.field("ts") >= pa.scalar(low, TS)) & (pc.field("ts") < pa.scalar(high, TS))
                 & (pc.field("alias") != SHADOW))

    sources = {**{n: n for n in EXPORT_META}, "output": "output", **{named[n]: n for n in inputs}}

    def shaped(table: pa.Table) -> pa.Table:
        return pa.Table.from_arrays([pc.cast(table.column(sources[f.name]), f.type)
                                     if sources[f.name] in table.schema.names else pa.nulls(table.num_rows, f.type)
                                     for f in target], schema=target)

    out.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    writer: Any = (pq.ParquetWriter(out, target, compression="zstd") if suffix == ".parquet"
                   else pacsv.CSVWriter(out, target))
    try:
        for table in [*(read_file(store, k, filters=condition) for k in keys), *hot_tables]:
            if table.num_rows:
                piece = shaped(table)
                writer.write_table(piece)
                rows += piece.num_rows
    finally:
        writer.close()
    with transaction(factory) as session:
        audit.record(session, actor, "predictions.exported", f"model:{model}",
                     {"rows": rows, "since": since.isoformat() if since else None,
                      "until": until.isoformat() if until else None, "format": suffix[1:]})
    return {"path": str(out), "rows": rows}
