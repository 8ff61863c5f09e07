"""Reading a table (CSV, Parquet or a DataFrame) into one canonical form, and hashing its content.

Every way in ends in the same canonical Arrow table (64-bit ints and floats, nanosecond
timestamps, plain strings), so the same table has the same hash whether it came as CSV,
Parquet or a query result. Bad files raise ``InvalidInput`` with a one-line reason before
anything is written.

A file is checked against ``TableLimits`` before its data is read, so a small file that would
expand into a huge table (a "decompression bomb": a 90 KB zstd Parquet file can hold 20 M rows)
is refused in milliseconds: Parquet by its footer (rows, columns, data size), CSV by its size,
its header's field count and a row count that stops at the limit.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa

from core.data import measured
from core.data.measured import TableLimits  # noqa: F401  (the limits' home is the measuring reader)
from core.errors import InvalidInput

Input: TypeAlias = Path | str | bytes | IO[bytes] | pd.DataFrame
SNIFF_BYTES = 64 * 1024
CHUNK_BYTES = 2**20  # how much of a file is scanned at a time (a long header, the line count)
PARQUET_MAGIC = b"PAR1"
INDEX_COLUMN = re.compile(r"^__index_level_\d+__$")
RAGGED = re.compile(r"Expected (\d+) columns, got (\d+): ?(.*)")
LINE_END = re.compile(rb"[\r\n]")  # the CSV reader ends a line at \n, \r\n or a lone \r
COMPRESSED = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"),
              (b"\xfd7zXZ\x00", "xz"), (b"PK\x03\x04", "zip"))
BZIP2 = re.compile(rb"^BZh[1-9]1AY&SY")
# bytes per value once read and made canonical (ints, floats, dates and times become 64 bits);
# a BYTE_ARRAY (text) column costs its offsets here, its characters are in the row groups' data size
PARQUET_WIDTH = {"BOOLEAN": 1, "INT32": 8, "INT64": 8, "INT96": 8, "FLOAT": 8, "DOUBLE": 8, "BYTE_ARRAY": 4}


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


def read_table(data: Input, *, filename: str = "", max_bytes: int | None = None,
               limits: TableLimits | None = None) -> Table:
    """Read ``data`` (a path, bytes, an open binary file or a DataFrame) into a canonical ``Table``.

    A file's size is checked against ``max_bytes`` before it is read, and its table against
    ``limits`` (default: ``TableLimits()``) before its data is read. An open binary file that
    can seek is read in place, not copied into memory. A DataFrame is already in memory: the
    limits are not applied to it.

    Raises:
        InvalidInput: the file is empty, binary, compressed, not UTF-8, ragged, header-only, too
            large, over the limits, or has blank or repeated column names.
    """
    if isinstance(data, pd.DataFrame):
        label = filename or "the table"
        return _finish(canonical(from_frame(data, label), label), input_bytes=0, label=label, empty="has no rows")
    limits = limits or TableLimits()
    label = filename or (data.name if isinstance(data, Path) else getattr(data, "name", "")) or "the file"
    label = Path(str(label)).name or "the file"
    source = _open(data, label, max_bytes)
    head = source.head(SNIFF_BYTES)
    if head.startswith(PARQUET_MAGIC):
        table = _read_parquet(source, label, limits)
    elif label.lower().endswith((".parquet", ".pq")):
        raise InvalidInput(f"{label} is not a Parquet file (it does not start with the Parquet magic bytes 'PAR1')")
    else:
        table = _read_csv(source, head, label, limits)
    table = canonical(table, label)
    _check_read(table, label, limits)
    return _finish(table, input_bytes=source.size, label=label, empty="has a header but no rows")


class _Source:
    """A file's bytes: a path, bytes in memory, or a seekable binary file (read in place, from its start)."""

    def __init__(self, raw: Path | bytes | IO[bytes], size: int) -> None:
        self.raw = raw
        self.size = size

    def head(self, n: int) -> bytes:
        if isinstance(self.raw, bytes):
            return self.raw[:n]
        if isinstance(self.raw, Path):
            with self.raw.open("rb") as fh:
                return fh.read(n)
        self.raw.seek(0)
        try:
            return self.raw.read(n)
        finally:
            self.raw.seek(0)

    def chunks(self, size: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The bytes from the start, ``size`` at a time."""
        if isinstance(self.raw, bytes):
            view = memoryview(self.raw)
            for at in range(0, len(view), size):
                yield bytes(view[at:at + size])
            return
        fh = self.raw.open("rb") if isinstance(self.raw, Path) else self.raw
        try:
            fh.seek(0)
            while chunk := fh.read(size):
                yield chunk
        finally:
            if isinstance(self.raw, Path):
                fh.close()
            else:
                fh.seek(0)

    def arrow(self) -> Any:
        """A readable file for pyarrow, as plain bytes (a path's extension never switches on decompression)."""
        if isinstance(self.raw, bytes):
            return pa.BufferReader(self.raw)
        if isinstance(self.raw, Path):
            return pa.OSFile(str(self.raw))
        self.raw.seek(0)
        return self.raw  # pyarrow reads a Python file object in place; the caller keeps it open

    def all_bytes(self) -> bytes:
        """Everything (only to point at the line of an error)."""
        return self.raw if isinstance(self.raw, bytes) else b"".join(self.chunks())


def _open(data: Path | str | bytes | IO[bytes], label: str, max_bytes: int | None) -> _Source:
    """The file, its size checked against ``max_bytes`` before any of it is read."""

    def check(size: int) -> None:
        if max_bytes is not None and size > max_bytes:
            raise InvalidInput(f"{label} is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB "
                               "(LEANOPS_MAX_UPLOAD_MB)")

    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise InvalidInput(f"{path} does not exist or is not a file")
        check(path.stat().st_size)
        return _Source(path, path.stat().st_size)
    if isinstance(data, (bytes, bytearray, memoryview)):
        check(len(data))
        return _Source(bytes(data), len(data))
    if hasattr(data, "getvalue"):  # BytesIO, Streamlit's UploadedFile: already in memory
        if hasattr(data, "getbuffer"):
            with data.getbuffer() as view:
                check(view.nbytes)
        raw = data.getvalue()
        check(len(raw))
        return _Source(raw, len(raw))
    start = _position(data)
    if start is not None:  # a file on disk (FastAPI's upload spools there): measured, then read in place
        end = data.seek(0, 2)
        data.seek(start)
        check(end - start)
        if start == 0:
            return _Source(data, end)
    raw = data.read() if max_bytes is None else data.read(max_bytes + 1)
    check(len(raw))
    return _Source(raw, len(raw))


def _position(data: IO[bytes]) -> int | None:
    """Where a seekable file stands; None when it cannot seek."""
    try:
        return data.tell() if data.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


def _read_parquet(source: _Source, label: str, limits: TableLimits) -> pa.Table:
    """The footer is checked against ``limits`` before any data is read; the data is then read a
    batch at a time, and reading stops once the table outgrows ``limits.mb`` (footers can lie)."""
    import pyarrow.parquet as pq

    handle = source.arrow()
    try:
        try:
            parquet = pq.ParquetFile(handle)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInput(f"{label} is not a readable Parquet file: {_first_line(exc)}") from None
        _check_footer(parquet.metadata, label, limits)
        try:
            # text columns stay dictionaries while read, so a dictionary page that many indices point at
            # is counted at its decoded size before it is made plain (core.data.measured)
            if texts := measured.text_columns(parquet.schema_arrow):
                parquet = pq.ParquetFile(handle, read_dictionary=texts)
            table = measured.parquet_table(parquet, limits=limits, label=label)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInput(f"{label} is not a readable Parquet file: {_first_line(exc)}") from None
    finally:
        if isinstance(handle, pa.NativeFile):
            handle.close()
    # pandas stores a non-default index as extra columns; the index is not part of the table
    return table.drop_columns([n for n in table.column_names if INDEX_COLUMN.match(n)])


def _check_footer(meta: Any, label: str, limits: TableLimits) -> None:
    """Rows, columns and the data's size once read, from a Parquet footer (nothing else is read)."""
    if meta.num_rows > limits.rows:
        raise limits.too_many_rows(label, meta.num_rows)
    if meta.num_columns > limits.columns:
        raise limits.too_many_columns(label, meta.num_columns)
    encoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    schema = meta.schema
    width = sum(max(schema.column(j).length or 0, 8) if schema.column(j).physical_type == "FIXED_LEN_BYTE_ARRAY"
                else PARQUET_WIDTH.get(schema.column(j).physical_type, 8) for j in range(meta.num_columns))
    estimate = max(encoded, meta.num_rows * width)
    if estimate > limits.max_bytes:
        raise limits.too_large(label, f"holds about {estimate / 2**20:,.0f} MB of data once read "
                                      f"({meta.num_rows:,} rows x {meta.num_columns:,} columns)")


def _check_read(table: pa.Table, label: str, limits: TableLimits) -> None:
    """The same limits on what was read (a CSV header with quoted line breaks, a footer that lied)."""
    if table.num_rows > limits.rows:
        raise limits.too_many_rows(label, table.num_rows)
    if table.num_columns > limits.columns:
        raise limits.too_many_columns(label, table.num_columns)
    if table.nbytes > limits.max_bytes:
        raise limits.too_large(label, f"holds {table.nbytes / 2**20:,.0f} MB of data once read")


def _read_csv(source: _Source, head: bytes, label: str, limits: TableLimits) -> pa.Table:
    import pyarrow.csv as pcsv

    if not head:
        raise InvalidInput(f"{label} is empty (0 bytes); expected a CSV file with a header line and rows")
    if not head.strip():
        raise InvalidInput(f"{label} has only blank lines; expected a CSV header line and rows")
    kind = next((name for magic, name in COMPRESSED if head.startswith(magic)),
                "bzip2" if BZIP2.match(head) else None)
    if kind:
        raise InvalidInput(f"{label} is {kind}-compressed; compressed CSV is not read: upload the CSV itself "
                           "or a Parquet file")
    if b"\x00" in head:
        raise InvalidInput(f"{label} looks binary (it contains NUL bytes), not CSV text; "
                           "upload a UTF-8 CSV or a Parquet file")
    _check_utf8(head, label)
    first_line = head.split(b"\n", 1)[0]
    delimiter = next((d for d in (",", ";", "\t", "|") if d.encode() in first_line), ",")
    if source.size > limits.max_bytes:
        raise limits.too_large(label, f"is {source.size / 2**20:,.0f} MB of CSV text")
    _check_header(source, head, delimiter, label, limits)
    _check_rows(source, delimiter, label, limits)
    handle = source.arrow()
    try:
        return pcsv.read_csv(
            handle,
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
            convert_options=pcsv.ConvertOptions(strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        raise _csv_error(exc, source, label) from None
    finally:
        if isinstance(handle, pa.NativeFile):
            handle.close()


def _csv_error(exc: pa.ArrowInvalid, source: _Source, label: str) -> InvalidInput:
    # (pyarrow's invalid_row_handler would give the row, but a Python callback on its reader
    # threads can abort the interpreter at exit, so the message is parsed instead)
    ragged = RAGGED.search(str(exc))
    if ragged:
        expected, got, text = ragged.groups()
        fields = "1 field" if got == "1" else f"{got} fields"
        return InvalidInput(f"{label} has ragged rows: {_line_of(source, text)}{fields} where the header has "
                            f"{expected} ({text[:80]!r})")
    if "Empty CSV" in str(exc):
        return InvalidInput(f"{label} has no header line; expected a CSV header line and rows")
    return InvalidInput(f"{label} could not be read as CSV: {_first_line(exc)}")


def _check_header(source: _Source, head: bytes, delimiter: str, label: str, limits: TableLimits) -> None:
    """Count the header's fields before anything is parsed; a header without quotes stops being
    read as soon as it has more fields than the limit."""
    sep, line, quoted = delimiter.encode(), b"", False
    for chunk in [head] if LINE_END.search(head) else source.chunks():
        end = LINE_END.search(chunk)
        line += chunk if end is None else chunk[:end.start()]
        quoted = quoted or b'"' in line
        if end is not None:
            break
        if not quoted and line.count(sep) + 1 > limits.columns:
            raise limits.too_many_columns(label, 0, more_than=True)
    if quoted:  # a quoted name may hold the delimiter (or a line break: then the table is checked once read)
        fields = len(next(csv.reader([line.decode("utf-8", "replace")], delimiter=delimiter), []))
    else:
        fields = line.count(sep) + 1
    if fields > limits.columns:
        raise limits.too_many_columns(label, fields)


def _check_rows(source: _Source, delimiter: str, label: str, limits: TableLimits) -> None:
    """Refuse a CSV with more rows than the limit, reading no further than the limit.

    A data row takes at least 2 bytes, so a small file passes at once; otherwise line breaks are
    counted, and only when there are more than the limit (blank lines and line breaks inside
    quotes are not rows) are the rows counted by the CSV parser, up to the limit.
    """
    if source.size <= 2 * limits.rows:
        return
    breaks = 0
    for chunk in source.chunks():  # \n, \r\n and a lone \r (a \r\n cut by a chunk counts twice: an upper bound)
        breaks += chunk.count(b"\n") + (chunk.count(b"\r") - chunk.count(b"\r\n") if b"\r" in chunk else 0)
        if breaks > limits.rows:  # data rows <= line breaks (the header line is one line)
            break
    else:
        return
    # small blocks, so the reader's read-ahead stays small (2 MB); a row longer than a block needs the
    # CSV reader's own default block size (1 MB), as the full read does
    for block_size in (64 * 1024, 2**20):
        handle = source.arrow()
        try:
            _count_rows(handle, block_size, delimiter, label, limits)
            return
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc) or block_size == 2**20:
                raise _csv_error(exc, source, label) from None
        finally:
            if isinstance(handle, pa.NativeFile):
                handle.close()


def _count_rows(handle: Any, block_size: int, delimiter: str, label: str, limits: TableLimits) -> None:
    """Parse (only the first column, as text) until the rows are over the limit."""
    import pyarrow.csv as pcsv

    reader = pcsv.open_csv(
        handle, read_options=pcsv.ReadOptions(autogenerate_column_names=True, block_size=block_size,
                                              use_threads=False),
        parse_options=pcsv.ParseOptions(delimiter=delimiter),
        convert_options=pcsv.ConvertOptions(include_columns=["f0"], column_types={"f0": pa.string()},
                                            check_utf8=False))
    rows = -1  # the header is read as a row
    try:
        for batch in reader:
            rows += batch.num_rows
            if rows > limits.rows:
                raise limits.too_many_rows(label, rows, more_than=True)
    finally:
        reader.close()


def _check_utf8(head: bytes, label: str) -> None:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a character cut by the sniff window
            return
        line = head.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(f"{label} is not UTF-8 text: byte 0x{head[exc.start]:02x} on line {line} cannot be "
                           "decoded; save the file as UTF-8") from None


def _line_of(source: _Source, text: str) -> str:
    data = source.all_bytes()
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

