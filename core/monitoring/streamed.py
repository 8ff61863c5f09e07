"""A Parquet batch compared a slice at a time: only the model's columns, memory bounded at any size (issue 29).

``cli.py drift MODEL --current FILE`` on a million rows used to read every column of the file into
pandas (text as Python objects), hash every row and sort every numeric column. The verdict needs
none of that: per numeric column, counts against the reference's quantile points
(``core.monitoring.sketch``); per categorical column, its category counts (read as Arrow dictionary
indices, never as Python strings); and a fixed random sample of rows for the model's outputs and the
Evidently report. Each slice of ``BATCH_ROWS`` rows adds to those and is dropped, so ten million rows
take the memory of one slice plus the sample.

Only Parquet is read this way, and only when the model's columns have types it can count as they are
(numbers and booleans for numeric features, text or booleans for categorical ones); anything else
(CSV, other types, blank or repeated names, no rows) returns None and the caller reads the whole
table with ``core.data.tables.read_table``, whose checks then say what is wrong. The file's footer is
held to the same row and column limits first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.monitoring import drift, sketch

if TYPE_CHECKING:
    from core.data.tables import TableLimits

BATCH_ROWS = 131_072
READ_BUFFER = 1 << 20
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Streamed:
    """Every column's result (``drift.numeric_result``/``categorical_result``), the file's row count, and a
    random sample of up to ``keep`` rows (seed 0) of the model's columns, in file order."""

    results: dict[str, dict[str, Any]]
    rows: int
    sample: pd.DataFrame


def compare_parquet(path: Path, reference: dict[str, Any], *, thresholds: drift.Thresholds, limits: TableLimits,
                    label: str, keep: int) -> Streamed | None:
    """The model's columns of the Parquet file at ``path`` against ``reference``; None when the file is not
    one this reader takes (see the module's docstring: the whole-table reader then decides).

    Raises:
        InvalidInput: more rows or columns than ``limits`` allow (from the footer, before any data is read).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with path.open("rb") as handle:
            if handle.read(len(PARQUET_MAGIC)) != PARQUET_MAGIC:
                return None
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException):
        return None
    meta, schema = parquet.metadata, parquet.schema_arrow
    if meta.num_rows > limits.rows:
        raise limits.too_many_rows(label, meta.num_rows)
    if meta.num_columns > limits.columns:
        raise limits.too_many_columns(label, meta.num_columns)
    raw = {str(f.name).strip(): f for f in schema}
    if meta.num_rows == 0 or len(raw) != len(schema) or "" in raw:
        return None
    specs: dict[str, dict[str, Any]] = reference["columns"]
    if any(name not in raw for name in specs):
        return None
    numeric = [n for n, s in specs.items() if s.get("type") == "numeric"]
    categorical = [n for n in specs if n not in numeric]
    if not all(_countable_number(raw[n].type) for n in numeric) or \
            not all(_countable_category(raw[n].type) for n in categorical):
        return None
    texts = [raw[n].name for n in categorical if not pa.types.is_dictionary(raw[n].type)
             and not pa.types.is_boolean(raw[n].type)]
    try:
        # pre_buffer off: with it, Arrow keeps every column chunk it has read until the file is closed
        # (a 10M-row file grew to 2 GB); without, a slice's memory is freed once the slice is dropped.
        # A 1 MiB read buffer per column instead of a read per page: a third less time, memory still bounded.
        parquet = pq.ParquetFile(path, read_dictionary=texts, pre_buffer=False, buffer_size=READ_BUFFER)
        return _stream(parquet, specs, raw_names={n: raw[n].name for n in specs}, numeric=numeric,
                       categorical=categorical, thresholds=thresholds, rows=meta.num_rows, keep=keep)
    except (OSError, pa.ArrowException):
        return None  # unreadable data: the whole-table reader says what is wrong


def _stream(parquet: Any, specs: dict[str, dict[str, Any]], *, raw_names: dict[str, str], numeric: list[str],
            categorical: list[str], thresholds: drift.Thresholds, rows: int, keep: int) -> Streamed:
    import pyarrow as pa
    import pyarrow.compute as pc

    sketches = {n: sketch.NumericSketch(specs[n]) for n in numeric}
    counts: dict[str, dict[str, int]] = {n: {} for n in categorical}
    wanted = np.sort(np.random.default_rng(0).choice(rows, keep, replace=False)) if rows > keep else None
    kept: list[pa.Table] = []
    offset = 0
    names = list(specs)
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=[raw_names[n] for n in names]):
        for name in numeric:
            column = batch.column(raw_names[name])
            if column.type != pa.float64():  # the cast costs a millisecond a slice even when there is nothing to cast
                column = pc.cast(column, pa.float64())
            values = column.to_numpy(zero_copy_only=False)
            sketches[name].add(values)
        for name in categorical:
            _count(counts[name], batch.column(raw_names[name]))
        if wanted is None:
            picked = batch
        else:
            lo, hi = np.searchsorted(wanted, [offset, offset + batch.num_rows])
            picked = batch.take(pa.array(wanted[lo:hi] - offset)) if hi > lo else None
        if picked is not None:
            kept.append(pa.Table.from_batches([_plain(picked)]))
        offset += batch.num_rows
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        summary = specs[name]
        if name in sketches:
            results[name] = drift.numeric_result(summary, sketches[name], thresholds)
        else:
            found = pd.Series(counts[name], dtype="int64")
            results[name] = drift.categorical_result(summary, found, rows=offset, thresholds=thresholds)
    sample = pa.concat_tables(kept).to_pandas() if kept else pd.DataFrame(columns=names)
    sample.columns = names  # the names as the model knows them (the file's may carry spaces)
    return Streamed(results=results, rows=offset, sample=sample)


def _count(into: dict[str, int], column: Any) -> None:
    """Add a slice's category counts (as text; missing values not counted) to ``into``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        indices = column.indices
        valid = indices.drop_null().to_numpy(zero_copy_only=False) if indices.null_count else \
            indices.to_numpy(zero_copy_only=False)
        per_entry = np.bincount(valid, minlength=len(column.dictionary))
        for value, n in zip(column.dictionary.to_pylist(), per_entry.tolist(), strict=True):
            if n and value is not None:
                key = str(value)
                into[key] = into.get(key, 0) + n
        return
    found = pc.value_counts(column)
    for value, n in zip(found.field("values").to_pylist(), found.field("counts").to_pylist(), strict=True):
        if value is not None:
            key = str(value)
            into[key] = into.get(key, 0) + n


def _plain(batch: Any) -> Any:
    """A batch with its dictionary columns as plain text (the sample is small)."""
    import pyarrow as pa

    if not any(pa.types.is_dictionary(f.type) for f in batch.schema):
        return batch
    arrays = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _countable_number(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
                or pa.types.is_boolean(kind) or pa.types.is_null(kind))


def _countable_category(kind: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind))
