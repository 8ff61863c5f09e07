"""A model's logged predictions, hot and compacted, to one Parquet or CSV file (``cli.py predictions export``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.actors import Actor
from core.errors import InvalidInput
from core.platform.database import transaction
from core.platform.exports import csv_safe_schema, csv_safe_table
from core.platform.prediction_log.parquet import (
    HOT_COLUMNS,
    INPUT,
    JSON_COLUMNS,
    ROOT,
    TS,
    list_files,
    partition_files,
    read_file,
    to_tables,
)
from core.platform.registry_port import SHADOW
from core.platform.storage import DataStore, LocalStore
from db.models import PredictionLog, utcnow

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
            else partition_files(store, model, low, high))
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
    csv = suffix == ".csv"  # cells a spreadsheet would run as formulas are escaped (core.platform.exports)
    writer: Any = (pacsv.CSVWriter(out, csv_safe_schema(target)) if csv
                   else pq.ParquetWriter(out, target, compression="zstd"))
    try:
        for table in [*(read_file(store, k, filters=condition) for k in keys), *hot_tables]:
            if table.num_rows:
                piece = shaped(table)
                writer.write_table(csv_safe_table(piece) if csv else piece)
                rows += piece.num_rows
    finally:
        writer.close()
    with transaction(factory) as session:
        audit.record(session, actor, "predictions.exported", f"model:{model}",
                     {"rows": rows, "since": since.isoformat() if since else None,
                      "until": until.isoformat() if until else None, "format": suffix[1:]})
    return {"path": str(out), "rows": rows}
