"""The drift engine: agreement with scipy on the same inputs, size-aware verdicts, awkward current data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from core.errors import InvalidInput
from core.monitoring import drift
from core.training import reference

DEFAULTS = drift.Thresholds()


def samples(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=500), rng.normal(0.1, 1, size=300)),
        (rng.integers(0, 5, 400).astype(float), rng.integers(0, 6, 900).astype(float)),  # ties
        (rng.exponential(size=20_000), rng.exponential(1.1, size=15_000)),
        (np.array([1.0]), np.array([1.0, 2.0])),
        (rng.normal(size=50), rng.normal(size=50)),
    ]


@pytest.mark.parametrize(("a", "b"), samples())
def test_exact_ks_and_wasserstein_match_scipy(a, b):
    expected = stats.ks_2samp(a, b, method="asymp")
    statistic, p_value = drift.ks_2samp(a, b)
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert drift.wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-12)


def test_asymptotic_ks_p_value_is_close_to_scipys_exact_one_on_small_samples():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=400), rng.normal(0.15, 1, size=300)
    assert drift.ks_2samp(a, b)[1] == pytest.approx(stats.ks_2samp(a, b).pvalue, abs=0.01)


@pytest.mark.parametrize(("ref", "cur"), [
    ([300, 480, 220], [30, 50, 20]),
    ([5000, 3000, 1500, 500], [430, 350, 150, 70]),
    ([1, 1], [40, 2]),
    ([50, 50, 0], [30, 30, 40]),  # a category only the current data has
])
def test_chisquare_and_jensenshannon_match_scipy(ref, cur):
    ref, cur = np.array(ref, float), np.array(cur, float)
    expected = stats.chi2_contingency(np.array([ref, cur]), correction=False)
    statistic, p_value = drift.chisquare(ref, cur)
    assert statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert drift.jensenshannon(ref, cur) == pytest.approx(distance.jensenshannon(ref, cur), rel=1e-9)


def test_two_sample_chisquare_keeps_its_false_alarm_rate():
    rng = np.random.default_rng(0)
    shares = [0.25] * 4
    alarms = [drift.chisquare(rng.multinomial(1200, shares), rng.multinomial(500, shares))[1] < 0.05
              for _ in range(2000)]
    assert 0.035 < np.mean(alarms) < 0.065  # the nominal 5 %; a goodness-of-fit test gives about 14 % here


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift():
    assert drift.psi([10, 20, 30], [20, 40, 60]) == pytest.approx(0.0)
    small, large = drift.psi([50, 50], [55, 45]), drift.psi([50, 50], [80, 20])
    assert 0 < small < 0.1 < large
    assert np.isfinite(drift.psi([100, 0], [50, 50]))  # an empty bin is floored, not infinite


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.3])
def test_ks_against_the_stored_quantile_sample_agrees_with_scipy_on_the_raw_columns(shift):
    rng = np.random.default_rng(11)
    train = pd.Series(rng.gamma(2.0, 3.0, size=200_000))
    current = pd.Series(rng.gamma(2.0, 3.0, size=800) + shift * train.std())
    summary = reference.numeric_summary(train)
    result = drift.numeric_column(summary, current, DEFAULTS)
    exact = stats.ks_2samp(train, current)
    assert result["method"] == "ks"  # 800 current rows: a test decides
    assert result["statistic"] == pytest.approx(exact.statistic, abs=0.003)
    assert result["p_value"] == pytest.approx(exact.pvalue, abs=0.02)
    w_exact = stats.wasserstein_distance(train, current) / train.std(ddof=0)
    assert result["distance"] == pytest.approx(w_exact, abs=0.01)


def frame(rows: int, seed: int, *, shift: float = 0.0, shares: tuple[float, ...] = (0.5, 0.3, 0.2)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(10, 2, rows) + shift * 2,
        "y": rng.exponential(3, rows),
        "n": rng.poisson(2, rows),
        "c": rng.choice(["a", "b", "c"], rows, p=list(shares)),
        "flag": rng.random(rows) < 0.2,
    })


def build(train: pd.DataFrame) -> dict:
    return reference.build(train, task="classification", predictions=np.zeros(len(train), int),
                           target=pd.Series(np.zeros(len(train), int)))


@pytest.fixture(scope="module")
def million() -> tuple[dict, pd.DataFrame]:
    return build(frame(1_000_000, seed=1)), frame(1_000_000, seed=2)


def test_a_million_rows_from_the_same_distribution_raise_no_drift(million):
    ref, current = million
    result = drift.compare(ref, current, thresholds=DEFAULTS)
    assert result.drifted == [] and not result.drift_detected and result.drift_share == 0
    assert {c["method"] for c in result.columns.values()} == {"wasserstein", "jensenshannon"}
    # The tests alone would flag noise at this size; the distances stay far below their thresholds.
    assert max(c["distance"] for c in result.columns.values()) < 0.02


def test_a_fifth_sigma_mean_shift_and_a_twenty_point_share_change_are_flagged(million):
    ref, _ = million
    current = frame(1_000_000, seed=3, shift=0.2, shares=(0.3, 0.5, 0.2))
    result = drift.compare(ref, current, thresholds=DEFAULTS)
    assert set(result.drifted) == {"x", "c"}
    assert result.drift_share == pytest.approx(2 / 5) and not result.drift_detected  # below the 0.5 share
    x = result.columns["x"]
    assert x["method"] == "wasserstein" and x["distance"] == pytest.approx(0.2, abs=0.01)
    assert len(x["reference_hist"]) == len(x["current_hist"]) == len(x["bins"]) == len(x["edges"]) - 1
    assert sum(x["current_hist"]) == 1_000_000


def test_small_samples_use_tests_and_catch_the_same_shifts():
    ref = build(frame(5000, seed=1))
    same = drift.compare(ref, frame(500, seed=2), thresholds=DEFAULTS)
    assert {c["method"] for c in same.columns.values()} == {"ks", "chisquare"}
    shifted = drift.compare(ref, frame(500, seed=3, shift=0.5, shares=(0.2, 0.5, 0.3)), thresholds=DEFAULTS)
    assert {"x", "c"} <= set(shifted.drifted)
    assert len(same.drifted) <= 1  # one false alarm in five at p < 0.05 is possible, more is not plausible


def test_threshold_override_changes_the_verdict_of_tests():
    ref = build(frame(5000, seed=1))
    current = frame(400, seed=4, shift=0.12)
    p = drift.compare(ref, current, thresholds=DEFAULTS).columns["x"]["p_adjusted"]  # corrected across columns
    strict = drift.Thresholds(p_value=max(p / 2, 1e-12))
    loose = drift.Thresholds(p_value=min(p * 2, 0.99))
    assert not drift.compare(ref, current, thresholds=strict).columns["x"]["drifted"]
    assert drift.compare(ref, current, thresholds=loose).columns["x"]["drifted"]


def test_new_categories_are_reported_and_count_as_evidence():
    ref = build(frame(5000, seed=1))
    current = frame(2000, seed=2)
    current.loc[:299, "c"] = "zebra"
    col = drift.compare(ref, current, thresholds=DEFAULTS).columns["c"]
    assert col["new_categories"] == ["zebra"] and col["new_category_rows"] == 300
    assert col["drifted"] and "zebra" in col["categories"]
    assert col["p_value"] < 1e-12 and col["current_hist"][col["categories"].index("zebra")] == 300


def test_many_new_categories_share_a_bin_and_are_listed_by_frequency():
    ref = build(frame(3000, seed=1))
    current = frame(3000, seed=2)
    current.loc[:999, "c"] = [f"id{i % 100:03d}" for i in range(1000)]  # 100 unseen values, 10 rows each
    current.loc[:29, "c"] = "zz-top"  # the most frequent new one (30 rows)
    col = drift.compare(ref, current, thresholds=DEFAULTS).columns["c"]
    assert col["new_categories"][0] == "zz-top" and len(col["new_categories"]) == 50
    assert col["new_category_rows"] == 1000
    assert col["categories"][:3] == ["a", "b", "c"] and len(col["categories"]) == 3 + 20 + 1
    assert col["categories"][-1] == "__other_new__" and sum(col["current_hist"]) == 3000
    assert col["drifted"]


def test_missing_columns_are_all_named():
    ref = build(frame(1000, seed=1))
    with pytest.raises(InvalidInput, match=r"missing column\(s\) x, c that the model was trained on; it has: y, n, "):
        drift.compare(ref, frame(100, seed=2).drop(columns=["x", "c"]), thresholds=DEFAULTS, label="batch.csv")


def test_text_in_a_numeric_column_and_an_all_missing_column_do_not_crash():
    ref = build(frame(3000, seed=1))
    current = frame(300, seed=2).astype({"x": object})
    current.loc[:9, "x"] = "oops"
    current["y"] = np.nan
    result = drift.compare(ref, current, thresholds=DEFAULTS)
    assert result.columns["x"]["invalid"] == 10 and result.columns["x"]["current_rows"] == 290
    assert result.columns["y"]["drifted"] and result.columns["y"]["method"] == "none"
    assert "all missing" in result.columns["y"]["note"]


def test_prediction_drift_on_the_models_outputs():
    train = frame(3000, seed=1)
    ref = reference.build(train, task="classification", predictions=np.r_[np.zeros(2400), np.ones(600)].astype(int),
                          target=pd.Series(np.zeros(3000, int)))
    same = drift.compare(ref, frame(3000, seed=2), thresholds=DEFAULTS,
                         predictions=np.r_[np.zeros(2390), np.ones(610)].astype(int))
    moved = drift.compare(ref, frame(3000, seed=2), thresholds=DEFAULTS,
                          predictions=np.r_[np.zeros(1500), np.ones(1500)].astype(int))
    assert not same.predictions["drifted"] and moved.predictions["drifted"]
    assert moved.predictions["method"] == "jensenshannon"


def test_reference_summary_keeps_numpy_quantile_numbers():
    values = pd.Series(np.random.default_rng(5).normal(size=12_345))
    values[::17] = np.nan
    summary = reference.numeric_summary(values)
    present = values.dropna().to_numpy()
    assert summary["quantiles"] == pytest.approx(np.quantile(present, np.linspace(0, 1, 1000)).tolist(), abs=1e-12)
    assert summary["edges"] == pytest.approx(np.quantile(present, np.linspace(0, 1, 21)).tolist(), abs=1e-12)
    inner = np.array(summary["edges"][1:-1])
    assert summary["counts"] == np.bincount(np.searchsorted(inner, present, side="right"), minlength=20).tolist()
    assert summary["nulls"] == values.isna().sum()
