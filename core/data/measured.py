"""The one limit-checking reader for compressed or encoded tabular input (Arrow IPC streams, Parquet).

A body a caller sends is measured before it is decoded: what a format can make larger once read
(buffer compression, dictionary, run-end and view encodings, a Parquet dictionary page that ten
thousand indices point at) is either refused or counted at its decoded size, batch by batch, before
any value reaches a Python object, a DataFrame or the prediction log.

- **Arrow IPC streams** (predict bodies, and any stream a caller uploads): each message is read
  alone; the schema may hold only flat, plain types (numbers, booleans, text and binary with offsets,
  dates and times); a record batch whose metadata asks for buffer compression is refused; its row
  count (from the metadata, before its buffers are touched) must fit the row limit; its buffers are
  then fully validated (offsets in bounds and increasing), so the decoded size is the body's size.
- **Parquet** (uploads, drift batches, scoring inputs): text columns are read as dictionaries, and a
  batch's decoded size (each index costs its dictionary value's length) is counted against the byte
  limit before it is turned into plain text; numbers have a fixed width the footer check already
  counted.

``TableLimits`` (rows, columns, MB: the ``LEANOPS_MAX_TABLE_*`` settings, or the serving batch
limit for predict) are the limits. Used by ``core.data.tables.read_table`` (every upload, drift batch
and scoring input) and by ``core.serving.inference.read_arrow``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from core.errors import InvalidInput

if TYPE_CHECKING:
    from core.settings import Settings

@dataclass(frozen=True)
class TableLimits:
    """The largest table a file may hold; the defaults are those of the settings
    ``LEANOPS_MAX_TABLE_ROWS``, ``LEANOPS_MAX_TABLE_COLUMNS`` and ``LEANOPS_MAX_TABLE_MB``."""

    rows: int = 10_000_000
    columns: int = 2_000
    mb: int = 4096  # the table's data once read (uncompressed), in MiB

    @classmethod
    def of(cls, settings: Settings) -> TableLimits:
        """The limits of a ``core.settings.Settings``."""
        return cls(rows=settings.max_table_rows, columns=settings.max_table_columns, mb=settings.max_table_mb)

    @property
    def max_bytes(self) -> int:
        return self.mb * 2**20

    def too_many_rows(self, label: str, rows: int, *, more_than: bool = False) -> InvalidInput:
        found = f"more than {self.rows:,}" if more_than else f"{rows:,}"
        return InvalidInput(f"{label} has {found} rows; the limit is {self.rows:,} (LEANOPS_MAX_TABLE_ROWS)")

    def too_many_columns(self, label: str, columns: int, *, more_than: bool = False) -> InvalidInput:
        found = f"more than {self.columns:,}" if more_than else f"{columns:,}"
        return InvalidInput(f"{label} has {found} columns; the limit is {self.columns:,} "
                            "(LEANOPS_MAX_TABLE_COLUMNS)")

    def too_large(self, label: str, what: str) -> InvalidInput:
        return InvalidInput(f"{label} {what}; the limit is {self.mb:,} MB uncompressed (LEANOPS_MAX_TABLE_MB)")


PARQUET_BATCH_ROWS = 16_384  # rows decoded at a time (a batch's plain text is counted before it exists)
_RECORD_BATCH, _DICTIONARY_BATCH = 3, 2  # Message.header's union tags (Arrow's Message.fbs)


def _plain(t: pa.DataType) -> bool:
    """A type whose decoded size is its buffers' size: no dictionary, run-end, view or nested layout."""
    pat = pa.types
    return (pat.is_integer(t) or pat.is_floating(t) or pat.is_boolean(t) or pat.is_decimal(t)
            or pat.is_string(t) or pat.is_large_string(t) or pat.is_binary(t) or pat.is_large_binary(t)
            or pat.is_fixed_size_binary(t) or pat.is_temporal(t))


