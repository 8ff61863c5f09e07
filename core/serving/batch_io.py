"""Batch scoring's inputs and outputs: files read a chunk at a time, outputs that appear whole or not at all.

Inputs (``open_input``): a CSV or Parquet file, a dataset version (its Parquet file in the data store), or a
query against a configured read-only SQL source. A file is checked against the workspace's table limits
(``core.data.tables.TableLimits``: rows, columns, size once read) from its Parquet footer before any data is
read, and row by row as a CSV streams in; chunks are Arrow tables of at most ``chunk_rows`` rows, so memory is
bounded by the chunk, not by the file.

Outputs (``Output``): rows are written to a temporary name beside the destination (``.tmp-…``: the data store's
own temporary prefix, which listings skip and ``sweep_temporary`` removes) and renamed into place only once
every row is written and flushed to disk; a table destination is written in one transaction. A scoring run
killed at any point leaves no partial output visible, and can simply be run again.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from core.data.tables import TableLimits
from core.errors import InvalidInput
from core.platform.storage import TMP_PREFIX, DataStore, LocalStore

PARQUET_MAGIC = b"PAR1"
FORMATS = (".parquet", ".csv")


@dataclass
class Input:
    """Rows to score: a label for messages, the row count when known (progress), and the chunks."""

    label: str
    rows: int | None
    chunks: Callable[[], Iterator[pa.Table]]
    progress: Callable[[], float | None] = lambda: None  # share read so far when ``rows`` is unknown (CSV)


def file_input(path: Path, *, limits: TableLimits, chunk_rows: int, label: str | None = None) -> Input:
    """A local CSV or Parquet file, streamed. InvalidInput when it is missing, neither format, or over ``limits``."""
    label = label or path.name
    if not path.is_file():
        raise InvalidInput(f"input file {str(path)!r} does not exist")
    with path.open("rb") as fh:
        head = fh.read(4)
    if head == PARQUET_MAGIC:
        return _parquet_input(path, label=label, limits=limits, chunk_rows=chunk_rows)
    if path.suffix.lower() in (".parquet", ".pq"):
        raise InvalidInput(f"{label} is not a Parquet file (it does not start with the Parquet magic bytes 'PAR1')")
    return _csv_input(path, label=label, limits=limits, chunk_rows=chunk_rows)


def store_input(store: DataStore, key: str, *, label: str, limits: TableLimits, chunk_rows: int) -> Input:
    """A Parquet file in the data store (a dataset version's file), streamed."""
    if isinstance(store, LocalStore):
        return _parquet_input(store.path(key), label=label, limits=limits, chunk_rows=chunk_rows)
    return _parquet_input(lambda: store.open(key), label=label, limits=limits, chunk_rows=chunk_rows)


def frame_input(frame: Any, *, label: str, chunk_rows: int) -> Input:
    """Rows already in memory (a SQL query's result, capped by the source's row limit)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)

    def chunks() -> Iterator[pa.Table]:
        for at in range(0, table.num_rows, chunk_rows):
            yield table.slice(at, chunk_rows)

    return Input(label, table.num_rows, chunks)


def _parquet_input(source: Path | Callable[[], Any], *, label: str, limits: TableLimits, chunk_rows: int) -> Input:
    import pyarrow.parquet as pq

    from core.data import tables

    def open_file() -> Any:
        try:
            # pre_buffer off (pyarrow's default is on): with it, every column chunk read stays in memory until the
            # file is closed, so a 5M-row file took 1.6 GB; a 1 MiB read buffer per column instead
            return pq.ParquetFile(source if isinstance(source, Path) else source(), pre_buffer=False,
                                  buffer_size=1 << 20)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInput(f"{label} is not a readable Parquet file: {str(exc).splitlines()[0]}") from None

    parquet = open_file()
    # the same footer check every table read makes: a small file that expands into a huge table is refused
    # before any of its data is read
    tables._check_footer(parquet.metadata, label, limits)  # noqa: SLF001 - the readers' own limit check
    rows = parquet.metadata.num_rows
    columns = [c for c in parquet.schema_arrow.names if not tables.INDEX_COLUMN.match(c)]

    def chunks() -> Iterator[pa.Table]:
        reader = open_file()
        try:
            for batch in reader.iter_batches(batch_size=chunk_rows, columns=columns):
                yield pa.Table.from_batches([batch])
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInput(f"{label} is not a readable Parquet file: {str(exc).splitlines()[0]}") from None

    return Input(label, rows, chunks)


class _Counting:
    """A binary file that remembers how far it was read (CSV progress)."""

    def __init__(self, path: Path) -> None:
        self.fh = path.open("rb")
        self.size = max(path.stat().st_size, 1)

    def share(self) -> float:
        return min(self.fh.tell() / self.size, 1.0)


def _csv_input(path: Path, *, label: str, limits: TableLimits, chunk_rows: int) -> Input:
    import pyarrow.csv as pcsv

    if path.stat().st_size > limits.max_bytes:
        raise limits.too_large(label, f"is {path.stat().st_size / 2**20:,.0f} MB")
    state: dict[str, _Counting] = {}

    def chunks() -> Iterator[pa.Table]:
        counting = state["file"] = _Counting(path)
        seen, pending, pending_rows = 0, [], 0
        try:
            # an empty field is a missing value, text included, as pandas (and so training) reads a CSV
            reader = pcsv.open_csv(counting.fh, read_options=pcsv.ReadOptions(block_size=8 << 20),
                                   convert_options=pcsv.ConvertOptions(strings_can_be_null=True))
            if len(reader.schema) > limits.columns:
                raise limits.too_many_columns(label, len(reader.schema))
            for batch in reader:
                seen += batch.num_rows
                if seen > limits.rows:
                    raise limits.too_many_rows(label, seen, more_than=True)
                pending.append(batch)
                pending_rows += batch.num_rows
                while pending_rows >= chunk_rows:
                    table = pa.Table.from_batches(pending)
                    yield table.slice(0, chunk_rows)
                    rest = table.slice(chunk_rows)
                    pending, pending_rows = rest.to_batches(), rest.num_rows
            if pending_rows:
                yield pa.Table.from_batches(pending)
            if seen == 0:
                raise InvalidInput(f"{label} has a header but no rows")
        except pa.ArrowInvalid as exc:
            raise InvalidInput(f"{label} could not be read as CSV after row {seen:,}: "
                               f"{str(exc).splitlines()[0]}") from None
        finally:
            counting.fh.close()

    return Input(label, None, chunks, progress=lambda: state["file"].share() if "file" in state else 0.0)


# -- outputs -------------------------------------------------------------------------------------

def output_format(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInput(f"output {name!r} must end in .parquet or .csv")
    return suffix[1:]


class FileOutput:
    """Rows written chunk by chunk to a temporary file beside ``final``; ``publish`` renames it into place."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.format = output_format(final.name)
        if final.is_dir():
            raise InvalidInput(f"output {str(final)!r} is a folder; name a file ending in .parquet or .csv")
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = final.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{final.name}")
        self._writer: Any = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            if self.format == "parquet":
                import pyarrow.parquet as pq

                self._writer = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
            else:
                import pyarrow.csv as pcsv

                from core.platform.exports import csv_safe_schema

                self._writer = pcsv.CSVWriter(self.tmp, csv_safe_schema(table.schema))
            self.schema = table.schema
        conformed = _conform(table, self.schema)
        if self.format != "parquet":  # cells a spreadsheet would run as formulas are escaped
            from core.platform.exports import csv_safe_table

            conformed = csv_safe_table(conformed)
        self._writer.write_table(conformed)
        self.rows += table.num_rows

    def publish(self) -> str:
        """Close, flush to disk and rename into place; the sha256 of what was published."""
        if self._writer is None:
            raise InvalidInput("nothing was scored: the input has no rows")
        self._writer.close()
        self._writer = None
        digest = _fsync_and_hash(self.tmp)
        os.replace(self.tmp, self.final)
        _fsync_dir(self.final.parent)
        return digest

    def discard(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the temporary file goes anyway
                pass
            self._writer = None
        self.tmp.unlink(missing_ok=True)

    @property
    def where(self) -> str:
        return str(self.final)


class StoreOutput(FileOutput):
    """An output kept in the data store (a queued job's result, downloaded later): written locally, then put."""

    def __init__(self, store: DataStore, key: str, scratch: Path) -> None:
        self.store, self.key = store, key
        target = store.path(key) if isinstance(store, LocalStore) else scratch / f"{uuid.uuid4().hex}-{Path(key).name}"
        super().__init__(target)

    def publish(self) -> str:
        digest = super().publish()
        if not isinstance(self.store, LocalStore):
            try:
                self.store.put(self.key, self.final)  # an S3 object appears whole or not at all
            finally:
                self.final.unlink(missing_ok=True)
        return digest

    @property
    def where(self) -> str:
        return self.key


class TableOutput:
    """Rows appended to a table of a write-enabled SQL destination, in one transaction: a run killed midway
    commits nothing. A ``batch_id`` column says which run wrote each row."""

    def __init__(self, url: str, table: str, *, label: str) -> None:
        from sqlalchemy import create_engine

        if not table.replace("_", "").isalnum() or not table[:1].isalpha() or len(table) > 63:
            raise InvalidInput(f"destination table {table!r} is not allowed: letters, digits and '_', starting "
                               "with a letter, at most 63")
        self.table, self.label = table, label
        self.engine = create_engine(url, future=True)
        self.conn = self.engine.connect()
        self.tx = self.conn.begin()
        self.rows = 0
        self._hash = hashlib.sha256()

    def write(self, table: pa.Table) -> None:
        frame = table.to_pandas()
        frame.to_sql(self.table, self.conn, if_exists="append", index=False, chunksize=10_000, method="multi")
        sink = pa.BufferOutputStream()  # the output hash covers the rows as Arrow wrote them
        with pa.ipc.new_stream(sink, table.schema) as stream:
            stream.write_table(table)
        self._hash.update(sink.getvalue())
        self.rows += table.num_rows

    def publish(self) -> str:
        self.tx.commit()
        self.conn.close()
        self.engine.dispose()
        return self._hash.hexdigest()

    def discard(self) -> None:
        try:
            self.tx.rollback()
            self.conn.close()
        finally:
            self.engine.dispose()

    @property
    def where(self) -> str:
        return self.label


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A later chunk in the first chunk's column types (an all-null chunk of a text column, ints vs floats)."""
    if table.schema.equals(schema):
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise InvalidInput(f"the output's columns changed type between chunks ({str(exc).splitlines()[0]}); "
                           "write Parquet with consistent input types") from None


def _fsync_and_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(4 << 20), b""):
            digest.update(block)
        os.fsync(fh.fileno())
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
