"""Profiles are computed once from the data; diffs compare two stored profiles without the data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from core.data.profile import PSI_CHANGED, compare_profiles, compute_profile
from core.data.tables import read_table


def profile(frame: pd.DataFrame) -> dict:
    table = read_table(frame)
    return compute_profile(table.frame, table.arrow, row_hashes=table.row_hashes)


def frame(rows: int = 2000, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(10 + shift, 2, rows),
        "n": rng.integers(0, 5, rows),
        "city": rng.choice(["oslo", "rome", "lima"], rows, p=[0.5, 0.3, 0.2]),
        "flag": rng.random(rows) < 0.2,
        "day": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 90, rows), unit="D"),
        "nothing": [None] * rows,
    })


def test_profile_has_stats_histograms_and_top_values_and_is_json() -> None:
    df = frame()
    df.loc[:99, "x"] = np.nan
    doubled = pd.concat([df, df.head(10)], ignore_index=True)
    prof = profile(doubled)
    cols = {c["name"]: c for c in prof["columns"]}
    assert prof["rows"] == 2010 and prof["duplicate_rows"] == doubled.duplicated().sum() >= 10
    x = cols["x"]
    assert x["kind"] == "numeric" and x["missing"] == 110 and x["missing_share"] == round(110 / 2010, 6)
    assert abs(x["mean"] - 10) < 0.2 and x["min"] <= x["p25"] <= x["p50"] <= x["p75"] <= x["max"]
    assert sum(x["hist"]["counts"]) == 2010 - 110 and len(x["hist"]["edges"]) == 21
    assert cols["city"]["kind"] == "categorical" and cols["city"]["unique"] == 3
    assert [v for v, _ in cols["city"]["top"]] == ["oslo", "rome", "lima"]
    assert cols["flag"]["kind"] == "boolean" and cols["flag"]["top"][0][0] is False
    assert cols["day"]["kind"] == "datetime" and cols["day"]["min"].startswith("2025-01-01")
    assert cols["nothing"]["kind"] == "empty" and cols["nothing"]["missing_share"] == 1.0
    assert json.loads(json.dumps(prof)) == prof


def test_identical_versions_show_no_change() -> None:
    p = profile(frame())
    d = compare_profiles("t", 1, 2, p, p)
    assert (d.added, d.removed, d.retyped) == ([], [], [])
    assert not any(c["changed"] for c in d.columns)
    assert all((c["psi"] or 0) == 0 for c in d.columns)


def test_a_resample_is_stable_and_a_shift_is_flagged() -> None:
    base = profile(frame(seed=1))
    resample = compare_profiles("t", 1, 2, base, profile(frame(seed=2)))
    shifted = compare_profiles("t", 1, 3, base, profile(frame(seed=2, shift=2.0)))
    assert all(c["psi"] is None or c["psi"] < PSI_CHANGED for c in resample.columns)
    x = next(c for c in shifted.columns if c["column"] == "x")
    assert x["changed"] and x["psi"] > 0.25 and 0.8 < x["shift_sd"] < 1.2


def test_schema_and_category_changes() -> None:
    a = frame()
    b = a.drop(columns=["flag"]).assign(extra=1, n=a["n"].astype(float) + 0.5)
    b["city"] = b["city"].replace("lima", "quito")
    d = compare_profiles("t", 1, 2, profile(a), profile(b))
    assert d.added == ["extra"] and d.removed == ["flag"]
    assert d.retyped == [{"column": "n", "a": "int64", "b": "float64"}]
    city = next(c for c in d.columns if c["column"] == "city")
    assert city["new_values"] == ["quito"] and city["gone_values"] == ["lima"] and city["changed"]
    assert d.rows_a == d.rows_b and d.row_change == 0.0
