"""Decompression bombs (issue 14): a small file that would expand into a huge table is refused
from its footer or header, before its data is read, with a message naming the limit — for
dataset uploads and drift batches alike, and without the process's memory growing.

How long a refusal takes is printed by ``bench/table_bombs.py`` (tests assert no timings).
"""

from __future__ import annotations

import gc
import gzip
import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.actors import Actor
from core.data import datasets
from core.data.tables import TableLimits, read_table
from core.errors import InvalidInput
from core.monitoring import checks
from core.platform.database import transaction
from core.settings import Settings, get_settings
from tests.core.monitoring.conftest import trained, trained_template  # noqa: F401 - fixtures
from tests.support.training import SCIENTIST, mlflow_template  # noqa: F401 - a fixture

ALICE = Actor("alice", "scientist")
BOMB_ROWS = 20_000_000
BOMB_MESSAGE = "bomb.parquet has 20,000,000 rows; the limit is 10,000,000 (LEANOPS_MAX_TABLE_ROWS)"
MB = 2**20


def write_bomb(path: Path, rows: int = BOMB_ROWS) -> Path:
    """``rows`` of a constant int column, zstd: ~90 KB on disk, 160 MB once read (written 1 M rows at a time)."""
    chunk = pa.table({"x": pa.array(np.zeros(1_000_000, dtype=np.int64))})
    with pq.ParquetWriter(path, chunk.schema, compression="zstd") as writer:
        for _ in range(rows // 1_000_000):
            writer.write_table(chunk)
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bomb(tmp_path_factory.mktemp("bomb") / "bomb.parquet")


@contextmanager
def peak_growth() -> Iterator[dict[str, float]]:
    """The process's peak resident memory during the block, less what it held before (MB, Linux)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:  # reset the kernel's high-water mark to the RSS now
        fh.write("5")
    before = _status("VmRSS")
    found: dict[str, float] = {}
    yield found
    found["mb"] = (_status("VmHWM") - before) / 1024


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(f"{field}:"))


class CountingFile(io.FileIO):
    """A binary file that counts the bytes read from it (as pyarrow and tables.py read it)."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int | None:
        n = super().readinto(buffer)
        self.read_bytes += n or 0
        return n


def spooled(content: bytes) -> IO[bytes]:
    """What the API hands over: FastAPI's ``UploadFile.file``, spooled to disk past 1 KB here."""
    upload = tempfile.SpooledTemporaryFile(max_size=1024)
    upload.write(content)
    upload.seek(0)
    return upload


def register(factory, settings, data, *, filename: str, **kwargs) -> datasets.Registration:
    with transaction(factory) as session:
        return datasets.register(session, actor=ALICE, name="bomb", data=data, filename=filename,
                                 store=settings.home, source=f"test:{filename}", **kwargs)


# -- the limits ----------------------------------------------------------------------------------

def test_the_default_limits_are_the_settings_defaults() -> None:
    settings = get_settings()
    assert TableLimits.of(settings) == TableLimits() == TableLimits(rows=10_000_000, columns=2_000, mb=4096)
    assert TableLimits.of(get_settings(max_table_rows=5, max_table_columns=6, max_table_mb=7)) == TableLimits(5, 6, 7)
    with pytest.raises(InvalidInput, match="LEANOPS_MAX_TABLE_ROWS"):
        get_settings(max_table_rows=0)


# -- the Parquet bomb ----------------------------------------------------------------------------

def test_the_bomb_is_small(bomb: Path) -> None:
    assert bomb.stat().st_size < 200_000
    assert pq.ParquetFile(bomb).metadata.num_rows == BOMB_ROWS


@pytest.mark.parametrize("form", ["path", "bytes", "spooled upload"])
def test_the_parquet_bomb_is_refused_by_registration_without_memory_growth(factory, settings, bomb: Path,
                                                                           form: str) -> None:
    if form == "path":
        data: object = bomb
    elif form == "bytes":
        data = bomb.read_bytes()
    else:
        data = spooled(bomb.read_bytes())
    with peak_growth() as grown, pytest.raises(InvalidInput) as err:
        register(factory, settings, data, filename="bomb.parquet", max_bytes=200 * MB)
    assert str(err.value) == BOMB_MESSAGE
    assert grown["mb"] < 100, f"refusing the bomb grew the process by {grown['mb']:.0f} MB"
    with factory() as session:
        assert datasets.list_datasets(session) == []


def test_the_parquet_bomb_is_refused_as_a_drift_batch_without_memory_growth(trained, bomb: Path) -> None:  # noqa: F811
    with peak_growth() as grown, pytest.raises(InvalidInput) as err:
        checks.run_check(trained.factory, trained.settings, actor=SCIENTIST, model="churn", source="upload",
                         current=bomb, filename="bomb.parquet", report=False)
    assert str(err.value) == BOMB_MESSAGE
    assert grown["mb"] < 100, f"refusing the bomb grew the process by {grown['mb']:.0f} MB"
    with trained.factory() as session:
        assert checks.history(session, model="churn") == []


def test_a_drift_batch_follows_the_table_limit_settings(trained, bomb: Path) -> None:  # noqa: F811
    settings = trained.settings.model_copy(update={"max_table_rows": 30_000_000, "max_table_mb": 100})
    with pytest.raises(InvalidInput, match=r"bomb.parquet holds about 153 MB of data once read "
                                           r"\(20,000,000 rows x 1 columns\); the limit is 100 MB uncompressed "
                                           r"\(LEANOPS_MAX_TABLE_MB\)"):
        checks.run_check(trained.factory, settings, actor=SCIENTIST, model="churn", source="upload",
                         current=bomb, filename="bomb.parquet", report=False)


def test_a_staged_drift_batch_over_the_upload_limit_is_not_written(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"batch.csv is 2.0 MB; the limit is 1 MB \(LEANOPS_MAX_UPLOAD_MB\)"):
        checks.stage_upload(Settings.model_construct(home=tmp_path), "batch.csv", b"a\n" + b"1\n" * MB, max_bytes=MB)
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").iterdir())


def test_parquet_over_the_column_and_size_limits_is_refused_from_its_footer(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    wide = tmp_path / "wide.parquet"
    pq.write_table(pa.table({f"c{i}": [1, 2] for i in range(5)}), wide)
    big = tmp_path / "big.parquet"
    pq.write_table(pa.table({"x": np.zeros(1_000_000, dtype=np.int32)}), big)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda *a, **k: pytest.fail("the data was read"))
    with pytest.raises(InvalidInput, match=r"^wide.parquet has 5 columns; the limit is 3 \(LEANOPS_MAX_TABLE_COLUMNS"):
        read_table(wide, limits=TableLimits(columns=3))
    # int32 on disk, 8 bytes a value once canonical: ~7.6 MB
    with pytest.raises(InvalidInput, match=r"^big.parquet holds about 8 MB of data once read \(1,000,000 rows x 1 "
                                           r"columns\); the limit is 5 MB uncompressed \(LEANOPS_MAX_TABLE_MB\)$"):
        read_table(big, limits=TableLimits(mb=5))


def test_parquet_text_that_expands_past_its_footer_stops_being_read(tmp_path: Path) -> None:
    """Dictionary-encoded text is small in the footer; reading stops once the table outgrows the limit."""
    path = tmp_path / "text.parquet"
    pq.write_table(pa.table({"s": ["x" * 1000] * 20_000}), path, compression="zstd")
    assert path.stat().st_size < 50_000
    with pytest.raises(InvalidInput, match=r"^text.parquet holds more than 5 MB of data once read; the limit is 5 MB"):
        read_table(path, limits=TableLimits(mb=5))
    assert read_table(path, limits=TableLimits(mb=50)).frame.shape == (20_000, 1)


# -- CSV -----------------------------------------------------------------------------------------

def test_a_csv_with_too_many_columns_is_refused_before_parsing(factory, settings, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.csv as pcsv

    path = tmp_path / "wide.csv"
    names = [f"c{i}" for i in range(100_000)]
    path.write_text(",".join(names) + "\n" + ",".join("1" * len(names)) + "\n")
    monkeypatch.setattr(pcsv, "read_csv", lambda *a, **k: pytest.fail("the CSV was parsed"))
    monkeypatch.setattr(pcsv, "open_csv", lambda *a, **k: pytest.fail("the CSV was parsed"))
    with pytest.raises(InvalidInput) as err:
        register(factory, settings, path, filename="wide.csv", max_bytes=200 * MB)
    assert str(err.value) == "wide.csv has 100,000 columns; the limit is 2,000 (LEANOPS_MAX_TABLE_COLUMNS)"
    # a header longer than the first chunk read stops being read once it is over the limit
    long = tmp_path / "long.csv"
    long.write_bytes(b",".join(b"column_%07d" % i for i in range(200_000)) + b"\n1\n")
    with pytest.raises(InvalidInput, match=r"^long.csv has more than 2,000 columns; the limit is 2,000"):
        read_table(long)
    # quoted names may hold the delimiter: they are counted as the CSV parser would
    quoted = b'"a,b","c,d",e\n1,2,3\n'
    with pytest.raises(InvalidInput, match=r"^q.csv has 3 columns; the limit is 2 "):
        read_table(quoted, filename="q.csv", limits=TableLimits(columns=2))


def test_a_csv_over_the_row_limit_is_refused_without_reading_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 4_000_000)  # 16 MB
    with CountingFile(path) as fh, pytest.raises(InvalidInput) as err:
        read_table(fh, filename="long.csv", limits=TableLimits(rows=1000))
    assert str(err.value) == "long.csv has more than 1,000 rows; the limit is 1,000 (LEANOPS_MAX_TABLE_ROWS)"
    assert fh.read_bytes < 4 * MB, f"{fh.read_bytes / MB:.1f} MB of 16 MB were read"
    with pytest.raises(InvalidInput, match="more than 1,000 rows"):
        read_table(path, limits=TableLimits(rows=1000))
    with pytest.raises(InvalidInput, match="more than 1,000 rows"):
        read_table(path.read_bytes(), filename="long.csv", limits=TableLimits(rows=1000))


def test_line_breaks_that_are_not_rows_do_not_count(tmp_path: Path) -> None:
    """Blank lines and line breaks inside quotes: more line breaks than the limit, but not more rows."""
    text = "id,note\n" + "".join(f'{i},"line one\nline two\nline three"\n\n\n' for i in range(5))
    table = read_table(text.encode(), filename="notes.csv", limits=TableLimits(rows=5))
    assert table.frame["id"].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(InvalidInput, match=r"^notes.csv has more than 4 rows; the limit is 4 "):
        read_table(text.encode(), filename="notes.csv", limits=TableLimits(rows=4))


def test_lines_ended_by_a_lone_carriage_return_are_counted_too() -> None:
    content = b"a,b\r" + b"1,2\r" * 3000
    assert read_table(content, filename="mac.csv", limits=TableLimits(rows=3000, columns=2)).frame.shape == (3000, 2)
    with pytest.raises(InvalidInput, match=r"^mac.csv has more than 2,999 rows"):
        read_table(content, filename="mac.csv", limits=TableLimits(rows=2999))


def test_a_ragged_row_found_while_counting_rows_says_where(tmp_path: Path) -> None:
    content = b"a,b\n" + b"1,2\n" * 50 + b"3\n" + b"1,2\n" * 100
    with pytest.raises(InvalidInput, match=r"^r.csv has ragged rows: line 52 has 1 field where the header has 2"):
        read_table(content, filename="r.csv", limits=TableLimits(rows=60))


def test_compressed_csv_is_refused_not_decompressed(tmp_path: Path) -> None:
    content = b"a,b\n" + b"1,2\n" * 1000
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(content))
    for data in (path, path.read_bytes()):
        with pytest.raises(InvalidInput, match=r"^t.csv.gz is gzip-compressed; compressed CSV is not read"):
            read_table(data, filename="t.csv.gz")


