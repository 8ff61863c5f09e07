"""Reference statistics of a model's training data, made at training time for drift monitoring.

Size is O(bins), not O(rows): per numeric column quantile bin edges with counts and a compact
sorted sample of quantile values (enough for KS, PSI and Wasserstein later); per categorical
column the category frequencies; and the model's prediction distribution on the holdout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

BINS = 20
QUANTILES = 1000
TOP_CATEGORIES = 50
OTHER = "__other__"


def numeric_summary(values: pd.Series, *, bins: int = BINS, quantiles: int = QUANTILES) -> dict[str, Any]:
    """Quantile bin edges + counts, a sorted quantile sample, and moments of one numeric column.

    One sort per column; everything else is read off the sorted values (same numbers as
    ``np.quantile``'s default linear method).
    """
    raw = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    present = np.sort(raw[np.isfinite(raw)])
    out: dict[str, Any] = {"type": "numeric", "count": int(len(raw)), "nulls": int(len(raw) - len(present))}
    if present.size == 0:
        return out | {"edges": [], "counts": [], "quantiles": []}
    edges = np.unique(sorted_quantiles(present, np.linspace(0, 1, bins + 1)))
    if edges.size == 1:  # a constant column: one bin around its value
        edges = np.array([edges[0], edges[0]])
    # Outer edges open to ±inf so later data outside the training range still lands in a bin.
    inner = edges[1:-1]
    below = np.searchsorted(present, inner, side="left")  # values < each inner edge
    counts = np.diff(np.concatenate(([0], below, [present.size])))
    sample = sorted_quantiles(present, np.linspace(0, 1, min(quantiles, present.size)))
    return out | {
        "edges": _floats(edges), "counts": [int(c) for c in counts], "quantiles": _floats(sample),
        "min": float(present[0]), "max": float(present[-1]), "mean": float(present.mean()),
        "std": float(present.std()),
    }


def sorted_quantiles(ordered: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``np.quantile(ordered, probs)`` (linear method) for values that are already sorted."""
    virtual = np.asarray(probs, dtype=float) * (ordered.size - 1)
    lo = np.floor(virtual).astype(np.int64)
    hi = np.minimum(lo + 1, ordered.size - 1)
    t = virtual - lo
    a, b = ordered[lo], ordered[hi]
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def categorical_summary(values: pd.Series, *, top: int = TOP_CATEGORIES) -> dict[str, Any]:
    """Category frequencies (the ``top`` most common; the rest folded into ``__other__``)."""
    counts = values.value_counts(dropna=True)  # count first, name as text after: fast on millions of rows
    counts = counts[counts > 0]  # a pandas Categorical lists its unused categories too
    if not all(isinstance(k, str) for k in counts.index):
        counts = counts.groupby(counts.index.astype(str)).sum().sort_values(ascending=False, kind="stable")
    kept = counts.iloc[:top]
    frequencies = {str(k): int(v) for k, v in kept.items()}
    if len(counts) > top:
        frequencies[OTHER] = int(counts.iloc[top:].sum())
    return {"type": "categorical", "count": int(len(values)), "nulls": int(values.isna().sum()),
            "distinct": int(len(counts)), "frequencies": frequencies}


def column_summary(values: pd.Series) -> dict[str, Any]:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return numeric_summary(values)
    return categorical_summary(values)


def build(features: pd.DataFrame, *, task: str, predictions: np.ndarray, target: pd.Series,
          holdout: pd.DataFrame | None = None, holdout_target: pd.Series | None = None,
          proba: np.ndarray | None = None, classes: list[Any] | None = None,
          importance: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The reference of one training run: its feature columns, target and holdout predictions.

    Given the holdout (``holdout``, ``holdout_target``; ``proba`` and ``classes`` for a classifier
    with probabilities) it also keeps what a drift check weighs and estimates with: the holdout's
    predicted probabilities per class (prediction drift on probabilities, not only labels), the
    label-free performance estimator (core.training.estimation: CBPE's isotonic calibration or
    DLE's error trees, as plain numbers) and each column's share of the permutation ``importance``.
    """
    from core.training import estimation

    pred = pd.Series(np.asarray(predictions).ravel())
    columns = {str(c): column_summary(features[c]) for c in features.columns}
    out: dict[str, Any] = {
        "version": 2,
        "rows": int(len(features)),
        "columns": columns,
        "target": numeric_summary(target) if task == "regression" else categorical_summary(target),
        "predictions": numeric_summary(pred) if task == "regression" else categorical_summary(pred),
    }
    if importance is not None:
        out["importance"] = importance_shares(importance, list(columns))
    if holdout is None or holdout_target is None or len(holdout) == 0:
        return out
    if task == "classification" and proba is not None and classes:
        proba = np.asarray(proba, float)
        shown = [1] if len(classes) == 2 else range(len(classes))
        out["probabilities"] = {str(classes[k]): numeric_summary(pd.Series(proba[:, k])) for k in shown}
        out["estimator"] = estimation.fit_cbpe(holdout_target, proba, list(classes))
    elif task == "regression":
        out["estimator"] = estimation.fit_dle(holdout, holdout_target, np.asarray(predictions, float),
                                              reference=out)
    return out


def importance_shares(importance: list[dict[str, Any]], columns: list[str]) -> dict[str, float]:
    """Each column's share of the model's total permutation importance (negative drops count as none)."""
    drops = {str(r["feature"]): max(float(r.get("mean") or 0.0), 0.0) for r in importance}
    total = sum(drops.get(c, 0.0) for c in columns)
    return {c: (drops.get(c, 0.0) / total if total > 0 else 0.0) for c in columns}


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]
