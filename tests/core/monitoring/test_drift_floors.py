"""Effect-size floors and the Benjamini-Hochberg correction: unchanged or negligibly shifted data
raises nothing, however many rows or columns; planted drift still does (tests/core/monitoring/test_drift.py,
tests/test_drift_demo.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.monitoring import drift, significance
from core.training import reference

ROWS = 1_000_000


def frame(rows: int, seed: int, *, shift_sd: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(10, 2, rows) + shift_sd * 2,
        "y": rng.exponential(3, rows) + shift_sd * 3,
        "c": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]),
    })


def build(train: pd.DataFrame) -> dict:
    return reference.build(train, task="classification", predictions=np.zeros(len(train), int),
                           target=pd.Series(np.zeros(len(train), int)))


@pytest.fixture(scope="module")
def million() -> tuple[pd.DataFrame, dict]:
    train = frame(ROWS, seed=1)
    return train, build(train)


def test_a_million_identical_rows_raise_no_drift(million):
    train, ref = million
    result = drift.compare(ref, train, thresholds=drift.Thresholds())
    assert not result.drift_detected and result.drifted == [] and result.verdict["reasons"] == []
    # Even a test deciding at this size (a policy with large_sample_rows above a million) finds nothing.
    tested = drift.compare(ref, train, thresholds=drift.Thresholds(large_sample_rows=2 * ROWS))
    assert {c["method"] for c in tested.columns.values()} == {"ks", "chisquare"}
    assert not tested.drift_detected and tested.drifted == []


def test_a_hundredth_of_a_standard_deviation_shift_on_a_million_rows_raises_no_drift(million):
    _, ref = million
    current = frame(ROWS, seed=2, shift_sd=0.01)
    result = drift.compare(ref, current, thresholds=drift.Thresholds())
    assert not result.drift_detected and result.drifted == []
    # A KS test on a million rows calls the shift significant; the effect floor says it is too small to matter.
    tested = drift.compare(ref, current, thresholds=drift.Thresholds(large_sample_rows=2 * ROWS)).columns["x"]
    assert tested["method"] == "ks" and tested["p_adjusted"] < 0.05
    assert tested["effect"] < tested["effect_floor"] == 0.05 and not tested["drifted"]
    assert "too small to matter" in tested["note"]


def test_a_planted_half_sd_shift_still_fires_through_the_floor():
    ref = build(frame(5000, seed=1))
    current = frame(500, seed=3, shift_sd=0.5)
    result = drift.compare(ref, current, thresholds=drift.Thresholds())
    assert {"x", "y"} <= set(result.drifted)
    assert result.columns["x"]["effect"] > result.columns["x"]["effect_floor"]


def test_benjamini_hochberg_matches_the_textbook_step_up():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    # sorted 0.005 0.01 0.03 0.04 0.5 → ×5/rank: 0.025 0.025 0.05 0.05 0.5, then the running minimum from the top
    assert significance.benjamini_hochberg(p) == pytest.approx([0.025, 0.05, 0.05, 0.025, 0.5])
    assert significance.benjamini_hochberg([]).size == 0


def test_the_correction_keeps_unchanged_wide_data_quiet():
    """Twenty unchanged columns, small windows: uncorrected tests flag a column in most checks, corrected in ~5 %."""
    rng = np.random.default_rng(7)
    ref = build(pd.DataFrame({f"v{i}": rng.normal(size=4000) for i in range(20)}))
    off, on = drift.Thresholds(correction="none", floor_wasserstein=0.0), drift.Thresholds(floor_wasserstein=0.0)
    uncorrected = corrected = 0
    for seed in range(40):
        draw = np.random.default_rng(100 + seed)
        current = pd.DataFrame({f"v{i}": draw.normal(size=300) for i in range(20)})
        uncorrected += bool(drift.compare(ref, current, thresholds=off).drifted)
        corrected += bool(drift.compare(ref, current, thresholds=on).drifted)
    assert uncorrected >= 12 and corrected <= 6  # nominal: 64 % and at most 5 % of 40 checks


def test_false_alarms_per_month_at_the_defaults():
    daily = 30.44
    small = significance.false_alarms_per_month(drift.Thresholds(), checks_per_month=daily, rows=500,
                                                large_sample_rows=1000, columns=20, outputs_decide=True)
    assert small == pytest.approx(0.1 * daily)
    none = significance.false_alarms_per_month(drift.Thresholds(correction="none"), checks_per_month=daily,
                                               rows=500, large_sample_rows=1000, columns=20, outputs_decide=False)
    assert none == pytest.approx((1 - 0.95 ** 20) * daily)
    assert significance.false_alarms_per_month(drift.Thresholds(), checks_per_month=daily, rows=50_000,
                                               large_sample_rows=1000, columns=20, outputs_decide=True) == 0


def test_the_drift_demos_planted_drift_still_fires_through_floors_and_correction():
    """examples/drift_demo.py's traffic (charges +30, 80 % month-to-month) against the demo's training data:
    the same two columns flagged as tests/test_drift_demo.py expects, at the demo's 20 % share."""
    import importlib.util
    from pathlib import Path

    from core.workspace.demo import churn_frame

    path = Path(__file__).resolve().parents[3] / "examples" / "drift_demo.py"
    spec = importlib.util.spec_from_file_location("drift_demo_traffic", path)
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    ref = build(churn_frame(5000).drop(columns=["churn"]))
    result = drift.compare(ref, pd.DataFrame(demo.drifted_records(400)), thresholds=drift.Thresholds(share=0.2))
    assert sorted(result.drifted) == ["contract", "monthly_charges"] and result.drift_detected
