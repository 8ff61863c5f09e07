"""Training spec, data checks and the pipeline: every bad input is refused with a reason that says what to do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import InvalidInput
from core.platform.mlflow_store import SKOPS_TRUSTED_TYPES, model_input
from core.training import evaluation, pipeline, reference
from core.training.catalog import KINDS, check_params, detect_task, get_kind
from core.training.spec import parse_spec
from tests.support.training import small_churn


def spec(**kw):
    return parse_spec({"dataset": "churn", "target": "churn"} | kw)


def prepared(frame=None, **kw):
    return pipeline.prepare(small_churn() if frame is None else frame, spec(**kw), ref="churn:1")


# -- the spec ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "message"), [
    ({"target": ""}, "no target column given"),
    ({"dataset": ""}, "no dataset given"),
    ({"model": "catboost"}, "model kind 'catboost' is unknown; kinds are: linear, random_forest"),
    ({"params": {"n_estimators": 5}}, r"n_estimators=5 is out of range; allowed: 10 … 1000"),
    ({"params": {"max_depth": 2.5}}, "must be a whole number"),
    ({"params": {"n_estimators": "many"}}, "is not a number"),
    ({"params": {"max_features": "half"}}, "choose one of: sqrt, log2, all"),
    ({"params": {"learning_rate": 0.1}}, "do not apply to random_forest"),
    ({"model": "linear", "task": "regression", "params": {"C": 1}}, "do not apply to linear for regression"),
    ({"holdout": 0.9}, r"holdout=0.9 is out of range; use 0.05 … 0.5"),
    ({"seed": -1}, "seed=-1 is out of range"),
    ({"search": {"method": "bayes"}}, "search method 'bayes' is unknown"),
    ({"search": {"method": "grid", "folds": 1}}, "search CV folds=1 is out of range"),
    ({"model_name": "no spaces please"}, "model name 'no spaces please' is not allowed"),
    ({"exclude": ["churn"]}, "the target 'churn' cannot also be excluded"),
    ({"task": "ranking"}, "task 'ranking' is unknown"),
    ({"colour": "blue"}, "unknown training setting"),
])
def test_bad_specs_are_refused_with_a_reason(raw, message):
    with pytest.raises(InvalidInput, match=message):
        spec(**raw)


def test_spec_defaults_and_params_are_typed():
    s = spec(params={"n_estimators": "200", "max_features": "all"}, task="classification")
    assert (s.model, s.holdout, s.seed, s.registered_name) == ("random_forest", 0.2, 42, "churn")
    assert s.params == {"n_estimators": 200, "max_depth": 16, "min_samples_leaf": 2, "max_features": "all"}
    assert get_kind("RF").key == "random_forest" and get_kind("ridge").key == "linear"
    assert parse_spec(s.as_dict()) == s


@pytest.mark.parametrize(("values", "task"), [
    (["yes", "no", "yes"], "classification"),
    ([True, False, True], "classification"),
    ([0, 1, 2, 1, 0], "classification"),
    ([1.0, 0.0, 1.0, None], "classification"),  # integers with a gap are stored as floats
    (list(range(100)), "regression"),
    ([0.5, 1.25, 3.0], "regression"),
])
def test_task_is_detected_from_the_target(values, task):
    assert detect_task(pd.Series(values)) == task


# -- bad data, each refused before anything is trained -------------------------------------------

def test_unknown_target_lists_the_columns():
    with pytest.raises(InvalidInput, match=r"target 'chrun' is not a column of churn:1; columns are: customer_age"):
        prepared(target="chrun")


def test_missing_target_values_are_left_out_and_noted():
    frame = small_churn()
    frame.loc[:9, "churn"] = None
    result = pipeline.prepare(frame, spec(), ref="churn:1")
    assert len(result.y) == len(frame) - 10
    assert result.notes == ("10 rows without a target value were left out",)


def test_target_without_values_is_refused():
    frame = small_churn()
    frame["churn"] = None
    with pytest.raises(InvalidInput, match="target 'churn' has no values in churn:1"):
        pipeline.prepare(frame, spec(), ref="churn:1")


def test_target_with_one_class_is_refused():
    frame = small_churn()
    frame["churn"] = 1
    with pytest.raises(InvalidInput, match=r"has one class \(1\) in all 600 rows; classification needs at least two"):
        pipeline.prepare(frame, spec(), ref="churn:1")


def test_class_with_a_single_row_cannot_be_stratified():
    frame = small_churn()
    frame.loc[0, "churn"] = 2
    with pytest.raises(InvalidInput, match=r"1 class\(es\) with a single row \(2\)"):
        pipeline.prepare(frame, spec(), ref="churn:1")


def test_regression_target_must_be_numeric():
    with pytest.raises(InvalidInput, match=r"target 'region' is object .*regression needs a numeric target"):
        prepared(target="region", task="regression")


@pytest.mark.parametrize(("rows", "message"), [
    (12, r"too few rows: 12 with a target; a 20% holdout needs at least 25"),
    (30, r"too few rows for 5-fold cross-validation: class 1 has 3 training rows"),
])
def test_too_few_rows_for_the_split_or_the_folds(rows, message):
    base = small_churn(rows=400)
    ones = 6 if rows == 12 else 4
    frame = pd.concat([base[base.churn == 0].head(rows - ones), base[base.churn == 1].head(ones)], ignore_index=True)
    kw = {"search": {"method": "grid", "folds": 5}} if rows == 30 else {}
    s = spec(**kw)
    data = pipeline.prepare(frame, s, ref="churn:1")
    with pytest.raises(InvalidInput, match=message):
        pipeline.split(data, s)


def test_all_null_and_constant_columns_are_named_with_how_to_exclude_them():
    frame = small_churn()
    frame["notes"] = None
    frame["country"] = "NL"
    with pytest.raises(InvalidInput) as refused:
        pipeline.prepare(frame, spec(), ref="churn:1")
    assert str(refused.value) == ("column(s) carry no signal in churn:1 (all-null: notes; constant: country); "
                                  "exclude them (Training page: 'Exclude columns'; CLI: --exclude notes "
                                  "--exclude country)")
    ok = pipeline.prepare(frame, spec(exclude=["notes", "country"]), ref="churn:1")
    assert "notes" not in ok.X.columns and "country" not in ok.X.columns


def test_identifier_columns_are_named_with_how_to_exclude_them():
    frame = small_churn()
    frame["customer_id"] = [f"C{i:05d}" for i in range(len(frame))]
    with pytest.raises(InvalidInput, match=r"column\(s\) customer_id in churn:1 look like identifiers .*"
                                           r"CLI: --exclude customer_id"):
        pipeline.prepare(frame, spec(), ref="churn:1")
    assert "customer_id" not in pipeline.prepare(frame, spec(exclude=["customer_id"]), ref="churn:1").X


def test_infinite_values_are_refused_before_they_crash_the_fit():
    frame = small_churn()
    frame.loc[3, "total_charges"] = float("inf")
    with pytest.raises(InvalidInput, match=r"column\(s\) total_charges in churn:1 hold infinite values"):
        pipeline.prepare(frame, spec(), ref="churn:1")


def test_excluding_every_feature_is_refused():
    frame = small_churn()[["tenure_months", "churn"]]
    with pytest.raises(InvalidInput, match="no feature columns are left"):
        pipeline.prepare(frame, spec(exclude=["tenure_months"]), ref="churn:1")


def test_unknown_excluded_or_sensitive_columns_are_refused():
    with pytest.raises(InvalidInput, match="excluded column.*agee are not in churn:1"):
        prepared(exclude=["agee"])
    with pytest.raises(InvalidInput, match="sensitive column 'sex' is not a column"):
        prepared(sensitive="sex")


# -- the pipeline --------------------------------------------------------------------------------

def test_split_is_stratified_and_repeatable():
    s = spec()
    data = prepared()
    a, b = pipeline.split(data, s), pipeline.split(data, s)
    assert len(a.X_test) == 120 and a.X_test.equals(b.X_test)
    assert abs(a.y_test.mean() - data.y.mean()) < 0.01


def test_forest_grows_in_steps_to_the_same_model_and_reports_progress():
    s = spec(params={"n_estimators": 30})
    data = prepared(params={"n_estimators": 30})
    split = pipeline.split(data, s)
    kind = get_kind("random_forest")
    params = check_params(kind, "classification", {"n_estimators": 30})
    seen = []
    stepped = pipeline.fit(pipeline.build_pipeline(data, kind, params, 1), split.X_train, split.y_train,
                           progress=lambda f, stage: seen.append((round(f, 2), stage)))
    whole = pipeline.build_pipeline(data, kind, params, 1).fit(split.X_train, split.y_train)
    assert (stepped.predict(split.X_test) == whole.predict(split.X_test)).all()
    assert np.allclose(stepped.predict_proba(split.X_test), whole.predict_proba(split.X_test))
    assert seen[0] == (0.1, "fitting: 3 of 30 trees") and seen[-1] == (1.0, "fitting: 30 of 30 trees")


def test_pipeline_takes_raw_records_with_unknown_categories_and_missing_values():
    data = prepared()
    kind = get_kind("linear")
    pipe = pipeline.build_pipeline(data, kind, kind.defaults("classification"), 1).fit(data.X, data.y)
    records = data.X.head(3).astype(object).to_dict("records")
    records[0]["region"] = "mars"
    records[1].update(payment_method=None, monthly_charges=None, senior=None)
    records[2].update(contract=float("nan"), customer_age=None)
    predicted = pipe.predict(model_input(pd.DataFrame(records)))
    assert len(predicted) == 3 and set(predicted) <= {0, 1}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_kind_fits_and_its_types_are_vetted_for_skops(kind, task):
    import skops.io

    frame = small_churn(rows=300)
    frame["spend"] = frame["monthly_charges"].fillna(60) * 3
    s = spec(target="churn" if task == "classification" else "spend", model=kind, task=task)
    data = pipeline.prepare(frame, s, ref="churn:1")
    model = get_kind(kind)
    params = check_params(model, task, {"n_estimators": 10} if kind == "random_forest" else {})
    pipe = pipeline.build_pipeline(data, model, params, 1).fit(data.X, data.y)
    assert set(skops.io.get_untrusted_types(data=skops.io.dumps(pipe))) <= set(SKOPS_TRUSTED_TYPES)


def test_search_tries_each_candidate_in_turn_and_returns_the_best():
    s = spec(model="linear", search={"method": "grid", "candidates": 3, "folds": 3})
    data = prepared(model="linear")
    split = pipeline.split(data, s)
    steps = []
    best, table = pipeline.search(data, split, s, progress=lambda f, stage: steps.append(stage))
    assert len(table) == 3 and [r["rank"] for r in sorted(table, key=lambda r: r["candidate"])]
    assert best == max(table, key=lambda r: r["mean"])["params"]
    assert steps[0].startswith("search: candidate 1 of 3") and steps[-1].startswith("search: candidate 3 of 3")
    random_best, random_table = pipeline.search(
        data, split, spec(model="linear", search={"method": "random", "candidates": 4}), progress=lambda *a: None)
    assert len(random_table) == 4 and 1e-3 <= random_best["C"] <= 1e2


# -- evaluation and reference statistics ---------------------------------------------------------

def test_classification_evaluation_with_fairness_and_baseline():
    s = spec(sensitive="gender", params={"n_estimators": 20})
    data = pipeline.prepare(small_churn(), s, ref="churn:1")
    split = pipeline.split(data, s)
    kind = get_kind("random_forest")
    pipe = pipeline.fit(pipeline.build_pipeline(data, kind, check_params(kind, "classification", s.params), 1),
                        split.X_train, split.y_train)
    result = evaluation.evaluate(pipe, split.X_test, split.y_test, task="classification", seed=1,
                                 sensitive=split.sensitive_test, sensitive_name="gender")
    assert {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "demographic_parity_ratio",
            "demographic_parity_difference", "equalized_odds_difference"} <= set(result.metrics)
    assert np.array(result.plots["confusion_matrix"]["matrix"]).sum() == len(split.y_test)
    assert set(result.plots["roc"]) == {"1"} and len(result.plots["pr"]["1"]["recall"]) <= evaluation.CURVE_POINTS
    assert {r["feature"] for r in result.plots["importance"]} == set(data.X.columns)
    assert set(result.fairness["gender"]["by_group"]) == {"female", "male"}
    base = evaluation.baseline("classification", split.X_train, split.y_train, split.X_test, split.y_test)
    assert base["f1"] < result.metrics["f1"]
    name, png = evaluation.figure_png(result.plots, title="t")
    assert name == "confusion_matrix.png" and png.startswith(b"\x89PNG")


def test_regression_evaluation_has_residuals():
    frame = small_churn()
    frame["spend"] = frame["tenure_months"] * 2.5 + np.random.default_rng(1).normal(0, 5, len(frame))
    s = spec(target="spend", model="linear")
    data = pipeline.prepare(frame, s, ref="churn:1")
    split = pipeline.split(data, s)
    pipe = pipeline.build_pipeline(data, get_kind("linear"), {"alpha": 1.0}, 1).fit(split.X_train, split.y_train)
    result = evaluation.evaluate(pipe, split.X_test, split.y_test, task="regression", seed=1)
    assert set(result.metrics) == {"rmse", "mae", "r2"} and result.metrics["r2"] > 0.9
    assert len(result.plots["residuals"]["predicted"]) == len(split.y_test)
    assert evaluation.figure_png(result.plots, title="t")[0] == "residuals.png"


def test_reference_statistics_are_sized_by_bins_not_rows():
    import json

    big = small_churn(rows=50_000)
    stats = reference.build(big.drop(columns="churn"), task="classification",
                            predictions=big["churn"].to_numpy(), target=big["churn"])
    age = stats["columns"]["tenure_months"]
    assert len(age["counts"]) == len(age["edges"]) - 1 <= reference.BINS
    assert sum(age["counts"]) == 50_000 and len(age["quantiles"]) == reference.QUANTILES
    assert stats["columns"]["monthly_charges"]["nulls"] > 0
    assert set(stats["columns"]["contract"]["frequencies"]) == {"month-to-month", "one-year", "two-year"}
    assert stats["predictions"]["frequencies"].keys() == {"0", "1"}
    small = reference.build(small_churn(rows=2000).drop(columns="churn"), task="classification",
                            predictions=np.zeros(10), target=big["churn"].head(10))
    assert len(json.dumps(stats)) < 1.2 * len(json.dumps(small)) + 5_000


def test_a_numeric_only_pipeline_has_no_known_categories():
    """Its categorical branch is built empty, so its encoder is never fitted: serving counts no unseen category
    (the grown-up topology's two-column model answered 500 on this)."""
    from core.serving import contract

    frame = small_churn()[["tenure_months", "monthly_charges", "churn"]]
    data = pipeline.prepare(frame, spec(), ref="churn:1")
    kind = get_kind("linear")
    pipe = pipeline.build_pipeline(data, kind, kind.defaults("classification"), 1).fit(data.X, data.y)
    assert contract.known_categories(pipe) == {}
