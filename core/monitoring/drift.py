"""The drift engine: current data against a model version's reference statistics (numpy/scipy, vectorised).

The reference (``core/training/reference.py``) keeps no training rows: per numeric column a sorted sample of
1,000 quantiles, 20 quantile bins with counts and the moments; per categorical column the category
counts. Numeric statistics treat the quantile sample as the reference's empirical distribution (each
point weighing 1/m), so the KS statistic and the Wasserstein distance are those of two step CDFs: KS
is within about 1/m of what the full training column would give, normalised Wasserstein within about
0.01 (tests/core/monitoring/test_drift.py); p-values use the reference's real row count. Each numeric column is
sorted once; nothing loops over rows in Python.

Size-aware like Evidently: when either side has at most ``large_sample_rows`` values, a test decides
(KS or chi-squared: drift when p < ``p_value``); above that a distance does (normalised Wasserstein or
Jensen-Shannon: drift when it reaches its threshold), so a million rows from the same distribution do
not raise alarms over differences too small to matter. PSI is reported for every column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special  # scipy.stats costs seconds to import: only for small KS samples

from core.errors import InvalidInput
from core.monitoring import significance, sketch

PSI_FLOOR = 1e-4  # an empty bin counts as this share, so PSI stays finite (Evidently's convention)
STD_FLOOR = 1e-3  # Wasserstein is divided by max(reference std, this), as Evidently does
OTHER = "__other__"
NEW_KEPT = 20  # new categories shown (and tested) one by one; more are counted together as NEW_REST
NEW_REST = "__other_new__"

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Thresholds:
    """When a column, and the data as a whole, count as drifted (a model's ``drift`` policy)."""

    large_sample_rows: int = 1000
    p_value: float = 0.05
    wasserstein: float = 0.1
    jensenshannon: float = 0.1
    psi: float = 0.2
    share: float = 0.5
    top_k: int = 3
    importance_share: float = 0.10
    prediction_drift: bool = True
    # A tested column also needs an effect this big, and p-values are corrected across columns
    # (core/monitoring/significance.py says why and how).
    floor_wasserstein: float = 0.05
    floor_jensenshannon: float = 0.05
    correction: str = "benjamini-hochberg"


@dataclass(frozen=True)
class Comparison:
    """The outcome of comparing current data with a reference.

    ``verdict`` is the one dataset verdict (``{drifted, reasons, not_counted}``, see ``verdict``);
    ``drift_detected`` equals ``verdict["drifted"]``.
    """

    columns: dict[str, dict[str, Any]]
    predictions: dict[str, Any] | None
    drift_share: float
    drift_detected: bool
    current_rows: int
    reference_rows: int
    thresholds: Thresholds = field(default_factory=Thresholds)
    verdict: dict[str, Any] = field(default_factory=dict)
    estimated_performance: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def drifted(self) -> list[str]:
        """Drifted columns, the most important first (``verdict["ranked"]``)."""
        return list(self.verdict.get("ranked") or [name for name, col in self.columns.items() if col["drifted"]])


# -- statistics on plain arrays (each matches its scipy counterpart) ------------------------------

KS_EXACT_N = 10_000  # effective sizes above this use the limiting Kolmogorov distribution


def ks_pvalue(statistic: float, n_ref: int, n_cur: int) -> float:
    """Two-sided two-sample KS p-value, Smirnov's asymptotic form (scipy's ``method="asymp"``).

    scipy evaluates ``kstwo`` at the effective size ``n_ref n_cur / (n_ref + n_cur)``, which can
    take seconds above ~10,000; there the limiting distribution (``kstwobign``) is used instead
    (it differs by under 0.001 at that size and less beyond). Large samples are judged by
    distances anyway; the p-value is reported.
    """
    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    size = np.round(m * n / (m + n))
    if size > KS_EXACT_N:
        return float(np.clip(special.kolmogorov(np.sqrt(size) * statistic), 0, 1))  # = kstwobign.sf
    from scipy import stats

    return float(np.clip(stats.kstwo.sf(statistic, size), 0, 1))


def ks_2samp(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """KS statistic and p-value of two raw samples; equals ``scipy.stats.ks_2samp(..., method="asymp")``
    (the p-value within 0.001 above an effective size of 10,000; see ``ks_pvalue``)."""
    ref, cur = np.sort(np.asarray(reference, float)), np.sort(np.asarray(current, float))
    d, _ = _step_gaps(ref, cur)
    return d, ks_pvalue(d, ref.size, cur.size)


def wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """First Wasserstein distance of two raw samples; equals ``scipy.stats.wasserstein_distance``."""
    return _step_gaps(np.sort(np.asarray(reference, float)), np.sort(np.asarray(current, float)))[1]


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins (empty bins floored)."""
    ref = np.asarray(reference_counts, float)
    cur = np.asarray(current_counts, float)
    ref = np.maximum(ref / max(ref.sum(), 1), PSI_FLOOR)
    cur = np.maximum(cur / max(cur.sum(), 1), PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def chisquare(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Chi-squared test that two samples share one categorical distribution (a 2 × k contingency table).

    Equals ``scipy.stats.chi2_contingency([reference, current], correction=False)``. Unlike a
    goodness-of-fit test against the reference shares (Evidently's), it allows for the reference
    being a sample too: with 1,200 reference and 500 current rows from one distribution the
    goodness-of-fit test flags 14 % of columns at p < 0.05, this one the nominal 5 %.
    """
    table = np.vstack([np.asarray(reference_counts, float), np.asarray(current_counts, float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(special.chdtrc(table.shape[1] - 1, statistic))  # = stats.chi2.sf


def jensenshannon(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log); equals ``scipy.spatial.distance.jensenshannon``."""
    p = np.asarray(reference_counts, float)
    q = np.asarray(current_counts, float)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(np.sqrt(max((kl_p + kl_q) / 2, 0.0)))


def _step_gaps(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """KS statistic and Wasserstein distance of the empirical CDFs of two *sorted* samples.

    No merged array is built (the current side may have millions of values, the reference 1,000):
    KS is the largest CDF gap at either sample's distinct values (each CDF read at the other's
    points by binary search); Wasserstein is the area between the quantile functions,
    ``∫|Qa(u) - Qb(u)| du``, summed over the larger sample's steps with the smaller one's
    quantile at the start of each step, plus one correction per step of the smaller sample.
    """
    if a.size < b.size:
        a, b = b, a
    n, m = a.size, b.size
    a_x, a_f = _ecdf(a)
    b_x, b_f = _ecdf(b)
    ks = max(float(np.max(np.abs(a_f - np.searchsorted(b, a_x, side="right") / m))),
             float(np.max(np.abs(b_f - np.searchsorted(a, b_x, side="right") / n))))
    # Step i of a covers u in (i/n, (i+1)/n]; b's quantile there starts as b[floor(i m / n)] and moves
    # to b[k] at u = k/m, which (m <= n) falls strictly inside at most one step of a.
    start = (np.arange(n, dtype=np.int64) * m) // n
    area = float(np.abs(a - b[start]).sum()) / n
    k = np.arange(1, m, dtype=np.int64)
    i = (k * n) // m
    inside = (k * n) % m != 0
    k, i = k[inside], i[inside]
    width = ((i + 1) * m - k * n) / (n * m)
    area += float(np.sum(width * (np.abs(a[i] - b[k]) - np.abs(a[i] - b[k - 1]))))
    return ks, area


def _ecdf(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted sample and its right-continuous CDF at each."""
    ends = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
    return ordered[ends], (ends + 1) / ordered.size


# -- one column against its reference summary ----------------------------------------------------

def numeric_column(summary: dict[str, Any], values: pd.Series, thresholds: Thresholds) -> dict[str, Any]:
    """KS, normalised Wasserstein and PSI of one numeric column; histograms on the reference bins.

    ``reference_hist`` and ``current_hist`` count the values in the reference's quantile bins
    (``edges``; the first and last bins are open-ended, named in ``bins``).
    """
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    text = int((values.notna().to_numpy() & np.isnan(numbers)).sum())  # text where numbers belong
    counted = sketch.NumericSketch(summary)
    counted.add(numbers, invalid=text)
    return numeric_result(summary, counted, thresholds)


def numeric_result(summary: dict[str, Any], counted: sketch.NumericSketch, thresholds: Thresholds) -> dict[str, Any]:
    """``numeric_column``'s answer from the current values' counts (``core.monitoring.sketch``: every row,
    added a batch at a time; issue 29)."""
    n_ref = int(summary.get("count", 0)) - int(summary.get("nulls", 0))
    base = {"kind": "numeric", "reference_rows": n_ref, "current_rows": int(counted.n),
            "current_nulls": int(counted.missing), "invalid": int(counted.infinite)}
    if counted.m == 0 or counted.n == 0:
        return base | _no_values(summary, counted.n, "numeric")
    ks, w = counted.ks_wasserstein()
    p_value = ks_pvalue(ks, n_ref, counted.n)
    distance = w / max(float(summary.get("std") or 0.0), STD_FLOOR)
    edges = np.asarray(summary["edges"], float)
    ref_counts = np.asarray(summary["counts"], float)
    cur_counts = counted.hist
    small = min(n_ref, counted.n) <= thresholds.large_sample_rows
    if small:
        method, statistic, threshold, drifted = "ks", ks, thresholds.p_value, p_value < thresholds.p_value
    else:
        method, statistic, threshold = "wasserstein", distance, thresholds.wasserstein
        drifted = distance >= thresholds.wasserstein
    return base | {
        "method": method, "statistic": float(statistic), "p_value": p_value, "distance": float(distance),
        "ks": float(ks), "psi": psi(ref_counts, cur_counts), "threshold": threshold, "drifted": bool(drifted),
        "reference_mean": summary.get("mean"), "current_mean": float(counted.mean),
        "reference_std": summary.get("std"), "current_std": counted.std,
        "edges": [float(e) for e in edges], "bins": bin_labels(edges),
        "reference_hist": [int(c) for c in ref_counts], "current_hist": [int(c) for c in cur_counts],
    }


def categorical_column(summary: dict[str, Any], values: pd.Series, thresholds: Thresholds) -> dict[str, Any]:
    """Chi-squared, Jensen-Shannon and PSI of one categorical column over the union of categories.

    A category the reference never saw is listed in ``new_categories`` (the 50 most frequent): when
    the reference folded rare categories into ``__other__`` it is counted there, otherwise it is a
    category of its own with no reference count, which chi-squared, JS and PSI all weigh as a shift
    (beyond the 20 most frequent, new categories share one ``__other_new__`` bin).
    """
    raw_counts = values.value_counts(dropna=True)
    raw_counts = raw_counts[raw_counts > 0]  # a pandas Categorical lists its unused categories too
    counts = raw_counts.groupby(raw_counts.index.astype(str)).sum()  # str() after counting: fast on 1M rows
    return categorical_result(summary, counts, rows=len(values), thresholds=thresholds)


def categorical_result(summary: dict[str, Any], counts: pd.Series, *, rows: int,
                       thresholds: Thresholds) -> dict[str, Any]:
    """``categorical_column``'s answer from the current counts (category as text → rows; ``rows`` with the
    missing ones), which a large batch adds up a slice at a time (issue 29)."""
    counts = counts[counts > 0]
    present_rows = int(counts.sum())
    reference: dict[str, int] = {str(k): int(v) for k, v in (summary.get("frequencies") or {}).items()}
    new = counts[~counts.index.isin(list(reference))].sort_values(ascending=False, kind="stable")
    base: dict[str, Any] = {"kind": "categorical", "reference_rows": int(sum(reference.values())),
                            "current_rows": present_rows, "current_nulls": int(rows - present_rows),
                            "new_categories": [str(c) for c in new.index[:50]], "new_category_rows": int(new.sum())}
    if not reference or counts.empty:
        return base | _no_values(summary, present_rows, "categorical")
    categories = list(reference)
    folded = 0  # new categories counted in a shared bucket
    if OTHER in reference:
        folded = int(new.sum())
    else:  # the most frequent new categories get bins of their own; the rest share one
        categories += [str(c) for c in new.index[:NEW_KEPT]]
        if len(new) > NEW_KEPT:
            categories.append(NEW_REST)
            folded = int(new.iloc[NEW_KEPT:].sum())
    cur_counts = np.array([int(counts.get(c, 0)) for c in categories], float)
    if folded:
        cur_counts[categories.index(OTHER if OTHER in reference else NEW_REST)] += folded
    ref_counts = np.array([reference.get(c, 0) for c in categories], float)
    chi, p_value = chisquare(ref_counts, cur_counts)
    distance = jensenshannon(ref_counts, cur_counts)
    small = min(base["reference_rows"], base["current_rows"]) <= thresholds.large_sample_rows
    if small:
        method, statistic, threshold, drifted = "chisquare", chi, thresholds.p_value, p_value < thresholds.p_value
    else:
        method, statistic, threshold = "jensenshannon", distance, thresholds.jensenshannon
        drifted = distance >= thresholds.jensenshannon
    return base | {
        "method": method, "statistic": float(statistic), "p_value": p_value, "distance": distance,
        "chisquare": chi, "psi": psi(ref_counts, cur_counts), "threshold": threshold, "drifted": bool(drifted),
        "categories": categories, "reference_hist": [int(c) for c in ref_counts],
        "current_hist": [int(c) for c in cur_counts],
    }


def bin_labels(edges: np.ndarray) -> list[str]:
    """Readable names of the reference bins; the outer two are open-ended."""
    inner = [f"{e:.4g}" for e in edges[1:-1]]
    if not inner:
        return [f"{edges[0]:.4g}"]
    return [f"< {inner[0]}", *(f"{a} – {b}" for a, b in zip(inner[:-1], inner[1:], strict=True)), f"≥ {inner[-1]}"]


def _no_values(summary: dict[str, Any], current_rows: int, kind: str) -> dict[str, Any]:
    """A column with nothing to compare: all-missing now (drift evidence) or all-missing in training."""
    if current_rows == 0:
        note = "no values in the current data (all missing)"
    else:
        note = "the reference has no values for this column"
    return {"method": "none", "statistic": None, "p_value": None, "distance": None, "psi": None, "threshold": None,
            "drifted": current_rows == 0 and int(summary.get("count", 0)) > int(summary.get("nulls", 0)),
            "note": note}


def column(summary: dict[str, Any], values: pd.Series, thresholds: Thresholds) -> dict[str, Any]:
    if summary.get("type") == "numeric":
        return numeric_column(summary, values, thresholds)
    return categorical_column(summary, values, thresholds)


# -- a whole comparison ----------------------------------------------------------------------------

def missing_columns(reference: dict[str, Any], current: pd.DataFrame) -> list[str]:
    return [c for c in reference["columns"] if c not in current.columns]


def compare(reference: dict[str, Any], current: pd.DataFrame, *, thresholds: Thresholds,
            predictions: pd.Series | np.ndarray | None = None, label: str = "the current data",
            progress: Progress | None = None, probabilities: dict[str, np.ndarray] | None = None,
            importance: dict[str, float] | None = None) -> Comparison:
    """Every feature column of ``reference`` against ``current``, plus the model's outputs if given.

    The model's outputs are its predicted probabilities per class (``probabilities``, against the
    holdout's in ``reference["probabilities"]``) when given, else its predictions (labels or values).
    ``importance`` (column → share of the model's permutation importance; default the reference's
    own) is written into each column and weighs the verdict.

    Raises:
        InvalidInput: ``current`` lacks columns the model was trained on (all of them are named),
            or has no rows.
    """
    if missing := missing_columns(reference, current):
        raise InvalidInput(f"{label} is missing column(s) {', '.join(missing)} that the model was trained on; "
                           f"it has: {', '.join(map(str, current.columns)) or 'no columns'}")
    if len(current) == 0:
        raise InvalidInput(f"{label} has no rows")
    names = list(reference["columns"])
    results: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        if progress:
            progress(i / len(names), f"column {name} ({i + 1} of {len(names)})")
        results[name] = column(reference["columns"][name], current[name], thresholds)
    inputs = columns_compared(reference, results, rows=len(current), thresholds=thresholds, importance=importance)
    if progress and (probabilities is not None or predictions is not None):
        progress(1.0, "model outputs")
    return with_outputs(inputs, reference, predictions=predictions, probabilities=probabilities)


def columns_compared(reference: dict[str, Any], results: dict[str, dict[str, Any]], *, rows: int,
                     thresholds: Thresholds, importance: dict[str, float] | None = None) -> Comparison:
    """The columns' results (``column`` each, or ``numeric_result``/``categorical_result`` from counts a
    large batch added up a slice at a time) as a ``Comparison`` without outputs or verdict yet."""
    significance.settle(results, thresholds)  # effect floors and the correction across columns
    weights = importance if importance is not None else reference.get("importance")
    if weights:
        ranks = {name: i + 1 for i, name in enumerate(sorted(weights, key=lambda n: -weights[n]))}
        for name, col in results.items():
            col["importance"] = float(weights.get(name, 0.0))
            col["importance_rank"] = ranks.get(name)
    drifted = sum(col["drifted"] for col in results.values())
    share = drifted / len(results) if results else 0.0
    return Comparison(columns=results, predictions=None, drift_share=share, drift_detected=False,
                      current_rows=int(rows), reference_rows=int(reference.get("rows", 0)), thresholds=thresholds)


def with_outputs(inputs: Comparison, reference: dict[str, Any], *, predictions: pd.Series | np.ndarray | None = None,
                 probabilities: dict[str, np.ndarray] | None = None) -> Comparison:
    """``inputs`` (the columns compared) completed with the model's outputs and the verdict.

    Split from ``compare`` so the columns can be compared while the model is still loading.
    """
    from dataclasses import replace

    thresholds = inputs.thresholds
    pred = None
    if probabilities is not None and reference.get("probabilities"):
        pred = probability_drift(reference["probabilities"], probabilities, thresholds)
    elif predictions is not None and reference.get("predictions"):
        pred = column(reference["predictions"], pd.Series(np.asarray(predictions).ravel()), thresholds)
        pred["output"] = "predicted value" if pred["kind"] == "numeric" else "predicted label"
    if pred is not None:
        significance.floor_one(pred, thresholds)  # one test: its effect floor, nothing to correct
    weights = {name: col["importance"] for name, col in inputs.columns.items() if "importance" in col}
    said = verdict(inputs.columns, pred, share=inputs.drift_share, thresholds=thresholds, importance=weights or None)
    return replace(inputs, predictions=pred, drift_detected=said["drifted"], verdict=said)


def probability_drift(reference: dict[str, dict[str, Any]], probabilities: dict[str, np.ndarray],
                      thresholds: Thresholds) -> dict[str, Any]:
    """Drift of the predicted probability of each class (binary: the positive class's only).

    The result is the most drifted class's comparison, with every class's in ``classes``.
    """
    per_class = {cls: numeric_column(summary, pd.Series(np.asarray(probabilities[cls], float)), thresholds)
                 for cls, summary in reference.items() if cls in probabilities}
    if not per_class:
        return {"kind": "numeric", "method": "none", "statistic": None, "p_value": None, "psi": None,
                "drifted": False, "note": "no predicted probabilities to compare", "output": "probabilities"}
    worst = max(per_class, key=lambda c: (per_class[c]["drifted"], _severity(per_class[c])))
    summary = {c: {k: r.get(k) for k in ("method", "statistic", "p_value", "psi", "drifted")}
               for c, r in per_class.items()}
    return per_class[worst] | {"output": f"predicted probability of {worst!r}", "classes": summary}


def _severity(col: dict[str, Any]) -> float:
    """How far into drift a column is, relative to its threshold (1.0 = at the threshold)."""
    threshold, statistic, p_value = col.get("threshold"), col.get("statistic"), col.get("p_value")
    if col.get("method") in ("ks", "chisquare") and p_value is not None and threshold:
        return float(threshold) / max(float(p_value), 1e-300)
    if statistic is not None and threshold:
        return float(statistic) / float(threshold)
    return 0.0


RULES = ("prediction_drift", "important_feature", "importance_share", "drift_share")


def verdict(columns: dict[str, dict[str, Any]], predictions: dict[str, Any] | None, *, share: float,
            thresholds: Thresholds, importance: dict[str, float] | None) -> dict[str, Any]:
    """The dataset verdict: drifted when any rule fires, each named with its reason.

    Rules (a model's ``drift`` policy): ``prediction_drift`` the model's outputs drifted;
    ``important_feature`` a drifted column is among the ``top_k`` most important (with some
    importance); ``importance_share`` the drifted columns carry at least ``importance_share`` of the
    importance; ``drift_share`` at least ``share`` of the columns drifted. ``not_counted`` says, for
    drifted columns that did not make the data count as drifted, why not; ``ranked`` lists the
    drifted columns by importance, largest first.
    """
    drifted = [n for n, c in columns.items() if c.get("drifted")]
    weights = importance or {}
    ranked = sorted(drifted, key=lambda n: (-weights.get(n, 0.0), n))
    order = sorted(weights, key=lambda n: -weights[n])
    top = [n for n in order[:thresholds.top_k] if weights[n] > 0]
    reasons: list[dict[str, Any]] = []
    if predictions and predictions.get("drifted"):
        text = (f"the model's outputs drifted ({predictions.get('output', 'predictions')}: "
                f"{predictions.get('method')} {_num(predictions.get('statistic'))})")
        if thresholds.prediction_drift:
            reasons.append({"rule": "prediction_drift", "text": text})
    important = [n for n in ranked if n in top]
    if important:
        reasons.append({"rule": "important_feature", "columns": important, "text": "; ".join(
            f"{n} drifted and is the model's #{order.index(n) + 1} most important feature "
            f"({weights[n]:.0%} of its importance; top-{thresholds.top_k} rule)" for n in important)})
    carried = sum(weights.get(n, 0.0) for n in drifted)
    if weights and drifted and carried >= thresholds.importance_share:
        reasons.append({"rule": "importance_share", "columns": ranked, "share": carried,
                        "text": f"the drifted columns carry {carried:.0%} of the model's importance "
                                f"(≥ {thresholds.importance_share:.0%})"})
    if columns and share >= thresholds.share:
        reasons.append({"rule": "drift_share", "share": share,
                        "text": f"{len(drifted)} of {len(columns)} columns drifted ({share:.0%} ≥ "
                                f"{thresholds.share:.0%})"})
    not_counted: list[str] = []
    if not reasons and drifted:
        for n in ranked:
            if n in weights:
                not_counted.append(f"{n} drifted but carries {weights[n]:.0%} of the model's importance "
                                   f"(#{order.index(n) + 1} of {len(order)}; not in the top {thresholds.top_k})")
            else:
                not_counted.append(f"{n} drifted; no importance was stored for this version, so only the "
                                   "share rule weighs it")
        if weights:
            not_counted.append(f"together the drifted columns carry {carried:.0%} of the importance "
                               f"(< {thresholds.importance_share:.0%})")
        not_counted.append(f"{len(drifted)} of {len(columns)} columns drifted ({share:.0%} < {thresholds.share:.0%})")
    if not reasons and predictions is not None:
        if predictions.get("drifted"):
            not_counted.append("the model's outputs drifted but drift.prediction_drift is off")
        else:
            not_counted.append(f"the model's outputs did not drift ({predictions.get('output', 'predictions')})")
    return {"drifted": bool(reasons), "reasons": reasons, "not_counted": not_counted, "ranked": ranked}


def _num(value: Any) -> str:
    return "—" if value is None else f"{float(value):.3g}"
