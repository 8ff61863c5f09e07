"""Performance estimated without labels: CBPE for classifiers, DLE for regressors.

Labels arrive days or weeks after predictions, so every drift check also estimates what the
model's metrics are on the current window from its inputs and outputs alone.

- **CBPE**, confidence-based performance estimation (NannyML's method; the idea of expected
  confusion matrices from calibrated scores is in Guo et al., "On Calibration of Modern Neural
  Networks", ICML 2017, and Kivimäki et al., "Confidence-based performance estimation", 2024):
  the model's probabilities are calibrated on the holdout at training time (isotonic regression,
  Zadrozny & Elkan, KDD 2002, one-vs-rest per class); on a window each row then counts as the
  expected share of a correct and a wrong prediction, which gives the expected confusion matrix and
  from it accuracy, macro precision, recall and F1, and ROC AUC (expected TPR/FPR over the raw score).
- **DLE**, direct loss estimation (NannyML's method for regression): at training a small model of
  the absolute error (and one of the squared error) is fitted on the holdout from the features and
  the prediction; on a window the mean predicted loss is the estimated MAE (and RMSE).

Both fail when the relation between inputs and target changes (concept drift), when the scores do
not stay calibrated, or when data moves into regions the holdout never covered (docs/monitoring.md).

Everything fitted is stored as plain numbers in the version's reference statistics (isotonic
thresholds; the error model's trees as arrays), so reading it back never unpickles anything and
needs neither MLflow nor scikit-learn. Bands are 95 % intervals: the sampling error of the window
(simulated labels for CBPE, the error model's residual spread for DLE) together with the error of
what was fitted on a holdout of finite size (its bootstrap spread, measured at training).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

Z = 1.96  # 95 % bands
SIMULATIONS = 100  # label draws for CBPE's bands ...
SIMULATION_ROWS = 5000  # ... on at most this many rows, the spread scaled by sqrt(rows / window rows)
BOOTSTRAPS = 100  # holdout resamples for the fitted part's own error
MAX_THRESHOLDS = 2000  # isotonic points kept per class
DLE_TREES, DLE_DEPTH, DLE_RATE = 60, 3, 0.1
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse")


# -- CBPE --------------------------------------------------------------------------------------------

def fit_cbpe(y_true: pd.Series | np.ndarray, proba: np.ndarray, classes: list[Any], *, seed: int = 0
             ) -> dict[str, Any]:
    """Isotonic calibration of each class's probability on the holdout, stored as its thresholds.

    Also keeps the holdout's own metrics (``reference``) and their bootstrap spread (``reference_sd``,
    the calibrator's share of the band).
    """
    from sklearn.isotonic import IsotonicRegression

    truth = np.asarray(y_true)
    proba = np.asarray(proba, float)
    shown = _calibrated_classes(classes)
    calibration = {}
    for k in shown:
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(proba[:, k], (truth == classes[k]).astype(float))
        x, y = np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float)
        if x.size > MAX_THRESHOLDS:
            keep = np.unique(np.linspace(0, x.size - 1, MAX_THRESHOLDS).round().astype(int))
            x, y = x[keep], y[keep]
        calibration[str(classes[k])] = {"x": [float(v) for v in x], "y": [float(v) for v in y]}
    estimator = {"method": "cbpe", "classes": [str(c) for c in classes], "calibration": calibration,
                 "holdout_rows": int(len(truth))}
    codes = pd.Categorical(pd.Series(truth).astype(str), categories=[str(c) for c in classes]).codes
    onehot = np.zeros((len(truth), len(classes)))
    known = codes >= 0
    onehot[np.flatnonzero(known), codes[known]] = 1.0
    realised = _classification_metrics(onehot, proba)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAPS):
        idx = rng.integers(0, len(truth), len(truth))
        draws.append(_classification_metrics(onehot[idx], proba[idx]))
    estimator["reference"] = realised
    estimator["reference_sd"] = {m: float(np.nanstd([d.get(m, np.nan) for d in draws])) for m in realised}
    return estimator


def _calibrated_classes(classes: list[Any]) -> list[int]:
    """Binary: only the positive (second) class; the first is its complement."""
    return [1] if len(classes) == 2 else list(range(len(classes)))


def calibrate(estimator: dict[str, Any], proba: np.ndarray) -> np.ndarray:
    """Calibrated class probabilities (rows sum to 1) from the model's raw ones."""
    proba = np.asarray(proba, float)
    classes = estimator["classes"]
    if len(classes) == 2:
        cal = estimator["calibration"][classes[1]]
        p = np.interp(proba[:, 1], cal["x"], cal["y"])
        return np.column_stack([1 - p, p])
    out = np.column_stack([np.interp(proba[:, k], estimator["calibration"][c]["x"], estimator["calibration"][c]["y"])
                           for k, c in enumerate(classes)])
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1), 1 / len(classes))


