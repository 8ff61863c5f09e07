"""Evaluating a fitted pipeline on the holdout: metrics, plot data, permutation importance, fairness.

Plot data is plain JSON (stored with the run, drawn by the page with plotly); ``figure_png`` draws
the confusion matrix or residual plot with matplotlib for the MLflow run and the compliance report.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

CURVE_POINTS = 200
RESIDUAL_POINTS = 500
IMPORTANCE_ROWS = 1000
IMPORTANCE_REPEATS = 3
MAX_CURVE_CLASSES = 10


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    plots: dict[str, Any]
    fairness: dict[str, Any]  # column → {demographic_parity_ratio, …, by_group}
    predictions: np.ndarray
    proba: np.ndarray | None = None  # holdout class probabilities (a classifier with predict_proba)
    classes: list[Any] | None = None


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def classification_metrics(y_true: pd.Series, y_pred: np.ndarray, proba: np.ndarray | None,
                           classes: list[Any]) -> dict[str, float]:
    from sklearn.metrics import (
        accuracy_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    out = {
        "accuracy": accuracy_score(y_true, y_pred),
        "precision": precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall": recall_score(y_true, y_pred, average="macro", zero_division=0),
        "f1": f1_score(y_true, y_pred, average="macro", zero_division=0),
    }
    if proba is not None:
        try:
            if len(classes) == 2:
                out["roc_auc"] = roc_auc_score(y_true == classes[1], proba[:, 1])
            else:
                out["roc_auc"] = roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=classes)
        except ValueError:  # a class absent from the holdout: AUC is undefined
            pass
        out["log_loss"] = log_loss(y_true, proba, labels=classes)
    return {k: v for k, v in ((k, _finite(v)) for k, v in out.items()) if v is not None}


def regression_metrics(y_true: pd.Series, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    out = {"rmse": math.sqrt(mean_squared_error(y_true, y_pred)), "mae": mean_absolute_error(y_true, y_pred),
           "r2": r2_score(y_true, y_pred)}
    return {k: v for k, v in ((k, _finite(v)) for k, v in out.items()) if v is not None}


def _thin(*arrays: np.ndarray, points: int = CURVE_POINTS) -> list[list[float]]:
    n = len(arrays[0])
    idx = np.unique(np.linspace(0, n - 1, min(points, n)).round().astype(int)) if n else np.array([], dtype=int)
    return [[round(float(v), 6) for v in np.asarray(a)[idx]] for a in arrays]


def curves(y_true: pd.Series, proba: np.ndarray, classes: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """ROC and precision-recall points per class (the positive class only when binary), thinned."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    shown = [classes[1]] if len(classes) == 2 else classes[:MAX_CURVE_CLASSES]
    roc, pr = {}, {}
    for label in shown:
        column = classes.index(label)
        truth = (y_true == label).to_numpy()
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, proba[:, column])
        precision, recall, _ = precision_recall_curve(truth, proba[:, column])
        fpr_t, tpr_t = _thin(fpr, tpr)
        rec_t, prec_t = _thin(recall[::-1], precision[::-1])
        roc[str(label)] = {"fpr": fpr_t, "tpr": tpr_t, "auc": float(auc(fpr, tpr))}
        pr[str(label)] = {"recall": rec_t, "precision": prec_t,
                          "average_precision": float(average_precision_score(truth, proba[:, column]))}
    return roc, pr


