"""When a tested column counts as drifted: an effect-size floor per test and a correction across columns.

The drift engine (core/monitoring/drift.py) decides each column on its own: a test (KS, chi-squared) on
small samples, a distance (normalised Wasserstein, Jensen-Shannon) on large ones. Two things make a
test alone cry wolf:

- **Many columns at once.** With 20 columns each tested at p < 0.05, unchanged data flags at least one
  column in about 64 % of checks. The p-values of the tested columns are corrected together with
  Benjamini-Hochberg (``benjamini_hochberg``): a column counts when its *adjusted* p-value is below
  ``p_value``. On unchanged data the chance that any column is flagged is then at most ``p_value``
  per check, whatever the number of columns.
- **Differences too small to matter.** A test on enough rows finds any difference. A column flagged by
  its test also needs an effect at least its test's floor (``FLOORS``): normalised Wasserstein (the
  shift in reference standard deviations) for KS, the Jensen-Shannon distance for chi-squared.
  Columns decided by a distance need no floor: the distance's threshold is one.

Defaults (the ``drift`` policy, ``floor_wasserstein``, ``floor_jensenshannon``, ``correction``):
a floor of 0.05 standard deviations of shift for numbers and 0.05 Jensen-Shannon for categories, and
Benjamini-Hochberg on. ``settle`` rewrites each column's ``drifted`` and explains, in ``note``, a column
its test flagged that does not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

CORRECTIONS = ("benjamini-hochberg", "none")
FLOORS = {  # test → (the effect it is floored on, the Thresholds field holding the floor, its name in words)
    "ks": ("distance", "floor_wasserstein", "normalised Wasserstein"),
    "chisquare": ("distance", "floor_jensenshannon", "Jensen-Shannon distance"),
}
DAYS_PER_MONTH = 30.44


class Settings(Protocol):  # the fields read here (core.monitoring.drift.Thresholds, the policy's Drift)
    @property
    def p_value(self) -> float: ...
    @property
    def floor_wasserstein(self) -> float: ...
    @property
    def floor_jensenshannon(self) -> float: ...
    @property
    def correction(self) -> str: ...


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (the step-up "q-values"), in the input's order.

    ``q_(i) = min_{j >= i} (m p_(j) / j)`` over the sorted p-values, capped at 1: a column is
    significant at level ``a`` after the correction exactly when ``q < a``. Equals statsmodels'
    ``multipletests(p, method="fdr_bh")[1]``.
    """
    p = np.asarray(p_values, float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(adjusted, 0.0, 1.0)
    return out


def settle(columns: dict[str, dict[str, Any]], thresholds: Settings) -> dict[str, dict[str, Any]]:
    """Decide the tested columns of one comparison together (in place; returns ``columns``).

    Each column decided by a test gets ``p_adjusted`` (its Benjamini-Hochberg p-value, or the raw one
    when the correction is off), ``effect`` and ``effect_floor``; ``drifted`` becomes "adjusted p below
    ``p_value`` and effect at least the floor". A column its test flagged on its own but that does not
    count any more says why in ``note``. Columns decided by a distance are left as they are.
    """
    tested = [name for name, col in columns.items()
              if col.get("method") in FLOORS and col.get("p_value") is not None]
    if not tested:
        return columns
    raw = np.array([float(columns[name]["p_value"]) for name in tested])
    correct = thresholds.correction == "benjamini-hochberg" and len(tested) > 1
    adjusted = benjamini_hochberg(raw) if correct else raw
    for name, p_adj in zip(tested, adjusted, strict=True):
        floor_one(columns[name], thresholds, p_adjusted=float(p_adj), family=len(tested) if correct else 1)
    return columns


def floor_one(col: dict[str, Any], thresholds: Settings, *, p_adjusted: float | None = None,
              family: int = 1) -> dict[str, Any]:
    """One tested column (or the model's outputs) decided by its p-value and its effect floor (in place).

    ``p_adjusted`` defaults to the column's own p-value (a single test, nothing to correct).
    """
    if col.get("method") not in FLOORS or col.get("p_value") is None:
        return col
    measure, field, words = FLOORS[col["method"]]
    p = float(col["p_value"]) if p_adjusted is None else p_adjusted
    effect = float(col.get(measure) or 0.0)
    floor = float(getattr(thresholds, field))
    significant = p < thresholds.p_value
    col.update(p_adjusted=p, effect=effect, effect_floor=floor, drifted=bool(significant and effect >= floor))
    if float(col["p_value"]) < thresholds.p_value and not significant:
        col["note"] = (f"p = {float(col['p_value']):.3g} alone, {p:.3g} after correcting for {family} columns "
                       f"tested at once (Benjamini-Hochberg): not counted")
    elif significant and effect < floor:
        col["note"] = (f"significant (p = {p:.3g}) but the shift is too small to matter: {words} {effect:.3g} "
                       f"< floor {floor:g}")
    return col


def false_alarms_per_month(thresholds: Settings, *, checks_per_month: float, rows: int, large_sample_rows: int,
                           columns: int, outputs_decide: bool) -> float:
    """An upper bound on drift verdicts per month when the data does not change at all.

    Small windows (at most ``large_sample_rows`` rows) are decided by tests: after the correction any
    column is flagged with probability at most ``p_value`` per check, and the model's outputs (when
    they decide) add at most ``p_value`` more; the effect floors only lower this. Large windows are
    decided by distances whose thresholds sit far above the sampling noise of unchanged data, so the
    bound is 0 there (up to rounding). Without the correction, ``columns`` independent tests flag at
    least one column with probability ``1 - (1 - p_value) ** columns``.
    """
    if rows > large_sample_rows:
        return 0.0
    alpha = thresholds.p_value
    per_check = alpha if thresholds.correction == "benjamini-hochberg" else 1 - (1 - alpha) ** max(columns, 1)
    if outputs_decide:
        per_check += alpha
    return min(per_check, 1.0) * checks_per_month