def _classification_metrics(truth: np.ndarray, proba: np.ndarray, orders: dict[int, np.ndarray] | None = None
                            ) -> dict[str, float]:
    """Metrics of the model's argmax prediction where ``truth`` is a (soft) one-hot label matrix.

    With hard labels this is the realised score; with calibrated probabilities as ``truth`` it is
    CBPE's expected confusion matrix and the metrics derived from it. ``orders`` (class → rows by
    descending score, from ``_orders``) saves the sorting when the same scores are scored many times.
    """
    n, k = proba.shape
    predicted = np.argmax(proba, axis=1)
    confusion = np.zeros((k, k))  # confusion[actual, predicted]
    for j in range(k):
        confusion[:, j] = truth[predicted == j].sum(axis=0)
    tp = np.diag(confusion)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(confusion.sum(axis=0) > 0, tp / confusion.sum(axis=0), 0.0)
        recall = np.where(confusion.sum(axis=1) > 0, tp / confusion.sum(axis=1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    out = {"accuracy": float(tp.sum() / max(n, 1)), "precision": float(precision.mean()),
           "recall": float(recall.mean()), "f1": float(f1.mean())}
    found = [_auc(truth[:, j], proba[:, j], None if orders is None else orders[j]) for j in _scored(k)]
    aucs = [a for a in found if a is not None]
    if aucs:
        out["roc_auc"] = float(np.mean(aucs))
    return out


def _scored(k: int) -> list[int]:
    return [1] if k == 2 else list(range(k))


def _orders(proba: np.ndarray) -> dict[int, np.ndarray]:
    return {j: np.argsort(-proba[:, j], kind="stable") for j in _scored(proba.shape[1])}


def _auc(positive: np.ndarray, score: np.ndarray, order: np.ndarray | None = None) -> float | None:
    """ROC AUC with (soft) positive weights: expected TPR against expected FPR over the score's thresholds."""
    if order is None:
        order = np.argsort(-score, kind="stable")
    pos, neg = positive[order], 1 - positive[order]
    if pos.sum() <= 0 or neg.sum() <= 0:
        return None
    s = score[order]
    last = np.append(s[1:] != s[:-1], True)  # one ROC point per distinct score (ties move together)
    tpr = np.concatenate(([0.0], np.cumsum(pos)[last] / pos.sum()))
    fpr = np.concatenate(([0.0], np.cumsum(neg)[last] / neg.sum()))
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def estimate_cbpe(estimator: dict[str, Any], proba: np.ndarray, *, seed: int = 1616) -> dict[str, dict[str, float]]:
    """CBPE on a window's raw probabilities → ``{metric: {value, lower, upper, reference}}``."""
    proba = np.asarray(proba, float)
    calibrated = calibrate(estimator, proba)
    value = _classification_metrics(calibrated, proba)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(proba), SIMULATION_ROWS, replace=False)) if len(proba) > SIMULATION_ROWS \
        else np.arange(len(proba))
    sim_proba, cumulative = proba[rows], np.cumsum(calibrated[rows], axis=1)
    orders = _orders(sim_proba)
    eye = np.eye(proba.shape[1])
    draws = []
    for _ in range(SIMULATIONS):  # labels drawn from the calibrated probabilities: the window's sampling error
        drawn = (rng.random((len(rows), 1)) > cumulative).sum(axis=1).clip(0, proba.shape[1] - 1)
        draws.append(_classification_metrics(eye[drawn], sim_proba, orders))
    return _banded(value, draws, estimator, scale=float(np.sqrt(len(rows) / max(len(proba), 1))))


# -- DLE ---------------------------------------------------------------------------------------------

def design(spec: dict[str, Any], frame: pd.DataFrame, predicted: np.ndarray) -> np.ndarray:
    """The error model's inputs: the prediction, numeric features (missing → training median) and
    categorical features as the index of their category among the training ones (else -1)."""
    columns = [np.asarray(predicted, float)]
    for name, fill in spec["numeric"].items():
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        columns.append(np.where(np.isfinite(values), values, fill))
    for name, categories in spec["categorical"].items():
        codes = pd.Categorical(frame[name].map(lambda v: None if v is None or v != v else str(v)),
                               categories=categories).codes
        columns.append(codes.astype(float))
    return np.column_stack(columns)


