"""The quality certificate: schema inference from version 1, and each check with observed vs expected."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from core.data.profile import compute_profile
from core.data.quality import Certificate, certify, check_schema, family, infer_schema, parse_schema_text
from core.data.tables import read_table
from core.errors import InvalidInput

AT = datetime(2026, 1, 1, tzinfo=UTC)


def base_frame(rows: int = 200, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(18, 80, rows),
        "income": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(3000, 500, rows).round(2)),
        "plan": rng.choice(["basic", "pro", "team"], rows),
        "email": [f"user{i}@example.com" for i in range(rows)],
        "active": rng.random(rows) < 0.5,
    })


def profile_of(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    table = read_table(frame)
    return table.frame, compute_profile(table.frame, table.arrow, row_hashes=table.row_hashes)


def run(frame: pd.DataFrame, spec: dict, previous_rows: int | None = None) -> Certificate:
    canonical, profile = profile_of(frame)
    return certify(canonical, profile=profile, spec=spec, schema_version=1, previous_rows=previous_rows, at=AT)


def by_key(cert: Certificate) -> dict[tuple[str, str | None], dict]:
    return {(c["check"], c["column"]): c for c in cert.checks}


@pytest.fixture
def spec() -> dict:
    return infer_schema(profile_of(base_frame())[1])


def test_inferred_schema_has_types_nullability_ranges_and_categories(spec: dict) -> None:
    cols = spec["columns"]
    assert cols["age"]["dtype"] == "integer" and cols["age"]["nullable"] is False
    assert cols["age"]["min"] <= 18 and cols["age"]["max"] >= 79 and cols["age"]["min"] >= 0
    assert cols["income"]["dtype"] == "float" and cols["income"]["nullable"] is True
    assert 0.1 < cols["income"]["max_null_share"] < 0.3
    assert cols["plan"]["allowed"] == ["basic", "pro", "team"]
    assert "allowed" not in cols["email"], "high-cardinality text gets no category list"
    assert cols["active"] == {"dtype": "boolean", "nullable": False}
    assert spec["strict"] is True and spec["max_row_change"] == 0.5
    assert check_schema(spec) is spec


def test_the_first_version_passes_its_own_schema(spec: dict) -> None:
    cert = run(base_frame(), spec)
    assert cert.passed, cert.failed
    checks = by_key(cert)
    assert checks[("row count change", None)]["observed"] == "200 rows (first version)"
    assert checks[("allowed values", "plan")]["observed"] == "3 distinct values, all allowed"


def test_new_data_within_the_schema_passes(spec: dict) -> None:
    cert = run(base_frame(rows=220, seed=2), spec, previous_rows=200)
    assert cert.passed, cert.failed
    assert by_key(cert)[("row count change", None)]["observed"] == "+10.0% (200 → 220 rows)"


def test_schema_breaking_version_lists_each_failure_with_observed_and_expected(spec: dict) -> None:
    bad = base_frame(seed=3)
    bad.loc[:4, "age"] = 150
    bad.loc[:2, "plan"] = "gold"
    bad["active"] = bad["active"].map({True: "yes", False: "no"})
    bad = bad.drop(columns=["email"]).assign(extra=1)
    cert = run(bad, spec, previous_rows=200)
    assert not cert.passed
    failed = {(c["check"], c["column"]): c for c in cert.failed}
    assert set(failed) == {("range", "age"), ("allowed values", "plan"), ("dtype", "active"),
                           ("column present", "email"), ("no unexpected columns", None)}
    assert failed[("range", "age")]["observed"] == "min 18, max 150 (5 rows outside, 2.500%)"
    expected = failed[("range", "age")]["expected"]
    assert f"≤ x ≤ {spec['columns']['age']['max']} (up to 0.10% of rows outside)" in expected
    assert failed[("allowed values", "plan")]["observed"] == "unexpected: 'gold' (3 rows)"
    assert failed[("dtype", "active")] | {} == {"check": "dtype", "column": "active", "passed": False,
                                                "observed": "object", "expected": "boolean"}
    assert failed[("no unexpected columns", None)]["observed"] == "extra: 'extra'"


def test_nulls_where_none_are_allowed_and_too_many_nulls(spec: dict) -> None:
    bad = base_frame(seed=4)
    bad["age"] = bad["age"].astype("float64")
    bad.loc[:9, "age"] = np.nan  # an int column with nulls arrives as float: still the integer family
    bad.loc[:120, "income"] = np.nan
    checks = by_key(run(bad, spec, previous_rows=200))
    assert checks[("dtype", "age")]["passed"] is True
    assert checks[("nulls", "age")] | {} == {"check": "nulls", "column": "age", "passed": False,
                                             "observed": "10 null (5.0%)", "expected": "no nulls"}
    missing = int(bad["income"].isna().sum())
    assert checks[("nulls", "income")]["passed"] is False
    assert checks[("nulls", "income")]["observed"] == f"{missing} null ({missing / 200:.1%})"


def test_fractional_values_in_an_integer_column_fail_the_type(spec: dict) -> None:
    bad = base_frame(seed=5)
    bad["age"] = bad["age"] + 0.5
    checks = by_key(run(bad, spec, previous_rows=200))
    assert checks[("dtype", "age")]["passed"] is False
    assert ("range", "age") not in checks, "value checks are skipped for a column of the wrong type"


def test_duplicates_and_row_count_change(spec: dict) -> None:
    frame = base_frame(seed=6)
    doubled = pd.concat([frame, frame.head(50)], ignore_index=True)
    checks = by_key(run(doubled, spec, previous_rows=100))
    assert checks[("duplicate rows", None)] | {} == {
        "check": "duplicate rows", "column": None, "passed": False, "observed": "50 rows (20.00%)",
        "expected": "≤ 1.00%"}
    assert checks[("row count change", None)]["observed"] == "+150.0% (100 → 250 rows)"
    assert checks[("row count change", None)]["passed"] is False


def test_checks_can_be_switched_off_by_editing_the_schema(spec: dict) -> None:
    spec = {**spec, "max_row_change": None, "strict": False}
    spec["columns"]["age"] = {"dtype": "integer", "nullable": False}
    bad = base_frame(seed=7).assign(extra=1)
    bad.loc[0, "age"] = 500
    checks = by_key(run(bad, spec, previous_rows=10))
    assert ("row count change", None) not in checks and ("range", "age") not in checks
    assert ("no unexpected columns", None) not in checks


def test_a_float_column_accepts_integers() -> None:
    spec = {"columns": {"x": {"dtype": "float", "nullable": False, "min": 0, "max": 10}}}
    assert run(pd.DataFrame({"x": [1, 2, 3]}), spec).passed


@pytest.mark.parametrize("dtype, expected", [("int64", "integer"), ("float64", "float"), ("bool", "boolean"),
                                             ("datetime64[ns]", "datetime"), ("object", "string")])
def test_dtype_families(dtype: str, expected: str) -> None:
    assert family(dtype) == expected


BAD_SCHEMAS = [
    ([], "a schema is a JSON object; got list"),
    ({"columns": {}}, "a schema needs 'columns'"),
    ({"columns": {"a": {}}, "colums": 1}, "unknown schema keys ['colums']"),
    ({"columns": {"a": {"dtype": "text"}}}, "column 'a': dtype 'text' is unknown; use one of integer"),
    ({"columns": {"a": {"min": 5, "max": 1}}}, "column 'a': min 5 is above max 1"),
    ({"columns": {"a": {"min": "5"}}}, "column 'a': min must be a number; got '5'"),
    ({"columns": {"a": {"allowed": "x"}}}, "column 'a': allowed must be a list"),
    ({"columns": {"a": {"nullable": True, "range": 1}}}, "column 'a': unknown keys ['range']"),
    ({"columns": {"a": {}}, "max_row_change": -1}, "max_row_change must be a number ≥ 0"),
]


@pytest.mark.parametrize("spec, message", BAD_SCHEMAS)
def test_edited_schemas_are_checked(spec: object, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        check_schema(spec)
    assert message in str(err.value)


def test_schema_text_must_be_json() -> None:
    with pytest.raises(InvalidInput, match=r"not valid JSON: Expecting .* at line 1, column 2"):
        parse_schema_text("{columns}")
    assert parse_schema_text('{"columns": {"a": {"dtype": "any"}}}')["columns"]["a"]["dtype"] == "any"