def permutation_importance(pipeline: Any, X: pd.DataFrame, y: pd.Series, *, task: str, seed: int,
                           rows: int = IMPORTANCE_ROWS, repeats: int = IMPORTANCE_REPEATS) -> list[dict[str, Any]]:
    """Drop in the holdout score (macro F1 or R²) when each raw column is shuffled, largest first.

    The same measure as sklearn's ``permutation_importance``, computed on a sample with every
    shuffled copy stacked into one ``predict`` call: one call costs far less than one per copy.
    """
    rng = np.random.default_rng(seed)
    rows = max(50, min(rows, 200_000 // max(len(X.columns) * repeats, 1)))
    if len(X) > rows:
        sample = rng.choice(len(X), rows, replace=False)
        X, y = X.iloc[sample], y.iloc[sample]
    X = X.reset_index(drop=True)
    truth = y.to_numpy()
    copies = []
    for column in X.columns:
        for _ in range(repeats):
            shuffled = X.copy()
            shuffled[column] = X[column].to_numpy()[rng.permutation(len(X))]
            copies.append(shuffled)
    predicted = np.asarray(pipeline.predict(pd.concat([X, *copies], ignore_index=True)))
    blocks = predicted.reshape(len(copies) + 1, len(X))
    score = _score_fn(task)
    base = score(truth, blocks[0])
    out = []
    for i, column in enumerate(X.columns):
        drops = [base - score(truth, blocks[1 + i * repeats + r]) for r in range(repeats)]
        out.append({"feature": str(column), "mean": float(np.mean(drops)), "std": float(np.std(drops))})
    return sorted(out, key=lambda r: -r["mean"])


def _score_fn(task: str) -> Any:
    from sklearn.metrics import f1_score, r2_score

    if task == "classification":
        return lambda t, p: f1_score(t, p, average="macro", zero_division=0)
    return r2_score


def fairness(y_true: pd.Series, y_pred: np.ndarray, sensitive: pd.Series, *, task: str,
             classes: list[Any]) -> dict[str, Any]:
    """Per-group metrics from one fairlearn MetricFrame and, for binary classification, the parity
    measures derived from it as fairlearn defines them (demographic parity: selection rates between
    groups; equalized odds: the larger of the true- and false-positive-rate differences)."""
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score

    groups = sensitive.to_numpy()
    binary = task == "classification" and len(classes) == 2
    if task == "classification":
        truth, pred = np.asarray(y_true), np.asarray(y_pred)
        metrics: dict[str, Any] = {"accuracy": accuracy_score,
                                   "f1": lambda t, p: f1_score(t, p, average="macro", zero_division=0)}
        if binary:  # rates of the positive class (the second label, e.g. 1 or "yes")
            truth, pred = (truth == classes[1]).astype(int), (pred == classes[1]).astype(int)
            metrics |= {"selection_rate": selection_rate, "true_positive_rate": true_positive_rate,
                        "false_positive_rate": false_positive_rate}
    else:
        truth, pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
        metrics = {"mae": mean_absolute_error, "r2": lambda t, p: r2_score(t, p) if len(t) > 1 else float("nan")}
    frame = MetricFrame(metrics=metrics, y_true=truth, y_pred=pred, sensitive_features=groups)
    counts = pd.Series(groups).value_counts()
    by_group = {str(group): {"count": int(counts.get(group, 0)), **{k: _finite(v) for k, v in row.items()}}
                for group, row in frame.by_group.iterrows()}
    out: dict[str, Any] = {"by_group": by_group}
    if binary:
        difference, ratio = frame.difference(method="between_groups"), frame.ratio(method="between_groups")
        out["demographic_parity_difference"] = _finite(difference["selection_rate"])
        out["demographic_parity_ratio"] = _finite(ratio["selection_rate"])
        out["equalized_odds_difference"] = _finite(max(difference["true_positive_rate"],
                                                       difference["false_positive_rate"]))
    return out


def evaluate(pipeline: Any, X: pd.DataFrame, y: pd.Series, *, task: str, seed: int,
             sensitive: pd.Series | None = None, sensitive_name: str | None = None) -> Evaluation:
    """Metrics and plot data of ``pipeline`` on the holdout ``X``, ``y``."""
    from sklearn.metrics import confusion_matrix

    plots: dict[str, Any] = {}
    proba = None
    if task == "classification":
        classes = list(pipeline.classes_)
        proba = pipeline.predict_proba(X) if hasattr(pipeline, "predict_proba") else None
        y_pred = _predictions(pipeline, X, proba)
        metrics = classification_metrics(y, y_pred, proba, classes)
        matrix = confusion_matrix(y, y_pred, labels=classes)
        plots["confusion_matrix"] = {"labels": [str(c) for c in classes], "matrix": matrix.tolist()}
        if proba is not None:
            plots["roc"], plots["pr"] = curves(y, proba, classes)
    else:
        classes = []
        y_pred = pipeline.predict(X)
        metrics = regression_metrics(y, y_pred)
        residual = y.to_numpy() - y_pred
        idx = np.random.default_rng(seed).choice(len(y), min(RESIDUAL_POINTS, len(y)), replace=False)
        plots["residuals"] = {"predicted": [round(float(v), 6) for v in y_pred[idx]],
                              "residual": [round(float(v), 6) for v in residual[idx]]}
    plots["importance"] = permutation_importance(pipeline, X, y, task=task, seed=seed)
    fair: dict[str, Any] = {}
    if sensitive is not None and sensitive_name:
        fair = {sensitive_name: fairness(y, y_pred, sensitive, task=task, classes=classes)}
        for key in ("demographic_parity_ratio", "demographic_parity_difference", "equalized_odds_difference"):
            if fair[sensitive_name].get(key) is not None:
                metrics[key] = fair[sensitive_name][key]
        plots["fairness"] = {"column": sensitive_name, **fair[sensitive_name]}
    return Evaluation(metrics=metrics, plots=plots, fairness=fair, predictions=np.asarray(y_pred), proba=proba,
                      classes=classes or None)


def _predictions(pipeline: Any, X: pd.DataFrame, proba: np.ndarray | None) -> np.ndarray:
    """A forest's prediction is the class of highest probability: reuse the probabilities (one pass)."""
    from sklearn.ensemble._forest import ForestClassifier

    last = pipeline[-1] if hasattr(pipeline, "steps") else pipeline  # an imported model may be a bare estimator
    if proba is not None and isinstance(last, ForestClassifier):
        return pipeline.classes_.take(np.argmax(proba, axis=1))
    return np.asarray(pipeline.predict(X))


def baseline(prepared_task: str, X_train: pd.DataFrame, y_train: pd.Series, X_test: pd.DataFrame,
             y_test: pd.Series) -> dict[str, float]:
    """The holdout scores of a dummy model (most frequent class / the mean), for comparison."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    if prepared_task == "classification":
        dummy = DummyClassifier(strategy="most_frequent").fit(X_train, y_train)
        proba = dummy.predict_proba(X_test)
        return classification_metrics(y_test, dummy.predict(X_test), proba, list(dummy.classes_))
    dummy = DummyRegressor(strategy="mean").fit(X_train, y_train)
    return regression_metrics(y_test, dummy.predict(X_test))


def figure_png(plots: dict[str, Any], *, title: str) -> tuple[str, bytes] | None:
    """The confusion matrix (classification) or residual plot (regression) as a PNG: (file name, bytes)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state in a server process

    fig = Figure(figsize=(5.5, 4.5), dpi=110)
    ax = fig.add_subplot()
    if "confusion_matrix" in plots:
        cm = np.array(plots["confusion_matrix"]["matrix"])
        labels = plots["confusion_matrix"]["labels"]
        image = ax.imshow(cm, cmap="Blues")
        fig.colorbar(image, ax=ax)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        for (i, j), value in np.ndenumerate(cm):
            ax.text(j, i, str(value), ha="center", va="center",
                    color="white" if value > cm.max() / 2 else "black")
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual")
        name = "confusion_matrix.png"
    elif "residuals" in plots:
        ax.scatter(plots["residuals"]["predicted"], plots["residuals"]["residual"], s=8, alpha=0.6)
        ax.axhline(0, color="grey", linewidth=1)
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual − predicted")
        name = "residuals.png"
    else:
        return None
    ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return name, buffer.getvalue()
