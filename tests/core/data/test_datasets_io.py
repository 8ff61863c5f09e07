"""Reading tables: every format ends in one canonical form with one content hash; bad files say why."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.tables import read_parquet, read_table, write_parquet
from core.errors import InvalidInput


def sample() -> pd.DataFrame:
    return pd.DataFrame({
        "age": [21, 35, 47, 62],
        "income": [1200.5, None, 3100.0, 2500.25],
        "plan": ["basic", "pro", None, "basic"],
        "active": [True, False, True, True],
        "since": pd.to_datetime(["2024-01-01", "2024-02-15", None, "2025-06-30"]),
    })


def parquet_bytes(frame: pd.DataFrame, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, **kwargs)
    return buf.getvalue()


def test_same_table_as_csv_parquet_or_frame_has_one_hash() -> None:
    df = sample()
    as_csv = read_table(df.to_csv(index=False).encode(), filename="t.csv")
    as_parquet = read_table(parquet_bytes(df), filename="t.parquet")
    as_frame = read_table(df)
    assert as_csv.sha256 == as_parquet.sha256 == as_frame.sha256
    assert as_csv.dtypes == {"age": "int64", "income": "float64", "plan": "object", "active": "bool",
                             "since": "datetime64[ns]"}


def test_narrow_types_and_a_stored_index_do_not_change_the_hash() -> None:
    df = sample()
    narrow = df.astype({"age": "int16", "plan": "category"})
    indexed = df.set_index(pd.Index([10, 11, 12, 13], name="row"))
    assert read_table(narrow).sha256 == read_table(df).sha256
    assert read_table(parquet_bytes(narrow)).sha256 == read_table(df).sha256
    assert read_table(parquet_bytes(indexed, index=False)).sha256 == read_table(df).sha256
    assert read_table(parquet_bytes(indexed.reset_index(drop=True))).sha256 == read_table(df).sha256


def test_content_changes_change_the_hash() -> None:
    df = sample()
    base = read_table(df).sha256
    changed_value = df.copy()
    changed_value.loc[0, "age"] = 22
    renamed = df.rename(columns={"age": "years"})
    reordered = df.iloc[::-1]
    assert len({base, read_table(changed_value).sha256, read_table(renamed).sha256,
                read_table(reordered).sha256}) == 4


def test_stored_parquet_reads_back_with_the_hashed_dtypes(tmp_path: Path) -> None:
    table = read_table(sample().to_csv(index=False).encode(), filename="t.csv")
    write_parquet(table.arrow, tmp_path / "v.parquet")
    back = read_parquet(tmp_path / "v.parquet")
    pd.testing.assert_frame_equal(back, table.frame)
    assert read_table(back).sha256 == table.sha256


def test_semicolon_csv_path_and_file_object(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("a;b\n1;x\n2;\n", encoding="utf-8")
    from_path = read_table(path)
    with path.open("rb") as fh:
        from_file = read_table(fh, filename="semi.csv")
    assert from_path.sha256 == from_file.sha256
    assert from_path.frame.to_dict("list") == {"a": [1, 2], "b": ["x", None]}


def test_header_names_are_stripped_and_a_bom_is_ignored() -> None:
    table = read_table("\ufeff a , b\n1,2\n".encode(), filename="t.csv")
    assert list(table.frame.columns) == ["a", "b"]


def test_duplicate_rows_share_a_row_hash() -> None:
    table = read_table(pd.DataFrame({"a": [1, 1, 2], "b": ["x", "x", "x"]}))
    assert table.row_hashes[0] == table.row_hashes[1] != table.row_hashes[2]
    assert table.row_hashes.dtype == np.uint64


BAD_FILES = {
    "empty": (b"", "t.csv", "is empty (0 bytes)"),
    "blank lines": (b"\n\n  \n", "t.csv", "only blank lines"),
    "binary named csv": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "t.csv", "looks binary"),
    "utf-16": ("a,b\n1,2\n".encode("utf-16"), "t.csv", "looks binary"),
    "latin-1 header": ("a,café\n1,2\n".encode("latin-1"), "t.csv", "is not UTF-8 text: byte 0xe9 on line 1"),
    "latin-1 late in the file": (b"a,b\n" + b"1,x\n" * 30_000 + "2,caf\xe9\n".encode("latin-1"), "t.csv",
                                 "column 'b' has bytes that cannot be decoded in data row 30001"),
    "duplicate columns": (b"a,b,a\n1,2,3\n", "t.csv", "repeats the column name 'a' (columns 1 and 3)"),
    "duplicate after stripping": (b"a, a\n1,2\n", "t.csv", "repeats the column name 'a'"),
    "blank column name": (b"a,,c\n1,2,3\n", "t.csv", "blank column name (column 2 of 3)"),
    "ragged short": (b"a,b,c\n1,2,3\n4,5\n", "t.csv", "ragged rows: line 3 has 2 fields where the header has 3"),
    "ragged long": (b"a,b\n1,2\n3,4\n5,6,7\n", "t.csv", "line 4 has 3 fields where the header has 2"),
    "header only": (b"a,b,c\n", "t.csv", "has a header but no rows (3 columns, 0 rows)"),
    "not parquet": (b"a,b\n1,2\n", "t.parquet", "is not a Parquet file"),
    "truncated parquet": (parquet_bytes(sample())[:-40], "t.parquet", "is not a readable Parquet file"),
}


@pytest.mark.parametrize("content, filename, reason", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_files_are_refused_with_a_one_line_reason(content: bytes, filename: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as err:
        read_table(content, filename=filename)
    assert reason in str(err.value)
    assert str(err.value).startswith(filename)
    assert "\n" not in str(err.value)


def test_files_over_the_limit_are_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"a\n" + b"1\n" * 600_000)
    with pytest.raises(InvalidInput, match=r"big.csv is 1.1 MB; the limit is 1 MB"):
        read_table(path, max_bytes=2**20)


def test_nested_columns_are_refused() -> None:
    with pytest.raises(InvalidInput, match="column 'tags' of t.parquet has the nested type list"):
        read_table(parquet_bytes(pd.DataFrame({"tags": [[1, 2], [3]]})), filename="t.parquet")


def test_unusual_objects_in_a_query_result_are_kept_as_text() -> None:
    import uuid

    ids = [uuid.UUID(int=1), uuid.UUID(int=2)]
    table = read_table(pd.DataFrame({"id": ids, "n": [1, 2]}))
    assert table.frame["id"].tolist() == [str(i) for i in ids]
