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

Inferred ranges come from version 1's quantiles, not its extremes: ``[q0.5% - w, q99.5% + w]`` with
``w = RANGE_TOLERANCE x (q99.5% - q0.5%)`` (a column that never goes below 0 keeps 0 as its floor), and
a range check passes while at most ``max_out_of_range_share`` of the rows (default 0.1 %) fall outside,
so a bigger sample of the same data passes. A row-count change beyond ``max_row_change`` is a
*warning* (shown, the certificate still passes) unless the policy's ``certificate.row_change: check``
makes it a check. A text column where a number or a clean category was expected gets a *hint* when its
values look like decimal commas, another separator or another encoding.
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
TABLE_KEYS = {"strict", "columns", "max_duplicate_share", "max_row_change", "max_out_of_range_share"}
RANGE_MARGIN = 0.25  # profiles without quantiles (older versions): the observed range widened by a quarter
RANGE_TOLERANCE = 1.0  # inferred ranges: the 0.5 %-99.5 % quantile span, widened by this many spans each side
DEFAULT_OUT_OF_RANGE_SHARE = 0.001  # a range check tolerates this share of rows outside (a long tail)
DEFAULT_ROW_CHANGE = 0.5
WORDS = {"integer": "whole number", "float": "number", "string": "text", "boolean": "true/false",
         "datetime": "date-time", "any": "anything"}


