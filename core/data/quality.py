"""The quality certificate: a dataset's schema (inferred from version 1, then edited by people)
and the checks every version is held to.

A schema is a small JSON document people can read and edit::

    {"strict": true, "max_duplicate_share": 0.01, "max_row_change": 0.5,
     "columns": {"age": {"dtype": "integer", "nullable": false, "min": 18, "max": 95},
                 "plan": {"dtype": "string", "nullable": true, "max_null_share": 0.1,
                          "allowed": ["basic", "pro"]}}}

Presence, nullability, ranges and allowed values are validated by pandera (vectorised built-in
checks); dtype families, null shares, duplicate rows and the row-count change come from the
version's profile. Every check reports what was observed and what was expected.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from core.data.profile import TOP_N
from core.errors import InvalidInput

FAMILIES = ("integer", "float", "string", "boolean", "datetime", "any")
COLUMN_KEYS = {"dtype", "nullable", "max_null_share", "min", "max", "allowed"}
TABLE_KEYS = {"strict", "columns", "max_duplicate_share", "max_row_change"}
RANGE_MARGIN = 0.25  # inferred ranges are the observed ones widened by a quarter of their span
DEFAULT_ROW_CHANGE = 0.5


@dataclass(frozen=True)
class Certificate:
    passed: bool
    checks: list[dict[str, Any]]  # {check, column, passed, observed, expected}
    at: datetime
    schema_version: int

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["passed"]]


def family(dtype: str) -> str:
    """The dtype family a schema speaks of: integer, float, string, boolean, datetime."""
    if dtype.startswith(("int", "uint", "Int", "UInt")):
        return "integer"
    if dtype.startswith(("float", "Float")):
        return "float"
    if dtype in ("bool", "boolean"):
        return "boolean"
    if dtype.startswith("datetime"):
        return "datetime"
    return "string"


# -- inferring and checking a schema -------------------------------------------------------------

def infer_schema(profile: dict[str, Any]) -> dict[str, Any]:
    """A schema from version 1's profile: types, nullability, widened ranges, allowed categories."""
    rows = profile["rows"]
    columns: dict[str, dict[str, Any]] = {}
    for col in profile["columns"]:
        spec: dict[str, Any] = {"dtype": "any" if col["kind"] == "empty" else family(col["dtype"]),
                                "nullable": col["missing"] > 0}
        if spec["nullable"]:
            spec["max_null_share"] = round(min(1.0, col["missing_share"] * 1.5 + 0.05), 4)
        if col["kind"] == "numeric" and col.get("min") is not None:
            spec.update(_widened(col["min"], col["max"], integer=spec["dtype"] == "integer"))
        if col["kind"] == "categorical" and col["unique"] <= TOP_N and col["unique"] * 5 <= rows:
            spec["allowed"] = sorted(str(v) for v, _ in col["top"])
        columns[col["name"]] = spec
    duplicate_share = profile["duplicate_rows"] / rows if rows else 0.0
    return {"strict": True, "max_duplicate_share": round(min(1.0, duplicate_share + 0.01), 4),
            "max_row_change": DEFAULT_ROW_CHANGE, "columns": columns}


def _widened(lo: float, hi: float, *, integer: bool) -> dict[str, float]:
    span = hi - lo
    new_lo, new_hi = lo - RANGE_MARGIN * span, hi + RANGE_MARGIN * span
    if lo >= 0:
        new_lo = max(new_lo, 0.0)
    if integer:
        return {"min": int(math.floor(new_lo)), "max": int(math.ceil(new_hi))}
    return {"min": _round_sig(new_lo, math.floor), "max": _round_sig(new_hi, math.ceil)}


def _round_sig(x: float, direction: Any) -> float:
    if x == 0:
        return 0.0
    digits = 3 - math.floor(math.log10(abs(x)))  # four significant digits, rounded outwards
    return round(direction(round(x * 10.0**digits, 6)) / 10.0**digits, max(digits, 0))


