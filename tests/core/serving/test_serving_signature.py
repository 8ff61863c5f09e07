"""Records against a model signature: casting, missing columns, uncastable values, extra columns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.serving.signature import Column, InputSchema, RecordError, merge, split_rows

SCHEMA = InputSchema((Column("age", "double"), Column("tenure", "long"), Column("plan", "string"),
                      Column("senior", "boolean"), Column("note", "string", required=False)))


def good(**changes: object) -> dict:
    return {"age": 30.5, "tenure": 12, "plan": "basic", "senior": False} | changes


def test_casts_each_column_to_its_type() -> None:
    out = SCHEMA.coerce([good(), good(age=None, tenure="7", plan=5, senior="TRUE"), good(age="41", senior=1)])
    assert out.rows == 3 and out.ignored == ()
    assert out.columns["age"].dtype == np.float64 and math.isnan(out.columns["age"][1])
    assert out.columns["age"][2] == 41.0
    assert out.columns["tenure"].dtype == np.int64 and out.columns["tenure"].tolist() == [12, 7, 12]
    assert out.columns["plan"].tolist() == ["basic", "5", "basic"]
    assert out.columns["senior"].dtype == bool and out.columns["senior"].tolist() == [False, True, True]
    assert out.columns["note"].tolist() == [None, None, None]  # optional and absent


def test_a_missing_whole_number_keeps_the_column_float() -> None:
    out = SCHEMA.coerce([good(tenure=None), good()])
    assert out.columns["tenure"].dtype == np.float64 and math.isnan(out.columns["tenure"][0])


@pytest.mark.parametrize(("record", "column", "words"), [
    ({"age": 1.0, "plan": "x", "senior": True}, "tenure", "has no column 'tenure'"),
    (good(age="old"), "age", "'old' cannot be read as a number (double)"),
    (good(age={"v": 1}), "age", "cannot be read as a number"),
    (good(age=[1.0]), "age", "cannot be read as a number"),
    (good(tenure=1.5), "tenure", "a whole number (long)"),
    (good(tenure=2**70), "tenure", "a whole number (long)"),
    (good(plan=["a"]), "plan", "cannot be read as a string"),
    (good(senior="perhaps"), "senior", "true or false"),
    (good(senior=2), "senior", "true or false"),
])
def test_refusals_name_the_record_and_the_column(record: dict, column: str, words: str) -> None:
    with pytest.raises(RecordError) as caught:
        SCHEMA.coerce([good(), good(), record])
    assert caught.value.record == 2 and caught.value.column == column
    assert caught.value.field == f"records[2].{column}"
    assert words in str(caught.value) and "record 2" in str(caught.value)


def test_extra_columns_are_reported_once_sorted() -> None:
    out = SCHEMA.coerce([good(zeta=1, alpha=2), good(alpha=3), good()])
    assert out.ignored == ("alpha", "zeta")
    assert set(out.columns) == {"age", "tenure", "plan", "senior", "note"}


def test_untyped_schema_lets_pandas_infer() -> None:
    schema = InputSchema((Column("a"), Column("b")), typed=False)
    out = schema.coerce([{"a": 1, "b": "x"}, {"a": None, "b": "y"}])
    assert out.columns["a"].dtype == np.float64 and out.columns["b"].dtype == object
    with pytest.raises(RecordError, match="nested"):
        schema.coerce([{"a": [1], "b": "x"}])


def test_datetime_columns() -> None:
    schema = InputSchema((Column("at", "datetime"),))
    out = schema.coerce([{"at": "2026-01-02T03:04:05"}, {"at": None}])
    assert str(out.columns["at"][0]).startswith("2026-01-02T03:04:05")
    with pytest.raises(RecordError, match="record 1, column 'at'"):
        schema.coerce([{"at": "2026-01-02"}, {"at": "yesterday"}])


def test_merge_and_split_keep_row_order() -> None:
    a = SCHEMA.coerce([good(age=1.0), good(age=2.0)]).columns
    b = SCHEMA.coerce([good(age=3.0, tenure=None)]).columns
    merged = merge([a, b])
    assert merged["age"].tolist() == [1.0, 2.0, 3.0]
    assert merged["tenure"].dtype == np.float64  # int + float (missing) → float
    parts = split_rows(merged, 3, 2)
    assert [p["age"].tolist() for p in parts] == [[1.0], [2.0, 3.0]]
    frame = SCHEMA.frame(merged)
    assert list(frame.columns) == ["age", "tenure", "plan", "senior", "note"] and len(frame) == 3


def test_from_mlflow_signature_and_fallbacks() -> None:
    from mlflow.models import infer_signature

    from tests.support.mlflow_models import churn_data

    X, y = churn_data(200)
    schema = InputSchema.from_mlflow(infer_signature(X, y))
    assert schema.typed and schema.names == list(X.columns)
    assert {c.name: c.type for c in schema.columns}["tenure_months"] == "long"
    assert {c.name: c.type for c in schema.columns}["senior"] == "boolean"
    assert InputSchema.from_mlflow(None, ["a", "b"]).names == ["a", "b"]
    assert InputSchema.from_mlflow(None, None) is None
    example = schema.example()
    assert set(example) == set(X.columns) and all(len(v) == 1 for v in example.values())
