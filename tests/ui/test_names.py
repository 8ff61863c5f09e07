"""Issue 19 item 7: one name for a run, its job and the version it made, used by every picker and heading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.training.runs import RunDetail
from ui import names
from ui.training_queries import compare_runs

NOW = datetime.now(UTC)


def test_a_run_that_registered_a_version_is_named_by_it_kind_score_and_age():
    label = names.run_label(run_id=2, model="credit", version=3, kind="random_forest", task="classification",
                            metric="f1", score=0.73125, when=datetime.now(UTC) - timedelta(hours=2, minutes=1),
                            relative=True)
    assert label == "credit v3 · random forest · f1 0.731 · 2 h ago"


def test_a_picker_s_label_names_the_date_so_it_does_not_change_between_reruns():
    """Streamlit keeps a picker's choice by its label: "42 s ago" becoming "43 s ago" dropped the user's pick."""
    when = datetime(2026, 11, 30, 8, 46, 5, tzinfo=UTC)
    label = names.run_label(run_id=2, model="credit", version=3, kind="random_forest", task="classification",
                            metric="f1", score=0.73125, when=when)
    assert label == "credit v3 · random forest · f1 0.731 · 2026-11-30 08:46"


@pytest.mark.parametrize(("status", "expected"), [
    ("failed", "credit run 7 · random forest · failed · 5 min ago"),
    ("running", "credit run 7 · random forest · running · 5 min ago"),
    ("cancelled", "credit run 7 · random forest · cancelled · 5 min ago"),
])
def test_a_run_without_a_version_is_named_by_its_run_number_and_says_why(status, expected):
    assert names.run_label(run_id=7, model="credit", version=None, kind="random_forest", status=status,
                           when=datetime.now(UTC) - timedelta(minutes=5, seconds=2), relative=True) == expected


@pytest.mark.parametrize(("kind", "task", "expected"), [
    ("random_forest", "classification", "random forest"),
    ("hist_gradient_boosting", "regression", "histogram gradient boosting"),
    ("linear", "classification", "logistic regression"),
    ("linear", "regression", "ridge regression"),
    ("dummy", None, "dummy baseline"),
    ("something_new", None, "something new"),  # a kind the catalog does not know yet still reads as words
])
def test_model_kinds_read_as_people_say_them(kind, task, expected):
    assert names.kind_label(kind, task) == expected


@pytest.mark.parametrize(("value", "expected"), [(0.73125, "0.731"), (12.3456, "12.3"), (-0.05213, "−0.0521"),
                                                 (1.0, "1"), (None, "—")])
def test_scores_show_three_significant_digits(value, expected):
    assert names.score_text(value) == expected


def test_a_regression_run_shows_its_own_primary_metric():
    assert names.run_label(run_id=1, model="price", version=1, kind="linear", task="regression", metric="r2",
                           score=0.5, when=None) == "price v1 · ridge regression · r2 0.5"


def test_a_training_job_names_the_version_and_run_it_made():
    assert names.made_by_job({"model_name": "churn", "model_version": 3, "training_run": 5}) == "churn v3 (run 5)"
    assert names.made_by_job({"model_name": "churn", "model_version": 3}) == "churn v3"
    assert names.made_by_job({"checked": 10}) == "" and names.made_by_job(None) == ""
    assert names.job_label(4) == "job #4" and names.job_label(None) == "command line"


def test_the_mlflow_link_needs_an_address_an_experiment_and_a_run():
    url = names.mlflow_run_url("http://mlflow.internal:5000/", experiment_id="3", run_id="abc123")
    assert url == "http://mlflow.internal:5000/#/experiments/3/runs/abc123"
    assert names.mlflow_run_url("", experiment_id="3", run_id="abc123") is None
    assert names.mlflow_run_url("http://mlflow.internal:5000", experiment_id=None, run_id="abc123") is None


def _run(run_id: int, version: int | None, *, seed: int, params: dict, metrics: dict) -> RunDetail:
    return RunDetail(
        id=run_id, job_id=run_id + 10, dataset_name="churn", dataset_version=1, model_name="churn",
        model_version=version, model_kind="random_forest", task="classification", target="churn",
        status="succeeded" if version else "failed", primary_metric="f1", score=metrics.get("f1"), metrics=metrics,
        params=params, error=None, created_by="sam", started_at=NOW, finished_at=NOW, mlflow_run_id=None,
        dataset_version_id=1, dataset_sha256="0" * 64, mlflow_experiment_id=None, model_uri=None, sensitive=None,
        spec={"holdout": 0.2, "exclude": [], "sensitive": None}, seed=seed, baseline={}, fairness={}, plots={},
        search=None, code_version="test")


def test_compare_lists_only_the_parameters_that_differ_in_words_and_names_the_best_run():
    a = _run(1, 1, seed=42, params={"n_estimators": 100, "max_depth": None}, metrics={"f1": 0.8, "log_loss": 0.4})
    b = _run(2, 2, seed=42, params={"n_estimators": 300, "max_depth": None}, metrics={"f1": 0.85, "log_loss": 0.5})
    c = _run(3, None, seed=7, params={"n_estimators": 100}, metrics={})
    result = compare_runs([a, b, c])
    assert list(result.metrics.columns) == ["churn v1", "churn v2", "churn run 3", "best"]
    assert result.metrics.loc["f1", "best"] == "churn v2"
    assert result.metrics.loc["log_loss", "best"] == "churn v1"  # lower is better for a loss
    differ = result.params[result.params["comparison"] == "different"]
    assert set(differ.index) == {"n_estimators", "seed", "max_depth"}
    assert list(differ.loc["max_depth", ["churn v1", "churn v2", "churn run 3"]]) == ["", "", "not set"]
    assert result.params.loc["dataset", "comparison"] == "same"


def test_best_needs_two_known_values_and_a_difference_is_best_near_zero():
    a = _run(1, 1, seed=1, params={}, metrics={"f1": 0.8, "demographic_parity_difference": -0.02,
                                               "equalized_odds_difference": 0.1})
    b = _run(2, 2, seed=1, params={}, metrics={"f1": 0.9, "demographic_parity_difference": 0.3})
    best = compare_runs([a, b]).metrics["best"]
    assert best["demographic_parity_difference"] == "churn v1"  # |−0.02| beats 0.3
    assert best["equalized_odds_difference"] == ""  # only one run has it: nothing to beat
    assert best["f1"] == "churn v2"
