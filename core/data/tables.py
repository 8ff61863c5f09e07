"""Reading a table (CSV, Parquet or a DataFrame) into one canonical form, and hashing its content.

Every way in ends in the same canonical Arrow table (64-bit ints and floats, nanosecond
timestamps, plain strings), so the same table has the same hash whether it came as CSV,
Parquet or a query result. Bad files raise ``InvalidInput`` with a one-line reason before
anything is written.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa

from core.errors import InvalidInput

Input: TypeAlias = Path | str | bytes | IO[bytes] | pd.DataFrame
SNIFF_BYTES = 64 * 1024
PARQUET_MAGIC = b"PAR1"
INDEX_COLUMN = re.compile(r"^__index_level_\d+__$")
RAGGED = re.compile(r"Expected (\d+) columns, got (\d+): ?(.*)")


@dataclass(frozen=True)
class Table:
    """A canonical table: the Arrow form (written as Parquet) and the pandas form (checked, profiled)."""

    arrow: pa.Table
    frame: pd.DataFrame
    sha256: str
    row_hashes: np.ndarray  # one uint64 per row; duplicate rows share one
    input_bytes: int

    @property
    def dtypes(self) -> dict[str, str]:
        return {str(c): str(t) for c, t in self.frame.dtypes.items()}


def read_table(data: Input, *, filename: str = "", max_bytes: int | None = None) -> Table:
    """Read ``data`` (a path, bytes, an open binary file or a DataFrame) into a canonical ``Table``.

    Raises:
        InvalidInput: the file is empty, binary, not UTF-8, ragged, header-only, too large,
            or has blank or repeated column names.
    """
    if isinstance(data, pd.DataFrame):
        label = filename or "the table"
        return _finish(canonical(from_frame(data, label), label), input_bytes=0, label=label, empty="has no rows")
    label = filename or (data.name if isinstance(data, Path) else getattr(data, "name", "")) or "the file"
    label = Path(str(label)).name or "the file"
    raw, size = _open(data)
    if max_bytes is not None and size > max_bytes:
        raise InvalidInput(f"{label} is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB "
                           "(LEANOPS_MAX_UPLOAD_MB)")
    head = _head(raw)
    if head.startswith(PARQUET_MAGIC):
        table = _read_parquet(raw, label)
    elif label.lower().endswith((".parquet", ".pq")):
        raise InvalidInput(f"{label} is not a Parquet file (it does not start with the Parquet magic bytes 'PAR1')")
    else:
        table = _read_csv(raw, head, label)
    return _finish(canonical(table, label), input_bytes=size, label=label, empty="has a header but no rows")


def _open(data: Path | str | bytes | IO[bytes]) -> tuple[Path | bytes, int]:
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise InvalidInput(f"{path} does not exist or is not a file")
        return path, path.stat().st_size
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), len(data)
    if hasattr(data, "getvalue"):  # BytesIO, Streamlit's UploadedFile
        raw = data.getvalue()
    else:
        raw = data.read()
    return raw, len(raw)


def _head(raw: Path | bytes) -> bytes:
    if isinstance(raw, bytes):
        return raw[:SNIFF_BYTES]
    with raw.open("rb") as fh:
        return fh.read(SNIFF_BYTES)


def _read_parquet(raw: Path | bytes, label: str) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(raw if isinstance(raw, Path) else pa.BufferReader(raw))
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"{label} is not a readable Parquet file: {_first_line(exc)}") from None
    # pandas stores a non-default index as extra columns; the index is not part of the table
    return table.drop_columns([n for n in table.column_names if INDEX_COLUMN.match(n)])


def _read_csv(raw: Path | bytes, head: bytes, label: str) -> pa.Table:
    import pyarrow.csv as pcsv

    if not head:
        raise InvalidInput(f"{label} is empty (0 bytes); expected a CSV file with a header line and rows")
    if not head.strip():
        raise InvalidInput(f"{label} has only blank lines; expected a CSV header line and rows")
    if b"\x00" in head:
        raise InvalidInput(f"{label} looks binary (it contains NUL bytes), not CSV text; "
                           "upload a UTF-8 CSV or a Parquet file")
    _check_utf8(head, label)
    first_line = head.split(b"\n", 1)[0]
    delimiter = next((d for d in (",", ";", "\t", "|") if d.encode() in first_line), ",")
    try:
        return pcsv.read_csv(
            raw if isinstance(raw, Path) else pa.BufferReader(raw),
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
            convert_options=pcsv.ConvertOptions(strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        # (pyarrow's invalid_row_handler would give the row, but a Python callback on its reader
        # threads can abort the interpreter at exit, so the message is parsed instead)
        ragged = RAGGED.search(str(exc))
        if ragged:
            expected, got, text = ragged.groups()
            fields = "1 field" if got == "1" else f"{got} fields"
            raise InvalidInput(f"{label} has ragged rows: {_line_of(raw, text)}{fields} where the header has "
                               f"{expected} ({text[:80]!r})") from None
        if "Empty CSV" in str(exc):
            raise InvalidInput(f"{label} has no header line; expected a CSV header line and rows") from None
        raise InvalidInput(f"{label} could not be read as CSV: {_first_line(exc)}") from None


def _check_utf8(head: bytes, label: str) -> None:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a character cut by the sniff window
            return
        line = head.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(f"{label} is not UTF-8 text: byte 0x{head[exc.start]:02x} on line {line} cannot be "
                           "decoded; save the file as UTF-8") from None


def _line_of(raw: Path | bytes, text: str) -> str:
    data = raw if isinstance(raw, bytes) else raw.read_bytes()
    at = data.find(b"\n" + text.encode() + b"\n")
    if at < 0:
        at = data.find(b"\n" + text.encode())
    newline = b"\n"
    return f"line {data.count(newline, 0, at) + 2} has " if at >= 0 else "a row has "


def from_frame(frame: pd.DataFrame, label: str = "the table") -> pa.Table:
    """A DataFrame (e.g. a query result) as an Arrow table; its index is not part of the table.

    Object columns Arrow cannot type (UUIDs, mixed values) are kept as text.
    """
    names = [str(c).strip() for c in frame.columns]
    _check_names(names, label)
    frame = frame.set_axis(names, axis=1).reset_index(drop=True)
    arrays = []
    for name in names:
        try:
            arrays.append(pa.array(frame[name], from_pandas=True))
        except (pa.ArrowException, TypeError, ValueError):
            arrays.append(pa.array(frame[name].map(lambda v: None if v is None or v != v else str(v)),
                                   type=pa.string(), from_pandas=True))
    return pa.table(arrays, names=names)


def canonical(table: pa.Table, label: str = "the table") -> pa.Table:
    """Strip and check column names; cast every column to its canonical type."""
    names = [str(n).strip() for n in table.column_names]
    _check_names(names, label)
    arrays = []
    for name, column in zip(names, table.columns, strict=True):
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if isinstance(column.type, pa.BaseExtensionType):  # e.g. UUIDs from a query: kept as their text
            column = pa.chunked_array([pa.array([None if v is None else str(v) for v in c.to_pylist()], pa.string())
                                       for c in column.chunks], type=pa.string())
        arrays.append(_canonical_column(name, column, label))
    return pa.table(arrays, names=names)


def _check_names(names: list[str], label: str) -> None:
    blank = [i + 1 for i, n in enumerate(names) if not n]
    if blank:
        raise InvalidInput(f"{label} has a blank column name (column {blank[0]} of {len(names)}); "
                           "every column needs a name")
    if any("\ufffd" in n for n in names):
        raise InvalidInput(f"{label} is not UTF-8 text: the header has bytes that cannot be decoded; "
                           "save the file as UTF-8")
    seen: dict[str, int] = {}
    for i, n in enumerate(names, 1):
        if n in seen:
            raise InvalidInput(f"{label} repeats the column name {n!r} (columns {seen[n]} and {i}); "
                               "column names must be unique")
        seen[n] = i


def _canonical_column(name: str, col: pa.ChunkedArray, label: str) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_integer(t) and t != pa.int64():
        try:
            return col.cast(pa.int64())
        except pa.ArrowInvalid:  # uint64 beyond int64
            return col.cast(pa.float64())
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return col.cast(pa.float64()) if t != pa.float64() else col
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        tz = getattr(t, "tz", None)
        target = pa.timestamp("ns", tz="UTC" if tz else None)
        try:
            return col.cast(target) if t != target else col
        except pa.ArrowInvalid:  # out of the nanosecond range (before 1677 or after 2262)
            return col
    if pa.types.is_time(t):
        return col.cast(pa.string())
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return col.cast(pa.string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        raise InvalidInput(f"{label} is not UTF-8 text: column {name!r} {_first_bad_utf8(col)}; "
                           "save the file as UTF-8")
    if pa.types.is_nested(t) or pa.types.is_union(t) or pa.types.is_map(t):
        raise InvalidInput(f"column {name!r} of {label} has the nested type {t}; only flat columns "
                           "(numbers, text, booleans, dates) can be versioned")
    return col


def _first_bad_utf8(col: pa.ChunkedArray) -> str:
    row = 0
    for chunk in col.chunks:
        for value in chunk.to_pylist():
            row += 1
            if value is None:
                continue
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return f"has bytes that cannot be decoded in data row {row} ({value[:40]!r})"
    return "holds binary data"


def _finish(table: pa.Table, *, input_bytes: int, label: str, empty: str) -> Table:
    if table.num_columns == 0:
        raise InvalidInput(f"{label} has no columns")
    if table.num_rows == 0:
        raise InvalidInput(f"{label} {empty} ({table.num_columns} columns, 0 rows)")
    frame = table.to_pandas(split_blocks=True, self_destruct=False)
    sha, row_hashes = content_hash(frame)
    return Table(arrow=table, frame=frame, sha256=sha, row_hashes=row_hashes, input_bytes=input_bytes)


def content_hash(frame: pd.DataFrame) -> tuple[str, np.ndarray]:
    """sha256 over column names, dtypes and a vectorised 64-bit hash of every row (in order)."""
    header = json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode()
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256(header)
    digest.update(len(rows).to_bytes(8, "little"))
    digest.update(rows.tobytes())
    return digest.hexdigest(), rows


def write_parquet(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path, compression="zstd")


def read_parquet(source: Path | IO[bytes]) -> pd.DataFrame:
    """A stored version as pandas, with the same dtypes it was hashed with."""
    import pyarrow.parquet as pq

    return pq.read_table(source).to_pandas(split_blocks=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