def fit_dle(frame: pd.DataFrame, y_true: pd.Series | np.ndarray, predicted: np.ndarray, *,
            reference: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Gradient-boosted trees of the holdout's absolute and squared errors, exported as arrays.

    ``reference`` is the version's column statistics (types, categories, medians come from it).
    """
    from sklearn.ensemble import GradientBoostingRegressor

    numeric = {n: _median(s) for n, s in reference["columns"].items() if s.get("type") == "numeric"}
    categorical = {n: [c for c in (s.get("frequencies") or {})] for n, s in reference["columns"].items()
                   if s.get("type") != "numeric"}
    spec: dict[str, Any] = {"numeric": numeric, "categorical": categorical}
    x = design(spec, frame, predicted)
    error = np.asarray(y_true, float) - np.asarray(predicted, float)
    leaf = max(5, len(error) // 50)
    models = {}
    for loss, target in (("abs", np.abs(error)), ("sq", error**2)):
        gb = GradientBoostingRegressor(n_estimators=DLE_TREES, max_depth=DLE_DEPTH, learning_rate=DLE_RATE,
                                       min_samples_leaf=leaf, subsample=0.8, random_state=seed).fit(x, target)
        fitted = np.maximum(gb.predict(x), 0.0)
        models[loss] = {"init": float(np.ravel(gb.init_.constant_)[0]), "rate": DLE_RATE,
                        "trees": [_tree_arrays(t[0].tree_) for t in gb.estimators_],
                        "residual_sd": float(np.std(target - fitted)), "target_sd": float(np.std(target))}
    mae, mse = float(np.mean(np.abs(error))), float(np.mean(error**2))
    n = max(len(error), 1)
    return spec | {"method": "dle", "models": models, "holdout_rows": int(len(error)),
                   "reference": {"mae": mae, "rmse": float(np.sqrt(mse))},
                   "reference_sd": {"mae": models["abs"]["target_sd"] / np.sqrt(n),
                                    "rmse": models["sq"]["target_sd"] / np.sqrt(n) / max(2 * np.sqrt(mse), 1e-12)}}


def _median(summary: dict[str, Any]) -> float:
    q = summary.get("quantiles") or []
    return float(q[len(q) // 2]) if q else 0.0


def _tree_arrays(tree: Any) -> dict[str, list[float] | list[int]]:
    return {"left": tree.children_left.tolist(), "right": tree.children_right.tolist(),
            "feature": tree.feature.tolist(), "threshold": [float(v) for v in tree.threshold],
            "value": [float(v) for v in tree.value[:, 0, 0]]}


def predict_trees(model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The boosted trees' prediction, read from the stored arrays (one vectorised walk per tree)."""
    out = np.full(len(x), model["init"], float)
    rows = np.arange(len(x))
    for tree in model["trees"]:
        left, right = np.asarray(tree["left"]), np.asarray(tree["right"])
        feature, threshold = np.asarray(tree["feature"]), np.asarray(tree["threshold"])
        node = np.zeros(len(x), dtype=np.int64)
        while True:
            inner = left[node] >= 0
            if not inner.any():
                break
            go_left = x[rows, np.where(inner, feature[node], 0)] <= threshold[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        out += model["rate"] * np.asarray(tree["value"])[node]
    return np.maximum(out, 0.0)


def estimate_dle(estimator: dict[str, Any], frame: pd.DataFrame, predicted: np.ndarray
                 ) -> dict[str, dict[str, float]]:
    """DLE on a window's rows and predictions → ``{mae|rmse: {value, lower, upper, reference}}``."""
    x = design(estimator, frame, predicted)
    n = max(len(x), 1)
    abs_model, sq_model = estimator["models"]["abs"], estimator["models"]["sq"]
    mae = float(predict_trees(abs_model, x).mean())
    mse = float(predict_trees(sq_model, x).mean())
    rmse = float(np.sqrt(mse))
    sd = {"mae": abs_model["residual_sd"] / np.sqrt(n),
          "rmse": sq_model["residual_sd"] / np.sqrt(n) / max(2 * rmse, 1e-12)}
    out = {}
    for metric, value in (("mae", mae), ("rmse", rmse)):
        spread = float(np.hypot(sd[metric], estimator["reference_sd"].get(metric, 0.0)))
        out[metric] = {"value": value, "lower": max(0.0, value - Z * spread), "upper": value + Z * spread,
                       "reference": estimator["reference"].get(metric)}
    return out


# -- either ------------------------------------------------------------------------------------------

def _banded(value: dict[str, float], draws: list[dict[str, float]], estimator: dict[str, Any], *,
            scale: float = 1.0) -> dict[str, dict[str, float]]:
    out = {}
    for metric, v in value.items():
        sample = np.asarray([d[metric] for d in draws if metric in d], float)
        window_sd = float(np.std(sample)) * scale if sample.size else 0.0
        spread = float(np.hypot(window_sd, estimator.get("reference_sd", {}).get(metric, 0.0)))
        out[metric] = {"value": v, "lower": max(0.0, v - Z * spread), "upper": min(1.0, v + Z * spread),
                       "reference": estimator.get("reference", {}).get(metric)}
    return out


def estimate(estimator: dict[str, Any] | None, *, frame: pd.DataFrame, outputs: np.ndarray | None
             ) -> dict[str, dict[str, float]]:
    """The estimate for a window (``outputs``: raw probabilities for CBPE, predicted values for DLE);
    ``{}`` when the version stored no estimator (trained before LeanOps made one) or there are no outputs."""
    if not estimator or outputs is None or len(frame) == 0:
        return {}
    if estimator.get("method") == "cbpe":
        return estimate_cbpe(estimator, outputs)
    if estimator.get("method") == "dle":
        return estimate_dle(estimator, frame, outputs)
    return {}
