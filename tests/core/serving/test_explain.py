"""Explanations of one prediction: base + Σ per-column contributions equals the explained output, for every kind
of model; one-hot parts are summed back to their raw column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.serving.explain import explain
from tests.support import mlflow_models


def _pipeline(estimator: object) -> object:
    pipe = mlflow_models.pipeline("lr")
    pipe.steps[-1] = ("model", estimator)
    return pipe


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    X, y = mlflow_models.churn_data(1500)
    value = (X["monthly_charges"].fillna(60) * 1.5 + X["tenure_months"].fillna(10) * 3
             + (X["contract"] == "two-year") * 40)
    return X, y, value


def _relative_error(explained: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(explained - expected) / np.maximum(np.abs(expected), 1.0)))


def test_a_regressor_adds_up_on_1000_records(data: tuple[pd.DataFrame, pd.Series, pd.Series]) -> None:
    from sklearn.ensemble import RandomForestRegressor

    X, _, value = data
    pipe = _pipeline(RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0)).fit(X, value)
    records = X.head(1000)
    why = explain(pipe, records)
    assert why.values.shape == (1000, X.shape[1]) and why.columns == list(X.columns)  # raw columns, not one-hots
    assert _relative_error(why.base + why.values.sum(axis=1), pipe.predict(records)) < 1e-6
    assert why.explained == "the prediction" and "TreeSHAP" in why.method
    # the contract one-hots add up to one column that matters; a column the target ignores matters little
    mean = np.abs(why.values).mean(axis=0)
    assert mean[why.columns.index("contract")] > 5 * mean[why.columns.index("gender")]


@pytest.mark.parametrize("kind", ["xgboost", "logistic", "fallback"])
def test_a_classifier_adds_up_in_its_explained_output(kind: str, data: tuple[pd.DataFrame, pd.Series, pd.Series]
                                                      ) -> None:
    X, y, _ = data
    records = X.head(1000 if kind != "fallback" else 60)
    if kind == "xgboost":
        import xgboost as xgb

        pipe = _pipeline(xgb.XGBClassifier(n_estimators=40, max_depth=4)).fit(X, y)
        expected = pipe[-1].predict(pipe[:-1].transform(records), output_margin=True)
        explained = "log-odds of class 1"
    elif kind == "logistic":
        pipe = mlflow_models.pipeline("lr").fit(X, y)
        expected = pipe.decision_function(records)
        explained = "log-odds of class 1"
    else:  # no exact method for nearest neighbours: sampled Shapley values, still exactly additive
        from sklearn.neighbors import KNeighborsClassifier

        pipe = _pipeline(KNeighborsClassifier(n_neighbors=15)).fit(X, y)
        expected = pipe.predict_proba(records)[:, 1]
        explained = "probability of class 1"
    why = explain(pipe, records)
    assert why.explained == explained
    # XGBoost computes its contributions (and its margin) in float32: additivity holds to float32's precision
    tolerance = 1e-5 if kind == "xgboost" else 1e-6
    assert _relative_error(why.base + why.values.sum(axis=1), expected) < tolerance


def test_leanops_own_xgboost_kind_gets_xgboosts_exact_contributions(data: tuple[pd.DataFrame, pd.Series, pd.Series]
                                                                   ) -> None:
    """The training kind subclasses XGBClassifier (it keeps the labels): still XGBoost's own TreeSHAP, not the
    sampled fallback (which cost ~50× a predict in bench/batch.py)."""
    from core.training.xgb_labels import LabelledXGBClassifier

    X, y, _ = data
    pipe = _pipeline(LabelledXGBClassifier(n_estimators=40, max_depth=4)).fit(X, y)
    records = X.head(1000)
    why = explain(pipe, records)
    assert why.method == "exact TreeSHAP (XGBoost pred_contribs)" and why.explained == "log-odds of class 1"
    import xgboost as xgb

    expected = xgb.XGBClassifier.predict(pipe[-1], pipe[:-1].transform(records), output_margin=True)  # not decoded
    assert _relative_error(why.base + why.values.sum(axis=1), expected) < 1e-5