# -- valid files are unchanged -------------------------------------------------------------------

def test_valid_uploads_in_every_form_register_as_one_version(factory, settings, tmp_path: Path) -> None:
    frame = pd.DataFrame({"age": range(3000), "plan": ["a", "b", "c"] * 1000, "x": np.linspace(0, 1, 3000)})
    csv = frame.to_csv(index=False).encode()
    first = register(factory, settings, spooled(csv), filename="t.csv", max_bytes=MB)
    assert first.created and first.version.rows == 3000
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    upload = spooled(path.read_bytes())
    for data, filename in [(csv, "t.csv"), (io.BytesIO(csv), "t.csv"), (path, "t.parquet"),
                           (path.read_bytes(), "t.parquet"), (upload, "t.parquet")]:
        again = register(factory, settings, data, filename=filename, max_bytes=MB,
                         limits=TableLimits(rows=3000, columns=3, mb=1))
        assert not again.created and again.version.sha256 == first.version.sha256
    assert not upload.closed  # read in place, and left to its owner


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"a\n" + b"1\n" * MB)
    with CountingFile(path) as fh, pytest.raises(InvalidInput, match=r"^big.csv is 2.0 MB; the limit is 1 MB"):
        read_table(fh, filename="big.csv", max_bytes=MB)
    assert fh.read_bytes == 0
