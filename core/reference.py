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
    """Quantile bin edges + counts, a sorted quantile sample, and moments of one numeric column."""
    raw = pd.to_numeric(values, errors="coerce").astype(float)
    present = raw[np.isfinite(raw)].to_numpy()
    out: dict[str, Any] = {"type": "numeric", "count": int(len(raw)), "nulls": int(len(raw) - len(present))}
    if present.size == 0:
        return out | {"edges": [], "counts": [], "quantiles": []}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)))
    if edges.size == 1:  # a constant column: one bin around its value
        edges = np.array([edges[0], edges[0]])
    # Outer edges open to ±inf so later data outside the training range still lands in a bin.
    inner = edges[1:-1]
    counts = np.bincount(np.searchsorted(inner, present, side="right"), minlength=len(edges) - 1)
    sample = np.quantile(present, np.linspace(0, 1, min(quantiles, present.size)))
    return out | {
        "edges": _floats(edges), "counts": [int(c) for c in counts], "quantiles": _floats(sample),
        "min": float(present.min()), "max": float(present.max()), "mean": float(present.mean()),
        "std": float(present.std()),
    }


def categorical_summary(values: pd.Series, *, top: int = TOP_CATEGORIES) -> dict[str, Any]:
    """Category frequencies (the ``top`` most common; the rest folded into ``__other__``)."""
    counts = values.dropna().astype(str).value_counts()
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


def build(features: pd.DataFrame, *, task: str, predictions: np.ndarray, target: pd.Series) -> dict[str, Any]:
    """The reference of one training run: its feature columns, target and holdout predictions."""
    pred = pd.Series(np.asarray(predictions).ravel())
    return {
        "version": 1,
        "rows": int(len(features)),
        "columns": {str(c): column_summary(features[c]) for c in features.columns},
        "target": numeric_summary(target) if task == "regression" else categorical_summary(target),
        "predictions": numeric_summary(pred) if task == "regression" else categorical_summary(pred),
    }


def _floats(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]
