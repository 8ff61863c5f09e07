"""A numeric column against its reference quantiles, one batch at a time, in bounded memory (issue 29).

The reference keeps a sorted sample of m quantiles of each numeric column; the drift statistics
treat it as a step CDF ``F_ref`` (each point weighing 1/m). Between two consecutive distinct
reference points ``F_ref`` is constant, so everything the statistics need from the current values is,
per such interval: how many fall in it, how many sit exactly on its left point, and their sum. A
batch adds to those counts (the batch sorted, the m points looked up in it); memory is O(m + batch)
whatever the number of rows, and no whole column is ever held or sorted.

- KS (exact, ties included): on each interval ``F_cur`` rises monotonically from its value at the
  left point to its value just before the right one, so the largest gap is at one of the two ends.
- Wasserstein ``∫|F_cur - F_ref| dx``: exact on every interval ``F_cur`` does not cross ``F_ref`` in
  (``∫F_cur`` over an interval is ``k·b - Σv`` from its count and sum), and on the two open ends.
  On the few intervals where the two cross, the current values are taken as spread evenly
  between their first and last point; the error is at most ``Σ (count_k / n) · width_k`` over
  those intervals, in practice about 1e-4 of a standard deviation next to a threshold of 0.1.
- The 20 PSI/histogram bins, the mean, the standard deviation, missing and infinite values.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class NumericSketch:
    """Counts of one numeric column's current values against its reference summary (``quantiles``, ``edges``)."""

    def __init__(self, summary: dict[str, Any]) -> None:
        quantiles = np.asarray(summary.get("quantiles") or [], float)
        self.m = quantiles.size
        # distinct reference points and F_ref at each (ties in the quantiles: discrete columns)
        self.points, ends = _distinct(quantiles)
        self.f_ref = ends / max(self.m, 1)
        d = self.points.size
        self.count = np.zeros(d + 1, np.int64)  # interval k: points[k-1] <= v < points[k] (k = 0: below all)
        self.on_left = np.zeros(d + 1, np.int64)  # of those, v == points[k-1]
        self.total = np.zeros(d + 1, float)
        edges = np.asarray(summary.get("edges") or [], float)
        self.inner_edges = edges[1:-1]
        self.hist = np.zeros(max(edges.size - 1, 1), np.int64)
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations (Chan et al.'s parallel update)
        self.rows = 0  # values seen, missing included
        self.missing = 0
        self.infinite = 0  # ±inf: present but not a number LeanOps can compare ("invalid")

    def add(self, values: np.ndarray, *, invalid: int = 0) -> None:
        """Add a batch (floats; NaN for missing). ``invalid``: values of the batch that were present but
        not numbers (text in a numeric column), already NaN in ``values``."""
        values = np.asarray(values, float)
        finite = np.isfinite(values)
        self.rows += values.size
        self.infinite += int(np.isinf(values).sum()) + invalid
        cur = values if finite.all() else values[finite]
        self.missing += values.size - cur.size
        if cur.size == 0:
            return
        ordered = np.sort(cur)  # a batch at a time: the CDF at each reference point by binary search of it
        if self.points.size:
            lt = np.searchsorted(ordered, self.points, side="left")  # values < each point
            le = np.searchsorted(ordered, self.points, side="right")  # values <= each point
            bounds = np.concatenate(([0], lt, [ordered.size]))
            sums = np.concatenate(([0.0], np.cumsum(ordered)))
            self.count += np.diff(bounds)
            self.total += np.diff(sums[bounds])
            self.on_left[1:] += le - lt
        if self.hist.size > 1:
            below = np.searchsorted(ordered, self.inner_edges, side="left")
            self.hist += np.diff(np.concatenate(([0], below, [ordered.size])))
        else:
            self.hist[0] += cur.size
        k, mean = cur.size, float(cur.mean())
        m2 = float(((cur - mean) ** 2).sum())
        delta, n = mean - self.mean, self.n + k
        self.mean += delta * k / n
        self.m2 += m2 + delta * delta * self.n * k / n
        self.n = n

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.n)) if self.n else 0.0

    def ks_wasserstein(self) -> tuple[float, float]:
        """KS statistic and Wasserstein distance between the current values and the reference points."""
        n, u, r = self.n, self.points, self.f_ref
        below = np.concatenate(([0], np.cumsum(self.count)[:-1])) / n  # F_cur just before each interval
        at_left = below + self.on_left / n  # F_cur at the interval's left point
        before_next = below + self.count / n  # F_cur just before the next point
        level = np.concatenate(([0.0], r))  # F_ref on each interval
        ks = float(max(np.abs(at_left[1:] - level[1:]).max(initial=0.0), np.abs(before_next - level).max()))
        # the open ends: below the first point F_ref = 0, from the last one on F_ref = 1
        area = (self.count[0] * u[0] - self.total[0]) / n + (self.total[-1] - self.count[-1] * u[-1]) / n
        if u.size > 1:
            lo, hi = u[:-1], u[1:]
            width = hi - lo
            c, s, ref = self.count[1:-1], self.total[1:-1], level[1:-1]
            start, end = at_left[1:-1], before_next[1:-1]
            integral = below[1:-1] * width + (c * hi - s) / n  # ∫ F_cur over [lo, hi)
            above, under = start >= ref, end <= ref
            exact = np.where(above, integral - ref * width, ref * width - integral)
            # crossing: F_cur rises from start to end, taken as linear; it meets ref at fraction t
            rise = np.where(end > start, end - start, 1.0)
            t = np.clip((ref - start) / rise, 0.0, 1.0)
            crossing = width * ((ref - start) * t + (end - ref) * (1 - t)) / 2
            area += float(np.where(above | under, exact, crossing).sum())
        return ks, float(area)


def _distinct(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of a sorted array and how many values are <= each."""
    if ordered.size == 0:
        return ordered, np.zeros(0, np.int64)
    last = np.flatnonzero(np.append(ordered[1:] != ordered[:-1], True))
    return ordered[last], last + 1
