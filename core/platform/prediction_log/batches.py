"""Batch scoring's rows in the prediction log: straight into the columnar (Parquet) tier.

A batch of a million rows is not a million requests: its rows skip the hot table and are written as one
partition file of the hour the batch started, beside the hours the compactor writes::

    prediction-log/<model>/<YYYY-MM-DD>/<HH>/<schema>/part-b<batch id>.parquet

with the columns every partition has (``parquet.FIXED``, ``output``, ``inputs.<name>``) plus ``batch_id`` and
``record_id`` (the value of the run's id column, as text; else the row number). The batch id is the rows'
request id and the row number their record index, so every reader of the log (drift windows, label-free
estimates, counts, the lookup, labels joined to predictions) reads batch rows as it reads served ones. Batch
rows have no ``log_id`` and no ``input_hash`` (nothing to deduplicate on replay: the file is published once).

The file is written under the store's temporary prefix (which listings skip) and renamed into place only when
the run publishes, so a run killed midway leaves nothing in the log.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import InvalidInput
from core.platform.prediction_log.parquet import (
    INPUT,
    JSON_COLUMNS,
    ROOT,
    TS,
    hour_of,
    hour_prefix,
    list_files,
    read_file,
    schema_id,
    time_of,
)
from core.platform.storage import TMP_PREFIX, DataStore, LocalStore

BATCH_ID, RECORD_ID = "batch_id", "record_id"


def _input_column(values: np.ndarray) -> pa.Array:
    """One input column as the log keeps it: numbers as float64 (a later chunk may hold a missing value),
    text as text, anything without one Parquet type as JSON text."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iuf":
        return pa.array(arr.astype(np.float64, copy=False))
    if arr.dtype.kind == "b":
        return pa.array(arr)
    if arr.dtype.kind == "M":
        return pa.array(arr).cast(TS) if arr.dtype != object else pa.array(arr, TS)
    try:
        out = pa.array(arr, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        import json

        return pa.array([None if v is None else json.dumps(v, default=str) for v in arr.tolist()], pa.string())
    return out.cast(pa.string()) if pa.types.is_null(out.type) else out


def _output_column(values: np.ndarray) -> pa.Array:
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":  # class labels stay whole numbers, as the hot table keeps them
        return pa.array(arr.astype(np.int64, copy=False))
    if arr.dtype.kind == "f":
        return pa.array(arr.astype(np.float64, copy=False))
    if arr.dtype.kind == "b":
        return pa.array(arr)
    return pa.array([None if v is None else str(v) for v in arr.tolist()], pa.string())


def log_table(*, batch_id: str, ts: datetime, alias: str, version: int, requested_by: str | None,
              inputs: dict[str, np.ndarray], outputs: np.ndarray, first_index: int, record_ids: Any,
              latency_ms: float) -> pa.Table:
    """One chunk's rows in the partition layout: ``inputs`` as the model saw them, the outputs, and the ids."""
    n = len(outputs)
    columns: dict[str, pa.Array] = {
        "log_id": pa.nulls(n, pa.int64()),
        "request_id": pa.repeat(pa.scalar(batch_id, pa.string()), n),
        "record_index": pa.array(np.arange(first_index, first_index + n, dtype=np.int32)),
        "ts": pa.repeat(pa.scalar(ts, TS), n),
        "alias": pa.repeat(pa.scalar(alias, pa.string()), n),
        "version": pa.repeat(pa.scalar(version, pa.int32()), n),
        "input_hash": pa.nulls(n, pa.string()),
        "latency_ms": pa.repeat(pa.scalar(float(latency_ms), pa.float64()), n),
        "requested_by": pa.repeat(pa.scalar(requested_by, pa.string()), n),
        BATCH_ID: pa.repeat(pa.scalar(batch_id, pa.string()), n),
        RECORD_ID: (pa.array(np.arange(first_index, first_index + n)).cast(pa.string()) if record_ids is None
                    else pa.array(record_ids, from_pandas=True).cast(pa.string())),
        "output": _output_column(outputs),
    }
    for name in sorted(inputs):
        columns[INPUT + name] = _input_column(inputs[name])
    return pa.table(columns).replace_schema_metadata({JSON_COLUMNS: b""})


class BatchLog:
    """The partition file of one batch run, written chunk by chunk and published (renamed into place) once."""

    def __init__(self, store: DataStore, *, model: str, batch_id: str, ts: datetime, scratch: Path) -> None:
        self.store, self.model, self.batch_id, self.ts, self.scratch = store, model, batch_id, ts, scratch
        self._writer: Any = None
        self._tmp: Path | None = None
        self.key: str | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            self.schema = table.schema
            self.key = f"{hour_prefix(self.model, hour_of(self.ts))}/{schema_id(table)}/part-b{self.batch_id}.parquet"
            if isinstance(self.store, LocalStore):
                final = self.store.path(self.key)
                final.parent.mkdir(parents=True, exist_ok=True)
                self._tmp = final.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{final.name}")
            else:
                self.scratch.mkdir(parents=True, exist_ok=True)
                self._tmp = self.scratch / f"{uuid.uuid4().hex}.parquet"
            self._writer = pq.ParquetWriter(self._tmp, table.schema, compression="zstd")
        elif not table.schema.equals(self.schema):
            try:
                table = table.cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise InvalidInput(f"an input column changed type between chunks ({str(exc).splitlines()[0]})") \
                    from None
        self._writer.write_table(table)
        self.rows += table.num_rows

    def publish(self) -> str | None:
        """Make the rows visible to every reader of the log; the partition key (None when nothing was written)."""
        if self._writer is None or self._tmp is None or self.key is None:
            return None
        self._writer.close()
        self._writer = None
        with self._tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        if isinstance(self.store, LocalStore):
            final = self.store.path(self.key)
            os.replace(self._tmp, final)
            fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            try:
                self.store.put(self.key, self._tmp)
            finally:
                self._tmp.unlink(missing_ok=True)
        self._tmp = None
        return self.key

    def discard(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the temporary file goes anyway
                pass
            self._writer = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _batch_files(store: DataStore, *, model: str, batch_id: str) -> list[str]:
    """The partition file(s) of a batch: in the hour its id was made (the hour it started)."""
    at = time_of(batch_id)
    prefix = hour_prefix(model, hour_of(at)) if at is not None else f"{ROOT}/{model}"
    name = f"part-b{batch_id}.parquet"
    return [k for k in list_files(store, prefix) if k.endswith(name)]


def batch_records(store: DataStore, *, model: str, batch_id: str, ids: list[str] | None = None
                  ) -> list[tuple[int, str, str | None]]:
    """(record index, record id, requested_by) of a batch's logged rows (those whose record id is in ``ids``)."""
    condition = pc.field("request_id") == batch_id
    if ids is not None:
        condition = condition & pc.field(RECORD_ID).isin(pa.array(ids, pa.string()))
    out: list[tuple[int, str, str | None]] = []
    for key in _batch_files(store, model=model, batch_id=batch_id):
        table = read_file(store, key, columns=["record_index", RECORD_ID, "requested_by"], filters=condition)
        out.extend(zip(table.column("record_index").to_pylist(), table.column(RECORD_ID).to_pylist(),
                       table.column("requested_by").to_pylist(), strict=True))
    return out


def batch_exists(store: DataStore, *, model: str, batch_id: str) -> bool:
    """Whether the log holds a batch run's rows."""
    return bool(_batch_files(store, model=model, batch_id=batch_id))
