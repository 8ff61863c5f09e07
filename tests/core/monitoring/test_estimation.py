"""Performance estimated without labels (core.training.estimation) against the labels kept aside.

A model is trained on reference data, the estimator is fitted on its holdout exactly as training does
(core.training.reference.build), stored as JSON and read back; then a covariate-shifted window whose
true performance dropped is estimated from inputs and outputs alone and compared with the realised score.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, mean_absolute_error

from core.training import estimation, reference

ERRORS: dict[str, float] = {}  # printed at the end (-s): the figures quoted in the closing note


def classification_frame(n: int, *, spread: float, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"x1": rng.normal(0, spread, n), "x2": rng.normal(0, spread, n), "x3": rng.normal(0, 1, n),
                      "x4": rng.normal(0, 1, n), "plan": rng.choice(["a", "b", "c"], n)})
    logit = 2.0 * x["x1"] - 1.5 * x["x2"] + 0.5 * (x["plan"] == "b")
    y = pd.Series(np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no"))
    return x, y


def regression_frame(n: int, *, low: float, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"x1": rng.normal(0, 1, n), "x2": rng.uniform(-2, 2, n), "x3": rng.uniform(low, 3, n),
                      "zone": rng.choice(["n", "s"], n)})
    noise = rng.normal(0, 1, n) * (0.3 + np.abs(x["x3"]))  # noisier where |x3| is large
    return x, pd.Series(3 * x["x1"] + x["x2"] ** 2 + noise)


def encoded(x: pd.DataFrame) -> pd.DataFrame:
    return pd.get_dummies(x, dtype=float)


def stored(ref: dict) -> dict:
    return json.loads(json.dumps(ref))  # exactly what the database gives back: plain JSON numbers


@pytest.fixture(scope="module")
def classifier():
    x, y = classification_frame(6000, spread=1.0, seed=1)
    train, hold = slice(0, 4000), slice(4000, None)
    # CBPE assumes P(label | score) survives the shift; a well-specified model's scores do (a forest's drift
    # optimistic near the boundary: docs/monitoring.md gives the measured bias).
    model = LogisticRegression(max_iter=1000)
    model.fit(encoded(x.iloc[train]), y.iloc[train])
    proba = model.predict_proba(encoded(x.iloc[hold]))
    ref = reference.build(x.iloc[train], task="classification", predictions=model.classes_[proba.argmax(1)],
                          target=y.iloc[train], holdout=x.iloc[hold], holdout_target=y.iloc[hold], proba=proba,
                          classes=list(model.classes_))
    return model, stored(ref)


@pytest.fixture(scope="module")
def regressor():
    x, y = regression_frame(6000, low=-3, seed=2)
    train, hold = slice(0, 4000), slice(4000, None)
    model = RandomForestRegressor(n_estimators=60, min_samples_leaf=5, random_state=0)
    model.fit(encoded(x.iloc[train]), y.iloc[train])
    predicted = model.predict(encoded(x.iloc[hold]))
    ref = reference.build(x.iloc[train], task="regression", predictions=predicted, target=y.iloc[train],
                          holdout=x.iloc[hold], holdout_target=y.iloc[hold])
    return model, stored(ref)


def test_cbpe_tracks_accuracy_under_covariate_shift(classifier):
    model, ref = classifier
    x, y = classification_frame(6000, spread=0.35, seed=3)  # mass moved towards the decision boundary
    proba = model.predict_proba(encoded(x))
    realised = accuracy_score(y, model.classes_[proba.argmax(1)])
    holdout = ref["estimator"]["reference"]["accuracy"]
    assert holdout - realised >= 0.05, (holdout, realised)  # the shift really hurt
    est = estimation.estimate(ref["estimator"], frame=x, outputs=proba)["accuracy"]
    ERRORS["cbpe accuracy, shifted"] = abs(est["value"] - realised)
    assert abs(est["value"] - realised) <= 0.03, (est, realised)
    assert est["lower"] <= realised <= est["upper"], (est, realised)
    assert est["reference"] == pytest.approx(holdout)
    estimates = estimation.estimate(ref["estimator"], frame=x, outputs=proba)
    assert set(estimates) == {"accuracy", "precision", "recall", "f1", "roc_auc"}


def test_cbpe_without_shift_stays_within_the_band_of_the_holdout(classifier):
    model, ref = classifier
    x, y = classification_frame(5000, spread=1.0, seed=4)
    proba = model.predict_proba(encoded(x))
    estimates = estimation.estimate(ref["estimator"], frame=x, outputs=proba)
    for metric, est in estimates.items():
        assert est["lower"] <= est["reference"] <= est["upper"], (metric, est)
    ERRORS["cbpe accuracy, no shift"] = abs(estimates["accuracy"]["value"]
                                            - accuracy_score(y, model.classes_[proba.argmax(1)]))


def test_dle_tracks_mae_under_covariate_shift(regressor):
    model, ref = regressor
    x, y = regression_frame(6000, low=1.5, seed=5)  # moved to where the target is noisiest
    predicted = model.predict(encoded(x))
    realised = mean_absolute_error(y, predicted)
    holdout = ref["estimator"]["reference"]["mae"]
    assert realised >= 1.2 * holdout, (holdout, realised)
    est = estimation.estimate(ref["estimator"], frame=x, outputs=predicted)
    ERRORS["dle mae, shifted (relative)"] = abs(est["mae"]["value"] - realised) / realised
    assert abs(est["mae"]["value"] - realised) <= 0.10 * realised, (est, realised)
    assert est["mae"]["lower"] <= realised <= est["mae"]["upper"], (est, realised)


def test_dle_without_shift_stays_within_the_band_of_the_holdout(regressor):
    model, ref = regressor
    x, y = regression_frame(5000, low=-3, seed=6)
    predicted = model.predict(encoded(x))
    estimates = estimation.estimate(ref["estimator"], frame=x, outputs=predicted)
    for metric, est in estimates.items():
        assert est["lower"] <= est["reference"] <= est["upper"], (metric, est)
    ERRORS["dle mae, no shift (relative)"] = abs(estimates["mae"]["value"] - mean_absolute_error(y, predicted)) \
        / mean_absolute_error(y, predicted)


def test_the_stored_estimator_is_plain_numbers(classifier, regressor):
    for _, ref in (classifier, regressor):
        text = json.dumps(ref["estimator"])
        assert "pickle" not in text and json.loads(text) == ref["estimator"]
    print("\nestimation errors:", {k: round(v, 4) for k, v in ERRORS.items()})


@pytest.mark.parametrize(("use", "upper", "acts"), [(False, 0.5, False), (True, 0.5, True), (True, 0.85, False)])
def test_the_estimate_acts_only_when_asked_and_its_whole_band_is_below_the_floor(use, upper, acts):
    from core import policy
    from core.retraining.decisions import should_act_on_estimate

    rules = policy.for_model(policy.parse(policy.DEFAULT_POLICY_YAML.replace(
        "use_estimate: false", f"use_estimate: {str(use).lower()}")), "any")
    estimate = {"f1": {"value": upper - 0.05, "lower": upper - 0.1, "upper": upper, "reference": 0.9}}
    decision = should_act_on_estimate(estimate, "classification", rules)
    assert decision.act is acts
    if acts:
        assert "estimated f1 0.450" in decision.reason and "floor >= 0.8" in decision.reason


@pytest.mark.parametrize(("rule", "band", "acts"), [
    ("<= 3.0", (3.2, 3.5, 3.9), True),    # the whole band is above the ceiling
    ("<= 3.0", (2.8, 3.2, 3.6), False),   # the band reaches below it: too close to tell
    ("<= 3.0", (2.0, 2.5, 2.9), False),
    (">= 0.4", (0.2, 0.3, 0.45), False),  # a floor: the upper end decides, as for f1
    (">= 0.4", (0.1, 0.2, 0.3), True),
])
def test_an_error_ceiling_acts_only_when_the_whole_band_is_above_it(rule, band, acts):
    """A ``<=`` rule (an error metric's ceiling) is judged on the band's lower end, a ``>=`` floor on its upper."""
    from core import policy
    from core.retraining.decisions import should_act_on_estimate

    text = policy.DEFAULT_POLICY_YAML.replace("use_estimate: false", "use_estimate: true")
    metric = "rmse" if rule.startswith("<") else "r2"
    text = text.replace('        r2: ">= 0.4"', f'        {metric}: "{rule}"')
    rules = policy.for_model(policy.parse(text), "any")
    lower, value, upper = band
    estimate = {metric: {"value": value, "lower": lower, "upper": upper, "reference": 2.0}}
    decision = should_act_on_estimate(estimate, "regression", rules)
    assert decision.act is acts, decision.reason
    if acts:
        end = lower if rule.startswith("<") else upper
        assert f"estimated {metric} {value:.3f}" in decision.reason and f"{end:.3f}; floor {rule}" in decision.reason