def check_schema(spec: Any) -> dict[str, Any]:
    """Validate an edited schema; the error names the key and what is allowed."""
    if not isinstance(spec, dict):
        raise InvalidInput(f"a schema is a JSON object; got {type(spec).__name__}")
    unknown = set(spec) - TABLE_KEYS
    if unknown:
        raise InvalidInput(f"unknown schema keys {sorted(unknown)}; allowed are {sorted(TABLE_KEYS)}")
    columns = spec.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise InvalidInput("a schema needs 'columns': an object of column name → rules")
    for key in ("max_duplicate_share", "max_row_change"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, (int, float)) or value < 0):
            raise InvalidInput(f"{key} must be a number ≥ 0 (or null to skip the check); got {value!r}")
    for name, rules in columns.items():
        where = f"column {name!r}"
        if not isinstance(rules, dict):
            raise InvalidInput(f"{where}: rules must be an object; got {rules!r}")
        if set(rules) - COLUMN_KEYS:
            raise InvalidInput(f"{where}: unknown keys {sorted(set(rules) - COLUMN_KEYS)}; "
                               f"allowed are {sorted(COLUMN_KEYS)}")
        if rules.get("dtype", "any") not in FAMILIES:
            raise InvalidInput(f"{where}: dtype {rules.get('dtype')!r} is unknown; use one of {', '.join(FAMILIES)}")
        for key in ("min", "max", "max_null_share"):
            if rules.get(key) is not None and not isinstance(rules[key], (int, float)):
                raise InvalidInput(f"{where}: {key} must be a number; got {rules[key]!r}")
        if rules.get("min") is not None and rules.get("max") is not None and rules["min"] > rules["max"]:
            raise InvalidInput(f"{where}: min {rules['min']} is above max {rules['max']}")
        if "allowed" in rules and not isinstance(rules["allowed"], list):
            raise InvalidInput(f"{where}: allowed must be a list of values; got {rules['allowed']!r}")
    return spec


def parse_schema_text(text: str) -> dict[str, Any]:
    """A schema typed into the page, as JSON."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the schema is not valid JSON: {exc.msg} at line {exc.lineno}, "
                           f"column {exc.colno}") from None
    return check_schema(spec)


# -- certifying a version ------------------------------------------------------------------------

def certify(frame: pd.DataFrame, *, profile: dict[str, Any], spec: dict[str, Any], schema_version: int,
            previous_rows: int | None, at: datetime) -> Certificate:
    """Hold one version (its frame and profile) to the dataset's schema."""
    prof = {c["name"]: c for c in profile["columns"]}
    rules = spec["columns"]
    checks: list[dict[str, Any]] = []
    compatible = [n for n in rules if n in prof and _compatible(rules[n].get("dtype", "any"), prof[n], frame[n])]
    failures = _pandera_failures(frame, rules, compatible)

    for name, rule in rules.items():
        if name not in prof:
            checks.append(_check("column present", name, False, "missing", "present"))
            continue
        col, expected_type = prof[name], rule.get("dtype", "any")
        ok_type = name in compatible
        checks.append(_check("dtype", name, ok_type, col["dtype"] if col["kind"] != "empty" else "all null",
                             expected_type))
        checks.append(_nulls_check(name, rule, col))
        if not ok_type:
            continue
        if rule.get("min") is not None or rule.get("max") is not None:
            bad = failures.get((name, "in_range"))
            observed = f"min {_fmt(col.get('min'))}, max {_fmt(col.get('max'))}"
            if bad is not None:
                observed += f" ({_rows(len(bad))} outside)"
            checks.append(_check("range", name, bad is None, observed,
                                 f"{_fmt(rule.get('min'))} ≤ x ≤ {_fmt(rule.get('max'))}"))
        if rule.get("allowed") is not None:
            bad = failures.get((name, "isin"))
            observed = (f"{col.get('unique', 0)} distinct values, all allowed" if bad is None else
                        f"unexpected: {_list(bad.unique())} ({_rows(len(bad))})")
            checks.append(_check("allowed values", name, bad is None, observed,
                                 f"one of: {_list(rule['allowed'])}"))
    extra = [n for n in prof if n not in rules]
    if spec.get("strict", True):
        checks.append(_check("no unexpected columns", None, not extra,
                             f"extra: {_list(extra)}" if extra else "none", "only the schema's columns"))
    checks += _table_checks(profile, spec, previous_rows)
    return Certificate(passed=all(c["passed"] for c in checks), checks=checks, at=at, schema_version=schema_version)