@dataclass(frozen=True)
class Certificate:
    passed: bool
    checks: list[dict[str, Any]]  # {check, column, passed, observed, expected[, warning, hint]}
    at: datetime
    schema_version: int

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The checks that fail the certificate (a warning never does)."""
        return [c for c in self.checks if not c["passed"] and not c.get("warning")]

    @property
    def warnings(self) -> list[dict[str, Any]]:
        """Checks outside their limit that only warn (the row-count change, unless the policy makes it a check)."""
        return [c for c in self.checks if not c["passed"] and c.get("warning")]

    def summary(self, limit: int = 3) -> str:
        """The failed checks in words, e.g. ``dtype annual_income: text, expected number``."""
        return describe_failed(self.failed, limit=limit)


def describe_failed(checks: list[dict[str, Any]], *, limit: int = 3) -> str:
    """Failed certificate checks in words, the first ``limit`` of them (a hint in brackets)."""
    parts = []
    for c in checks[:limit]:
        head = f"{c['check']} {c['column']}" if c.get("column") else str(c["check"])
        observed, expected = c.get("observed", ""), c.get("expected", "")
        if c["check"] == "dtype":
            observed = WORDS.get(family(str(observed)), str(observed)) if observed != "all null" else observed
            expected = WORDS.get(str(expected), str(expected))
        part = f"{head}: {observed}, expected {expected}"
        if c.get("hint"):
            part += f" ({c['hint']})"
        parts.append(part)
    more = len(checks) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


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
            spec.update(_inferred_range(col, integer=spec["dtype"] == "integer"))
        if col["kind"] == "categorical" and col["unique"] <= TOP_N and col["unique"] * 5 <= rows:
            spec["allowed"] = sorted(str(v) for v, _ in col["top"])
        columns[col["name"]] = spec
    duplicate_share = profile["duplicate_rows"] / rows if rows else 0.0
    return {"strict": True, "max_duplicate_share": round(min(1.0, duplicate_share + 0.01), 4),
            "max_row_change": DEFAULT_ROW_CHANGE, "columns": columns}


def _inferred_range(col: dict[str, Any], *, integer: bool) -> dict[str, float]:
    """From the 0.5 % and 99.5 % quantiles (``RANGE_TOLERANCE``); a profile without them: min/max widened."""
    if col.get("q005") is not None and col.get("q995") is not None:
        lo, hi = col["q005"], col["q995"]
        return _widened(lo, hi, integer=integer, margin=RANGE_TOLERANCE, floor=0.0 if col["min"] >= 0 else None)
    return _widened(col["min"], col["max"], integer=integer, margin=RANGE_MARGIN,
                    floor=0.0 if col["min"] >= 0 else None)


def _widened(lo: float, hi: float, *, integer: bool, margin: float = RANGE_MARGIN,
             floor: float | None = None) -> dict[str, float]:
    span = hi - lo
    new_lo, new_hi = lo - margin * span, hi + margin * span
    if floor is not None:
        new_lo = max(new_lo, floor)
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
    for key in ("max_duplicate_share", "max_row_change", "max_out_of_range_share"):
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
            previous_rows: int | None, at: datetime, row_change_blocks: bool = False) -> Certificate:
    """Hold one version (its frame and profile) to the dataset's schema.

    ``row_change_blocks`` (policy ``certificate.row_change: check``): a row-count change beyond the schema's
    ``max_row_change`` fails the certificate; otherwise it is a warning.
    """
    tolerated = spec.get("max_out_of_range_share", DEFAULT_OUT_OF_RANGE_SHARE) or 0.0
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
        if not ok_type and (hint := format_hint(frame[name], expected_type)):
            checks[-1]["hint"] = hint
        checks.append(_nulls_check(name, rule, col))
        if not ok_type:
            continue
        if rule.get("min") is not None or rule.get("max") is not None:
            bad = failures.get((name, "in_range"))
            observed = f"min {_fmt(col.get('min'))}, max {_fmt(col.get('max'))}"
            outside = len(bad) if bad is not None else 0
            rows = len(frame)
            if outside:
                observed += f" ({_rows(outside)} outside, {outside / rows:.3%})"
            expected = f"{_fmt(rule.get('min'))} ≤ x ≤ {_fmt(rule.get('max'))}"
            if tolerated:
                expected += f" (up to {tolerated:.2%} of rows outside)"
            checks.append(_check("range", name, not rows or outside / rows <= tolerated, observed, expected))
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
    checks += _table_checks(profile, spec, previous_rows, row_change_blocks=row_change_blocks)
    missing = [c for c in checks if c["check"] == "column present" and not c["passed"]]
    if missing and len(prof) == 1 and (hint := _separator_hint(next(iter(prof)))):
        missing[0]["hint"] = hint
    return Certificate(passed=all(c["passed"] or c.get("warning") for c in checks), checks=checks, at=at,
                       schema_version=schema_version)


# -- hints ---------------------------------------------------------------------------------------

_DECIMAL_COMMA = r"^\s*[-+]?(?:\d{1,3}(?:\.\d{3})+|\d+),\d+\s*$"  # 12,5 or 1.234,56
_MOJIBAKE = ("Ã", "Â", "\ufffd", "â€")  # UTF-8 read as Latin-1 / Windows-1252, or bytes that were replaced


def format_hint(series: pd.Series, expected: str) -> str | None:
    """Why a text column may not be what the schema expects, when its values show it: decimal commas, another
    separator inside the values, or text in another encoding. None when nothing stands out."""
    values = series.dropna()
    if values.empty or values.dtype.kind not in "OSU":
        return None
    sample = values.astype(str).head(1000)
    if expected in ("float", "integer"):
        share = sample.str.match(_DECIMAL_COMMA).mean()
        if share >= 0.5:
            example = next(iter(sample[sample.str.match(_DECIMAL_COMMA)]), "")
            return (f"values look like numbers with decimal commas (e.g. {example!r}): export with '.' as the "
                    "decimal separator, or convert the column before uploading")
    for sep, word in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
        if sample.str.contains(sep, regex=False).mean() >= 0.5:
            return f"values contain {word}: the file may use {sep!r} as its separator or mix two separators"
    if any(sample.str.contains(mark, regex=False).any() for mark in _MOJIBAKE):
        return ("values contain characters like 'Ã©' or '\ufffd': the file was probably not saved as UTF-8 "
                "(e.g. Latin-1 or Windows-1252); save it as UTF-8 and upload again")
    return None


def _separator_hint(column: str) -> str | None:
    for sep in (";", "\t", "|", ","):
        if column.count(sep) >= 1:
            return (f"the file has one column named {column[:60]!r}: it probably uses {sep!r} as its separator; "
                    "LeanOps reads the separator from the first line (',', ';', tab or '|')")
    return None


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


def _table_checks(profile: dict[str, Any], spec: dict[str, Any], previous_rows: int | None, *,
                  row_change_blocks: bool = False) -> list[dict[str, Any]]:
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
            check = _check("row count change", None, abs(change) <= limit,
                           f"{change:+.1%} ({previous_rows} → {rows} rows)", f"within ±{limit:.0%}")
            if not row_change_blocks:  # a bigger export is news, not a defect (policy certificate.row_change)
                check["warning"] = True
            out.append(check)
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
