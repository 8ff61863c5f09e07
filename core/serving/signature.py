"""A served model's input columns, and the checks every prediction request's records go through.

Records arrive as JSON objects. Each model column is read out of every record and cast to the
column's type from the model's MLflow signature; a missing column or a value that cannot be
cast is refused with the record index and the column name, and columns the model does not use
are ignored and reported. The result is one array per column, so micro-batches merge cheaply
and the DataFrame the model sees is built once per batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from types import NoneType
from typing import Any

import numpy as np
import pandas as pd

from core.errors import InvalidInput

NUMERIC = {"double": np.float64, "float": np.float32, "long": np.int64, "integer": np.int32}
TRUE_WORDS, FALSE_WORDS = {"true", "1", "yes", "t", "y"}, {"false", "0", "no", "f", "n"}
Columns = dict[str, np.ndarray]


class RecordError(InvalidInput):
    """Records of a request are unusable; ``field`` names the first as ``records[i].column``.

    ``problems`` holds one error per bad column (its first bad record), so a caller fixing a record
    learns every bad field at once instead of one per round trip.
    """

    def __init__(self, message: str, *, record: int, column: str,
                 problems: tuple[RecordError, ...] = ()) -> None:
        super().__init__(message)
        self.record, self.column = record, column
        self.problems: tuple[RecordError, ...] = problems or (self,)

    @property
    def field(self) -> str:
        return f"records[{self.record}].{self.column}"

    @classmethod
    def of(cls, problems: Sequence[RecordError]) -> RecordError:
        """One error for all ``problems`` (in record order, then the model's column order)."""
        if len(problems) == 1:
            return problems[0]
        ordered = sorted(problems, key=lambda p: p.record)  # stable: columns keep the model's order
        text = f"{len(ordered)} fields cannot be used: " + "; ".join(str(p) for p in ordered)
        return cls(text, record=ordered[0].record, column=ordered[0].column, problems=tuple(ordered))


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "any"  # an MLflow column type (double, long, string, boolean, datetime …) or "any"
    required: bool = True


@dataclass(frozen=True)
class Frame:
    """A columnar request body: column name → its values (a list, or a pyarrow array), all ``rows`` long."""

    columns: dict[str, Any]
    rows: int


@dataclass(frozen=True)
class Coerced:
    """A request's records as one cast array per model column, plus what was ignored."""

    columns: Columns
    rows: int
    ignored: tuple[str, ...]
    # the request's own Arrow arrays of the columns whose values they hold exactly (strings), so the
    # prediction journal frames them as they came instead of converting them back
    arrow: dict[str, Any] = field(default_factory=dict)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class InputSchema:
    """The columns a model reads, in order. ``typed`` is False when the model has no signature."""

    columns: tuple[Column, ...]
    typed: bool = True

    @classmethod
    def from_mlflow(cls, signature: Any, fallback_names: Sequence[str] | None = None) -> InputSchema | None:
        """From an MLflow ModelSignature (column-based); else the fitted feature names; else None."""
        inputs = getattr(signature, "inputs", None)
        if inputs is not None and getattr(inputs, "has_input_names", lambda: False)() \
                and not getattr(inputs, "is_tensor_spec", lambda: False)():
            cols = []
            for spec in inputs.inputs:
                kind = getattr(spec.type, "name", str(spec.type))
                cols.append(Column(str(spec.name), kind if isinstance(kind, str) else "any",
                                   bool(getattr(spec, "required", True))))
            return cls(tuple(cols), typed=True)
        if fallback_names is not None and len(fallback_names):
            return cls(tuple(Column(str(n)) for n in fallback_names), typed=False)
        return None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def coerce(self, records: Sequence[dict[str, Any]]) -> Coerced:
        """Check and cast ``records`` (a list of dicts) column by column.

        Raises:
            RecordError: a record lacks a required column, or a value cannot be cast to its type; one
                error naming every bad column (``problems``), each at its first bad record.
        """
        out: Columns = {}
        problems: list[RecordError] = []
        for col in self.columns:
            if col.required:
                try:
                    values = list(map(itemgetter(col.name), records))
                except KeyError:
                    index = next(i for i, r in enumerate(records) if col.name not in r)
                    problems.append(RecordError(f"record {index} has no column {col.name!r}; the model needs: "
                                                f"{', '.join(self.names)}", record=index, column=col.name))
                    continue
            else:
                values = list(map(dict.get, records, repeat(col.name)))
            try:
                out[col.name] = cast(values, col) if self.typed else _infer(values, col.name)
            except RecordError as exc:  # check the other columns too: the answer names every bad field
                problems.append(exc)
        if problems:
            raise RecordError.of(problems)
        # Extra keys exist iff the records hold more keys than the model columns they have;
        # counting is far cheaper than collecting every record's keys.
        present = sum(len(records) if c.required else sum(map(dict.__contains__, records, repeat(c.name)))
                      for c in self.columns)
        ignored: tuple[str, ...] = ()
        if sum(map(len, records)) != present:
            ignored = tuple(sorted(set().union(*records) - set(self.names)))
        return Coerced(out, len(records), ignored)

    def coerce_frame(self, frame: Frame) -> Coerced:
        """Check and cast a columnar request (an Arrow table, MLflow's ``dataframe_split``) as ``coerce``
        does records: the same casts and the same errors (a row index is a record index), but column by
        column, so a 10,000-row batch is never turned into 10,000 dicts. Arrow columns whose type already
        matches the model's are converted without a Python object per value."""
        out: Columns = {}
        arrow: dict[str, Any] = {}
        problems: list[RecordError] = []
        for col in self.columns:
            if col.name not in frame.columns:
                if col.required:
                    problems.append(RecordError(f"record 0 has no column {col.name!r} (nor has any row: the "
                                                f"request's columns lack it); the model needs: "
                                                f"{', '.join(self.names)}", record=0, column=col.name))
                else:
                    out[col.name] = cast([None] * frame.rows, col) if self.typed else _infer([None] * frame.rows,
                                                                                          col.name)
                continue
            values = frame.columns[col.name]
            try:
                out[col.name] = _column(values, col, self.typed)
            except RecordError as exc:
                problems.append(exc)
                continue
            if _arrow_strings(values) and (col.type == "string" or not self.typed):  # read as they are
                arrow[col.name] = values
        if problems:
            raise RecordError.of(problems)
        ignored = tuple(sorted(set(frame.columns) - set(self.names)))
        return Coerced(out, frame.rows, ignored, arrow)

    def frame(self, columns: Columns) -> pd.DataFrame:
        return pd.DataFrame({name: columns[name] for name in self.names}, copy=False)

    def example(self) -> Columns:
        """One plausible row, for warming a model up when it has no saved input example."""
        blank = {"double": 0.0, "float": 0.0, "long": 0, "integer": 0, "string": "", "boolean": False}
        return {c.name: cast([blank.get(c.type)], c) for c in self.columns}


def merge(parts: Sequence[Columns]) -> Columns:
    """Column-wise concatenation of several requests' columns (one micro-batch)."""
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def split_rows(columns: Columns, rows: int, pieces: int) -> list[Columns]:
    bounds = np.linspace(0, rows, pieces + 1).astype(int)
    return [{k: v[a:b] for k, v in columns.items()} for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _arrow_strings(values: Any) -> bool:
    if isinstance(values, list):
        return False
    import pyarrow.types as pat

    return pat.is_string(values.type) or pat.is_large_string(values.type)


def _column(values: Any, col: Column, typed: bool) -> np.ndarray:
    """One request column (a list, or a pyarrow array) cast to ``col``. An Arrow column of the model's kind
    is converted as a whole (no Python object per number; nulls become what a JSON null becomes) and
    checked as ``cast`` checks; any other goes through ``cast`` value by value, so the casts and the
    errors are those of JSON records."""
    if isinstance(values, list):
        return cast(values, col) if typed else _infer(values, col.name)
    import pyarrow.types as pat

    kind = values.type
    if not typed and not pat.is_nested(kind):
        return np.asarray(values.to_numpy(zero_copy_only=False))
    if typed and col.type in NUMERIC and (pat.is_integer(kind) or pat.is_floating(kind)):
        return _numeric(values.to_numpy(zero_copy_only=False), col)  # nulls come as NaN, as JSON nulls do
    if typed and col.type == "string" and (pat.is_string(kind) or pat.is_large_string(kind)):
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)  # nulls come as None
    if typed and col.type == "boolean" and pat.is_boolean(kind):
        flags = np.asarray(values.to_numpy(zero_copy_only=False))
        return flags.astype(bool) if values.null_count == 0 else flags.astype(object)
    listed = values.to_pylist()
    return cast(listed, col) if typed else _infer(listed, col.name)


# -- casting one column --------------------------------------------------------------------------

def cast(values: list[Any], col: Column) -> np.ndarray:
    """``values`` as an array of ``col``'s type; RecordError at the first value that cannot be."""
    if col.type in NUMERIC:
        return _numeric(values, col)
    if col.type == "string":
        return _strings(values, col)
    if col.type == "boolean":
        return _booleans(values, col)
    if col.type == "datetime":
        return _datetimes(values, col)
    return _infer(values, col.name)


def _refuse(values: Sequence[Any] | np.ndarray, index: int, col: Column, what: str) -> RecordError:
    value = values[index]
    if isinstance(value, np.generic):  # an Arrow column's value: named as the JSON one would be
        value = value.item()
    return RecordError(f"record {index}, column {col.name!r}: {_show(value)} cannot be read as {what}",
                       record=index, column=col.name)


def _numeric(values: Sequence[Any] | np.ndarray, col: Column) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError("nested")
    except (TypeError, ValueError, OverflowError):
        arr = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            if v is None:
                arr[i] = math.nan
            elif isinstance(v, bool | int | float | str):
                try:
                    arr[i] = float(v.strip() if isinstance(v, str) else v)
                except (ValueError, OverflowError):
                    raise _refuse(values, i, col, f"a number ({col.type})") from None
            else:
                raise _refuse(values, i, col, f"a number ({col.type})") from None
    if col.type in ("long", "integer"):
        present = ~np.isnan(arr)
        limit = 2.0**63 if col.type == "long" else 2.0**31
        bad = present & ((arr != np.floor(arr)) | (np.abs(arr) >= limit))
        if bad.any():
            raise _refuse(values, int(np.argmax(bad)), col, f"a whole number ({col.type})")
        if present.all():
            return arr.astype(NUMERIC[col.type])
        return arr  # missing values stay NaN, so the column is float
    return arr.astype(NUMERIC[col.type], copy=False)


def _strings(values: list[Any], col: Column) -> np.ndarray:
    if set(map(type, values)) <= {str, NoneType}:
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is None or isinstance(v, str):
            out[i] = v
        elif isinstance(v, bool):
            out[i] = "true" if v else "false"
        elif isinstance(v, int | float):
            out[i] = str(v)
        else:
            raise _refuse(values, i, col, "a string")
    return out


def _booleans(values: list[Any], col: Column) -> np.ndarray:
    if set(map(type, values)) == {bool}:
        return np.array(values, dtype=bool)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        if v is None or isinstance(v, bool):
            out[i] = v
        elif isinstance(v, int | float) and v in (0, 1):
            out[i] = bool(v)
        elif isinstance(v, str) and v.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            out[i] = v.strip().lower() in TRUE_WORDS
        else:
            raise _refuse(values, i, col, "true or false")
    return out if any(v is None for v in out) else out.astype(bool)


def _datetimes(values: list[Any], col: Column) -> np.ndarray:
    for i, v in enumerate(values):
        if v is not None and not isinstance(v, str | int | float) or isinstance(v, bool):
            raise _refuse(values, i, col, "a date-time")
    parsed = pd.to_datetime(pd.Series(values, dtype=object), errors="coerce", format="ISO8601")
    bad = parsed.isna().to_numpy() & np.array([v is not None for v in values])
    if bad.any():
        raise _refuse(values, int(np.argmax(bad)), col, "a date-time (ISO 8601)")
    return parsed.to_numpy()


def _infer(values: list[Any], name: str) -> np.ndarray:
    """No type to check against (a model without a signature): let pandas infer, as fit did."""
    for i, v in enumerate(values):
        if isinstance(v, dict | list):
            raise RecordError(f"record {i}, column {name!r}: nested values are not accepted ({_show(v)})",
                              record=i, column=name)
    return pd.Series(values, dtype=None if values else object).to_numpy()
