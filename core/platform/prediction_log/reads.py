"""Reads of the prediction log over both tiers: the hot table and the Parquet partitions (``parquet``).

A reader of the table alone sees nothing of a compacted hour, so every read here takes the workspace's
``data_store`` (where the partitions are) and reads the table plus the partitions it needs, only the
columns it needs. The challenger's shadow rows (alias ``shadow``) are not the model's traffic: every
read but ``shadow_pairs`` leaves them out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from sqlalchemy import and_, case, desc, func, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from core.platform.prediction_log.parquet import (
    HOT_COLUMNS,
    INPUT,
    JSON_COLUMNS,
    META,
    ROOT,
    TS,
    each_hour,
    files_of_hour,
    frame_of,
    hour_of,
    hour_prefix,
    list_files,
    logged_models,
    newest_hours,
    partition_files,
    read_file,
    read_files,
    time_of,
    to_tables,
)
from core.platform.registry_port import CHAMPION, SHADOW
from core.platform.storage import DataStore, LocalStore
from db.models import Feedback, PredictionError, PredictionLog, utcnow


@dataclass(frozen=True)
class PredictionView:
    """One logged record, as a page or a test reads it."""

    request_id: str
    record_index: int
    ts: datetime
    model: str
    alias: str
    version: int
    input_hash: str
    inputs: dict[str, Any]
    output: Any
    latency_ms: float


def _view(r: dict[str, Any]) -> PredictionView:
    return PredictionView(r["request_id"], r["record_index"], r["ts"], r["model"], r["alias"], r["version"],
                          r["input_hash"], r["inputs"], r["output"], r["latency_ms"])


def by_request(session: Session, *, request_id: str, store: DataStore) -> list[PredictionView]:
    """The records of one request, in the hot table or already compacted."""
    return [_view(r) for r in lookup(session, store, request_id=request_id)]


class Logged(NamedTuple):
    """What a label needs of a logged record: its place in the request, its model, who asked."""

    record_index: int
    model: str
    requested_by: str | None


def logged_records(session: Session, store: DataStore, *, request_id: str) -> list[Logged]:
    """The records of one request (not the challenger's shadow rows), in order: three columns of the hot
    table, else the partitions of its hour (labels often come late, after the hour is compacted)."""
    hot = session.execute(select(PredictionLog.record_index, PredictionLog.model, PredictionLog.requested_by)
                          .where(PredictionLog.request_id == request_id, PredictionLog.alias != SHADOW)
                          .order_by(PredictionLog.record_index)).all()
    if hot:
        return [Logged(*row) for row in hot]
    return [Logged(r["record_index"], r["model"], r["requested_by"])
            for r in lookup(session, store, request_id=request_id)]


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
    for key in partition_files(store, model, since, until):
        frames.append(frame_of(read_file(store, key, columns=columns, filters=condition, inputs=everything),
                                features))
    hot = _execute(source, select(*HOT_COLUMNS).where(PredictionLog.model == model, PredictionLog.ts >= since,
                                                      PredictionLog.ts < until, PredictionLog.alias != SHADOW)
                   .order_by(PredictionLog.id))
    for table in to_tables(list(hot)):
        table = table.select([c for c in table.schema.names if c in columns or everything and c.startswith(INPUT)])
        frames.append(frame_of(table, features))
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
            for row in frame_of(table, None).to_dict("records")]


def lookup(factory: sessionmaker[Session] | Session, store: DataStore, *, request_id: str) -> list[dict[str, Any]]:
    """The records of one request (each: request_id, record_index, ts, model, alias, version, input_hash,
    inputs, output, latency_ms, requested_by), from the hot table or else the partitions of its hour.
    ``factory`` may be an open session (a caller inside its unit of work)."""
    hot = _execute(factory, select(*HOT_COLUMNS, PredictionLog.model)
                   .where(PredictionLog.request_id == request_id, PredictionLog.alias != SHADOW)
                   .order_by(PredictionLog.record_index))
    if hot:
        return [_hot_record(r) for r in hot]
    at = time_of(request_id)
    if at is not None:  # logged at the time its id was made (the API makes both as a request arrives)
        hours = list(each_hour(at - timedelta(minutes=1), at + timedelta(minutes=5)))
        keys = [k for h in hours for k in files_of_hour(store, h)]
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


def recent(source: sessionmaker[Session] | Session, *, store: DataStore, model: str | None = None,
           limit: int = 20) -> list[PredictionView]:
    """The ``limit`` newest logged predictions (of ``model``, or of every model), newest first. The hot table
    holds the newest hours, so the partitions are read only when it has fewer than ``limit`` rows (after a
    quiet hour everything may be compacted); then newest hour first, each file's ``ts`` column first and
    whole rows only for the newest ones."""
    query = (select(*HOT_COLUMNS, PredictionLog.model).where(PredictionLog.alias != SHADOW)
             .order_by(PredictionLog.ts.desc(), PredictionLog.id.desc()).limit(limit))
    if model:
        query = query.where(PredictionLog.model == model)
    out = [_hot_record(r) for r in _execute(source, query)]
    condition = pc.field("alias") != SHADOW
    # newest day folders first: a quiet hour costs the listing of a day or two, not of the whole history
    hours = newest_hours(store, [model] if model else logged_models(store)) if len(out) < limit else iter(())
    for _hour, keys in hours:
        need = limit - len(out)
        if need <= 0:
            break
        times = pa.chunked_array([read_file(store, k, columns=["ts"], filters=condition).column("ts") for k in keys],
                                 TS)
        if not len(times):
            continue
        newest = pc.select_k_unstable(times, need, sort_keys=[("dummy", "descending")])
        cut = pc.min(pc.take(times, newest))
        wanted = condition & (pc.field("ts") >= cut)
        found = [r for k in keys for r in _records(read_file(store, k, filters=wanted), k.split("/")[1])]
        out.extend(sorted(found, key=lambda r: r["ts"], reverse=True)[:need])
    return [_view(r) for r in sorted(out, key=lambda r: r["ts"], reverse=True)[:limit]]


def count(source: sessionmaker[Session] | Session, *, store: DataStore, model: str | None = None,
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
    total = _execute(source, query)[0][0] or 0
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
    for model in logged_models(store):
        for key in partition_files(store, model, since, until):
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


class Label(NamedTuple):
    record_index: int
    label: Any
    created_by: str


def labels_of(session: Session, *, request_id: str) -> list[Label]:
    """The stored ground-truth labels of a request, in record order, with who sent each."""
    return [Label(*row) for row in session.execute(
        select(Feedback.record_index, Feedback.label, Feedback.created_by)
        .where(Feedback.request_id == request_id).order_by(Feedback.record_index))]


def errors_since(session: Session, *, since: datetime) -> dict[str, int]:
    """Refused requests per model logged at or after ``since``."""
    return dict(session.execute(select(PredictionError.model, func.count()).where(PredictionError.ts >= since)
                                .group_by(PredictionError.model)).all())


def errors_by_kind_since(session: Session, *, since: datetime) -> dict[str, dict[str, int]]:
    """Refused requests per model logged at or after ``since``, split by whose fault: ``client`` (4xx: the
    request was wrong) and ``model`` (5xx: the server or the model failed)."""
    kind = case((PredictionError.status < 500, "client"), else_="model")
    out: dict[str, dict[str, int]] = {}
    for model, which, n in session.execute(select(PredictionError.model, kind, func.count())
                                           .where(PredictionError.ts >= since)
                                           .group_by(PredictionError.model, kind)):
        out.setdefault(model, {"client": 0, "model": 0})[which] = n
    return out


def labelled(session: Session, store: DataStore, *, model: str, version: int | None = None, limit: int | None = None,
             since: datetime | None = None) -> list[tuple[datetime, int, Any, Any]]:
    """(prediction time, version, prediction, label) of the labelled predictions of ``model`` (``version``),
    newest first (at most ``limit``; none predicted before ``since``): feedback joined with the hot table,
    plus ``labelled_compacted``. With a ``limit`` the partitions are read newest hour first only until the
    window is full, so the cost follows what is shown, not how long labels have been arriving."""
    query = (select(PredictionLog.ts, PredictionLog.version, PredictionLog.output, Feedback.label)
             .join(Feedback, and_(Feedback.request_id == PredictionLog.request_id,
                                  Feedback.record_index == PredictionLog.record_index))
             .where(PredictionLog.model == model, Feedback.model == model, PredictionLog.alias != SHADOW)
             .order_by(desc(PredictionLog.ts), desc(PredictionLog.id)))
    if version is not None:
        query = query.where(PredictionLog.version == version)
    if since is not None:
        query = query.where(PredictionLog.ts >= since)
    if limit is not None:
        query = query.limit(limit)
    hot = [tuple(row) for row in session.execute(query)]
    both = hot + labelled_compacted(session, store, model=model, version=version, limit=limit, since=since,
                                    newer=hot)
    both.sort(key=lambda row: row[0], reverse=True)
    return both[:limit] if limit is not None else both


# A label's prediction was logged between a minute before and five minutes after its request id's time (the
# API makes the id as the request arrives and logs the records as it answers); ``lookup`` reads the same span.
_BEFORE, _AFTER = timedelta(minutes=1), timedelta(minutes=5)
_PAGE = 2000  # feedback rows fetched at a time, newest request first


def labelled_compacted(session: Session, store: DataStore, *, model: str, version: int | None = None,
                       limit: int | None = None, since: datetime | None = None,
                       newer: Sequence[tuple[Any, ...]] = ()) -> list[tuple[datetime, int, Any, Any]]:
    """(prediction time, version, prediction, label) of the labelled predictions of ``model`` that left the
    hot table: feedback rows whose prediction is not in the table, newest request first (request ids begin
    with their time), looked up in the partitions of their hours only, four columns each.

    With a ``limit`` the walk stops once ``limit`` rows (counting ``newer``, the hot table's) are found and no
    older hour can hold a newer one; ``since`` stops it at that time. Labels of requests whose id carries no
    time (made before time-prefixed ids) are looked up in all of the model's partitions, and only when the
    walk reaches its end without filling the window."""
    base = (select(Feedback.request_id, Feedback.record_index, Feedback.label).where(Feedback.model == model)
            .where(~select(PredictionLog.id).where(PredictionLog.request_id == Feedback.request_id).exists())
            .order_by(desc(Feedback.request_id), Feedback.record_index))
    found: list[tuple[datetime, int, Any, Any]] = []
    untimed: dict[tuple[str, int], Any] = {}
    condition = pc.field("alias") != SHADOW
    if version is not None:
        condition = condition & (pc.field("version") == version)
    if since is not None:
        condition = condition & (pc.field("ts") >= pa.scalar(since, TS))
    shown = sorted((row[0] for row in newer), reverse=True)
    after: tuple[str, int] | None = None
    while True:
        query = base
        if after is not None:
            query = query.where((Feedback.request_id < after[0])
                                | ((Feedback.request_id == after[0]) & (Feedback.record_index > after[1])))
        page = session.execute(query.limit(_PAGE)).all()
        if not page:
            break
        after = (page[-1].request_id, page[-1].record_index)
        by_hour: dict[datetime, dict[tuple[str, int], Any]] = {}
        for rid, index, label in page:
            at = time_of(rid)
            if at is None:
                untimed[(rid, index)] = label
            else:
                by_hour.setdefault(hour_of(at), {})[(rid, index)] = label
        ahead: list[tuple[list[str], dict[tuple[str, int], Any], Any]] = []  # unbounded: a page's hours at once
        for hour in sorted(by_hour, reverse=True):
            if limit is not None and _full(shown, found, limit, before=hour + timedelta(hours=1) + _AFTER):
                return found
            if since is not None and hour + timedelta(hours=1) + _AFTER <= since:
                found.extend(_labelled_in_each(store, ahead))
                return _with_untimed(store, model, found, untimed, condition, shown=shown, limit=limit)
            labels = by_hour[hour]
            ids = sorted({rid for rid, _ in labels})
            spans = {hour_of(t) for rid in ids if (at := time_of(rid)) is not None for t in (at - _BEFORE, at + _AFTER)}
            keys = [k for h in sorted(spans) for k in list_files(store, hour_prefix(model, h))]
            wanted = condition & pc.field("request_id").isin(ids)
            if limit is None:  # every hour is read anyway: read the page's files together (``read_files``)
                ahead.append((keys, labels, wanted))
            else:  # newest hour first, stopping once the window is full
                found.extend(_labelled_in(store, keys, labels, wanted))
        found.extend(_labelled_in_each(store, ahead))
        if len(page) < _PAGE:
            break
    return _with_untimed(store, model, found, untimed, condition, shown=shown, limit=limit)


def _with_untimed(store: DataStore, model: str, found: list[tuple[datetime, int, Any, Any]],
                  untimed: dict[tuple[str, int], Any], condition: Any, *, shown: list[datetime], limit: int | None
                  ) -> list[tuple[datetime, int, Any, Any]]:
    """``found`` plus the labelled predictions of ``untimed`` (ids without a time: every partition of the
    model), when the window is not full yet."""
    if untimed and (limit is None or not _full(shown, found, limit, before=None)):
        ids = sorted({rid for rid, _ in untimed})
        found.extend(_labelled_in(store, list_files(store, f"{ROOT}/{model}"), untimed,
                                  condition & pc.field("request_id").isin(ids)))
    return found


def _full(shown: list[datetime], found: list[tuple[datetime, int, Any, Any]], limit: int, *,
          before: datetime | None) -> bool:
    """Whether ``limit`` rows are found and none logged before ``before`` could be newer than the limit-th."""
    if len(shown) + len(found) < limit:
        return False
    if before is None:
        return True
    cut = sorted([*shown, *(row[0] for row in found)], reverse=True)[limit - 1]
    return before <= cut


def _labelled_in(store: DataStore, keys: list[str], labels: dict[tuple[str, int], Any], condition: Any
                 ) -> list[tuple[datetime, int, Any, Any]]:
    return _labelled_in_each(store, [(keys, labels, condition)])


def _labelled_in_each(store: DataStore, hours: list[tuple[list[str], dict[tuple[str, int], Any], Any]]
                      ) -> list[tuple[datetime, int, Any, Any]]:
    """The labelled predictions in each hour's (files, labels, condition), in order, its files all read together."""
    keys = [key for files, _, _ in hours for key in files]
    conditions = [condition for files, _, condition in hours for _ in files]
    owners = [labels for files, labels, _ in hours for _ in files]
    tables = read_files(store, keys, columns=["request_id", "record_index", "ts", "version", "output"],
                        filters=conditions)
    out = []
    for table, labels in zip(tables, owners, strict=True):
        if not table.num_rows:
            continue
        outputs = table.column("output").to_pylist()  # plain Python values: no pandas frame per small file
        if "output" in (table.schema.metadata or {}).get(JSON_COLUMNS, b"").decode().split(","):
            outputs = [None if v is None else json.loads(v) for v in outputs]
        for rid, index, ts, version, output in zip(table.column("request_id").to_pylist(),
                                                   table.column("record_index").to_pylist(),
                                                   table.column("ts").to_pylist(), table.column("version").to_pylist(),
                                                   outputs, strict=True):
            record = (rid, int(index))
            if record in labels:
                out.append((ts, int(version), _plain(output), labels[record]))
    return out


def shadow_pairs(session: Session, store: DataStore, *, model: str, champion: int, challenger: int,
                 since: datetime | None, limit: int) -> list[tuple[datetime, str, Any, float, Any, float, Any]]:
    """(time, request id, challenger output, challenger ms, champion output, champion ms, label or None) of the
    newest ``limit`` records the challenger scored in shadow since ``since``, paired with the champion's answer
    to the same record: from the hot table and the partitions (the challenger's rows first, then the
    champion's rows of those request ids only, four columns each)."""
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
            else partition_files(store, model, since, utcnow() + timedelta(hours=1)))
    wanted = ["request_id", "record_index", "ts", "output", "latency_ms"]
    side = (pc.field("alias") == SHADOW) & (pc.field("version") == challenger)
    if since is not None:
        side = side & (pc.field("ts") >= pa.scalar(since, TS))
    scored = [t for k in keys if (t := read_file(store, k, columns=wanted, filters=side)).num_rows]
    if not scored:
        return _newest(out, limit)
    shadows = frame_of(pa.concat_tables(scored, promote_options="permissive"), None)
    shadows = shadows.sort_values("ts", ascending=False, kind="stable").head(limit)
    ids = pa.array(shadows["request_id"].unique())
    answered = (pc.field("alias") == CHAMPION) & (pc.field("version") == champion) & pc.field("request_id").isin(ids)
    mains = [t for k in keys if (t := read_file(store, k, columns=wanted, filters=answered)).num_rows]
    if not mains:
        return _newest(out, limit)
    pairs = shadows.merge(frame_of(pa.concat_tables(mains, promote_options="permissive"), None),
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