class _Flat:
    """Just enough of a FlatBuffers reader for an Arrow IPC message's metadata (no generated code)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def _u32(self, at: int) -> int:
        return int(struct.unpack_from("<I", self.data, at)[0])

    def root(self) -> int:
        return self._u32(0)

    def field(self, table: int, index: int) -> int | None:
        """Where field ``index`` of the table at ``table`` is stored, None when absent."""
        vtable = table - int(struct.unpack_from("<i", self.data, table)[0])
        size = int(struct.unpack_from("<H", self.data, vtable)[0])
        slot = 4 + 2 * index
        if slot >= size:
            return None
        offset = int(struct.unpack_from("<H", self.data, vtable + slot)[0])
        return table + offset if offset else None

    def scalar(self, table: int, index: int, fmt: str, default: int = 0) -> int:
        at = self.field(table, index)
        return default if at is None else int(struct.unpack_from(fmt, self.data, at)[0])

    def table(self, table: int, index: int) -> int | None:
        at = self.field(table, index)
        return None if at is None else at + self._u32(at)


def _batch_header(metadata: bytes) -> tuple[int, int, bool]:
    """(header type, rows, compressed) of a record or dictionary batch message, from its metadata alone."""
    try:
        fb = _Flat(metadata)
        message = fb.root()
        kind = fb.scalar(message, 1, "<B")
        header = fb.table(message, 2)
        if header is None:
            return kind, 0, False
        batch: int | None = header
        if kind == _DICTIONARY_BATCH:
            batch = fb.table(header, 1)  # DictionaryBatch.data: a RecordBatch
        if batch is None:
            return kind, 0, False
        rows = fb.scalar(batch, 0, "<q")
        compressed = fb.field(batch, 3) is not None  # RecordBatch.compression
        return kind, rows, compressed
    except struct.error:
        raise InvalidInput("the Arrow stream has a damaged message header") from None


def arrow_stream(raw: bytes, *, limits: TableLimits, label: str = "the Arrow stream",
                 rows_setting: str = "LEANOPS_MAX_TABLE_ROWS") -> pa.Table:
    """An Arrow IPC stream read message by message within ``limits``, or ``InvalidInput`` naming why not.

    Refused before anything is decoded: a schema with a dictionary, run-end, view or nested column;
    more columns than the limit; a batch with compressed buffers; more rows than the limit. Each batch
    is validated in full before it is kept (offsets cannot point outside the body), and the decoded
    size is counted against ``limits.mb``.
    """
    import pyarrow.ipc as ipc

    def refuse(why: str) -> InvalidInput:
        return InvalidInput(f"{label} {why}")

    try:
        reader = ipc.MessageReader.open_stream(pa.BufferReader(raw))
        first = reader.read_next_message()
        schema = ipc.read_schema(first)
    except (pa.ArrowException, OSError, StopIteration) as exc:
        raise refuse(f"is not an Arrow IPC stream ({str(exc)[:200]})") from None
    if len(schema) > limits.columns:
        raise limits.too_many_columns(label, len(schema))
    for f in schema:
        if pa.types.is_dictionary(f.type):
            raise refuse(f"has a dictionary-encoded column {f.name[:80]!r}; send plain columns "
                         "(dictionary encoding is not read)")
        if not _plain(f.type):
            raise refuse(f"has column {f.name[:80]!r} of type {str(f.type)[:80]}; send flat columns "
                         "(numbers, booleans, text, dates and times)")
    batches, rows, size = [], 0, 0
    for message in _messages(reader, refuse):
        kind, batch_rows, compressed = _batch_header(message.metadata.to_pybytes())
        if kind == _DICTIONARY_BATCH:
            raise refuse("has a dictionary batch; send plain columns (dictionary encoding is not read)")
        if kind != _RECORD_BATCH:
            raise refuse(f"has an unexpected {message.type} message")
        if compressed:
            raise refuse("has compressed buffers (LZ4/ZSTD IPC compression); send it uncompressed "
                         "(the request body's size is the limit)")
        rows += batch_rows
        if batch_rows < 0 or rows > limits.rows:
            raise refuse(f"has at least {rows:,} rows; the limit is {limits.rows:,} per request ({rows_setting})")
        try:
            batch = ipc.read_record_batch(message, schema)
            batch.validate(full=True)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise refuse(f"has a batch that cannot be read ({str(exc)[:200]})") from None
        size += batch.nbytes
        if size > limits.max_bytes:
            raise limits.too_large(label, f"holds more than {limits.mb:,} MB once read")
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=schema)


def _messages(reader: Any, refuse: Any) -> Iterator[Any]:
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise refuse(f"is not a readable Arrow IPC stream ({str(exc)[:200]})") from None
        if message is None:
            return
        yield message


def text_columns(schema: pa.Schema) -> list[str]:
    """The columns a Parquet reader should keep as dictionaries (text and binary) so they can be measured."""
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]


def parquet_table(parquet: Any, *, limits: TableLimits, label: str) -> pa.Table:
    """The batches of an open ``pyarrow.parquet.ParquetFile`` (footer already checked, opened with
    ``read_dictionary=text_columns(...)``), read a batch at a time: a dictionary column is counted at its
    decoded size (the sum of the values its indices point at) and kept as indices; over ``limits.mb``
    stops the read, and only a table whose whole decoded size fits is made plain. Nested columns are refused
    before any is decoded."""
    import pyarrow.compute as pc

    for f in parquet.schema_arrow:
        if pa.types.is_nested(f.type) or pa.types.is_union(f.type) or pa.types.is_map(f.type):
            raise InvalidInput(f"column {f.name!r} of {label} has the nested type {f.type}; only flat columns "
                               "(numbers, text, booleans, dates) can be versioned")
    schema = pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                        for f in parquet.schema_arrow], metadata=parquet.schema_arrow.metadata)
    kept: list[pa.RecordBatch] = []  # as read: a dictionary column costs its indices, not its text
    size = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for column in batch.columns:
            if pa.types.is_dictionary(column.type):
                lengths = pc.binary_length(column.dictionary)
                size += (pc.sum(pc.take(lengths, column.indices)).as_py() or 0) + 4 * len(column)
            else:
                size += column.nbytes
            if size > limits.max_bytes:
                raise limits.too_large(label, f"holds more than {limits.mb:,} MB of data once read")
        kept.append(batch)
    # only once the whole decoded size is known to fit is any text made plain
    return pa.Table.from_batches(
        [pa.RecordBatch.from_arrays([c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c
                                     for c in batch.columns], schema=schema) for batch in kept], schema=schema)