def _compatible(expected: str, col: dict[str, Any], series: pd.Series) -> bool:
    actual = family(col["dtype"])
    if expected == "any" or col["kind"] == "empty" or actual == expected:
        return True
    if expected == "float" and actual == "integer":
        return True
    if expected == "integer" and actual == "float":  # pandas turns an int column with nulls into float
        values = series.to_numpy(dtype="float64", na_value=0.0)
        return bool((values % 1 == 0).all())
    return False


def _pandera_failures(frame: pd.DataFrame, rules: dict[str, dict[str, Any]],
                      compatible: list[str]) -> dict[tuple[str, str], pd.Series]:
    """Run ranges, allowed values and nullability through pandera; failing values by (column, check)."""
    import pandera.pandas as pa

    columns = {}
    for name in compatible:
        rule, checks = rules[name], []
        if rule.get("min") is not None or rule.get("max") is not None:
            lo = rule.get("min") if rule.get("min") is not None else -math.inf
            hi = rule.get("max") if rule.get("max") is not None else math.inf
            checks.append(pa.Check.in_range(lo, hi))
        if rule.get("allowed") is not None:
            checks.append(pa.Check.isin(rule["allowed"]))
        if checks:  # presence, types and null shares are checked from the profile
            columns[name] = pa.Column(checks=checks, nullable=True)
    if not columns:
        return {}
    try:
        pa.DataFrameSchema(columns).validate(frame, lazy=True, inplace=True)  # no copy: nothing is coerced
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        kind = cases["check"].astype(str).str.extract(r"^(\w+)", expand=False)
        return {(str(col), str(k)): group["failure_case"]
                for (col, k), group in cases.assign(kind=kind).groupby(["column", "kind"])}
    return {}


def _nulls_check(name: str, rule: dict[str, Any], col: dict[str, Any]) -> dict[str, Any]:
    missing, share = col["missing"], col["missing_share"]
    observed = f"{missing} null ({share:.1%})" if missing else "no nulls"
    if not rule.get("nullable", True):
        return _check("nulls", name, missing == 0, observed, "no nulls")
    limit = rule.get("max_null_share")
    if limit is None:
        return _check("nulls", name, True, observed, "any share")
    return _check("nulls", name, share <= limit, observed, f"≤ {limit:.1%} null")


def _table_checks(profile: dict[str, Any], spec: dict[str, Any], previous_rows: int | None) -> list[dict[str, Any]]:
    rows, dups = profile["rows"], profile["duplicate_rows"]
    out = []
    limit = spec.get("max_duplicate_share")
    if limit is not None:
        share = dups / rows if rows else 0.0
        out.append(_check("duplicate rows", None, share <= limit, f"{dups} rows ({share:.2%})", f"≤ {limit:.2%}"))
    limit = spec.get("max_row_change")
    if limit is not None:
        if not previous_rows:
            out.append(_check("row count change", None, True, f"{rows} rows (first version)", f"within ±{limit:.0%}"))
        else:
            change = rows / previous_rows - 1
            out.append(_check("row count change", None, abs(change) <= limit,
                              f"{change:+.1%} ({previous_rows} → {rows} rows)", f"within ±{limit:.0%}"))
    return out


def _check(check: str, column: str | None, passed: bool, observed: str, expected: str) -> dict[str, Any]:
    return {"check": check, "column": column, "passed": bool(passed), "observed": observed, "expected": expected}


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.6g}" if isinstance(x, float) else str(x)


def _list(values: Any, limit: int = 8) -> str:
    items = [repr(v) if isinstance(v, str) else str(v) for v in list(values)[:limit]]
    more = len(list(values)) - limit
    return ", ".join(items) + (f" and {more} more" if more > 0 else "")


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"
