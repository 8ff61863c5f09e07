"""Pure retrain and rollback decisions: plain values and a model's policy in, a ``Decision`` with its reason out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core import policy
from core.monitoring import performance

TRIGGERS = ("drift", "schedule", "growth", "upload", "manual")


@dataclass(frozen=True)
class Decision:
    act: bool
    reason: str


@dataclass(frozen=True)
class Estimate:
    """A drift check's label-free estimate (``estimated_performance``) of one version's performance."""

    check_id: int
    version: int
    values: dict[str, dict[str, float]]  # metric → {value, lower, upper, reference}


# -- decisions -----------------------------------------------------------------------------------

def should_retrain_on_drift(check: Any, rules: policy.ModelPolicy) -> Decision:
    """A stored drift check (``drift_detected``, ``drift_share``, ``threshold``, ``columns``, and the
    verdict in ``predictions``): the check's own verdict decides, so the reason names the rules that
    fired (an important column, the model's outputs, the share), never a recount of columns."""
    drifted = sorted(c for c, v in (check.columns or {}).items() if isinstance(v, dict) and v.get("drifted"))
    share = f"drift share {check.drift_share:.2f} (threshold {check.threshold:.2f})"
    stored = getattr(check, "predictions", None)  # the verdict is stored there (checks stored before have none)
    said = stored.get("verdict") if isinstance(stored, dict) else None
    because = "; ".join(r.get("text", "") for r in (said or {}).get("reasons", [])) or share
    if not check.drift_detected:
        return Decision(False, f"no dataset drift: {share}")
    if not rules.retrain.on_drift:
        return Decision(False, f"drift detected ({because}) but retrain.on_drift is off")
    ranked = (said or {}).get("ranked") or drifted
    return Decision(True, f"drift detected on v{check.version}: {because}; drifted columns: "
                          f"{', '.join(ranked) or 'none listed'}")


def should_act_on_estimate(estimate: dict[str, dict[str, float]], task: str, rules: policy.ModelPolicy) -> Decision:
    """With ``performance.use_estimate``: the label-free estimate of a floor metric is below the floor
    (``performance.estimate_below_floor``)."""
    if not rules.performance.use_estimate:
        return Decision(False, "performance.use_estimate is off")
    reason = performance.estimate_below_floor(estimate, task, rules)
    if reason is None:
        return Decision(False, "the estimate is within the floor (or estimates no floor metric)")
    return Decision(True, reason)


def should_retrain_on_growth(new_rows: int, trained_rows: int, rules: policy.ModelPolicy) -> Decision:
    """A dataset version with at least ``retrain.on_data_growth`` (10 %) more rows than the champion saw."""
    step = rules.retrain.on_data_growth
    if step is None:
        return Decision(False, "retrain.on_data_growth is off")
    if trained_rows <= 0:
        return Decision(new_rows > 0, f"{new_rows} rows; the champion was trained on none")
    growth = (new_rows - trained_rows) / trained_rows
    verdict = growth >= step
    return Decision(verdict, f"{new_rows} rows vs {trained_rows} the champion was trained on "
                             f"({growth:+.1%}; retrain at {step:+.0%} or more)")


def should_retrain_on_upload(via_api: bool, rules: policy.ModelPolicy) -> Decision:
    if not via_api:
        return Decision(False, "not uploaded through the API")
    if not rules.retrain.on_upload:
        return Decision(False, "uploaded through the API but retrain.on_upload is off")
    return Decision(True, "new dataset version uploaded through the API")


def should_roll_back(*, promoted_at: datetime | None, action: str | None, now: datetime,
                     current: performance.Verdict, previous: performance.Verdict | None,
                     rules: policy.ModelPolicy, estimate: Estimate | None = None) -> Decision:
    """Roll back a champion promoted within ``rollback.window_hours`` whose live performance (with
    enough labels) is below the floor, or below its predecessor's by more than
    ``improvement.min_relative`` on the primary metric.

    Labels arrive late, so with ``performance.use_estimate`` a champion that has too few labels yet is
    judged on ``estimate`` instead (the newest drift check's estimate since its promotion): its whole
    band below the floor rolls back as a realised drop would. Once enough labels are in, they decide and
    the estimate is not consulted: it is a stand-in for labels, not a second opinion against them."""
    if not rules.rollback.auto:
        return Decision(False, "rollback.auto is off")
    if promoted_at is None or action not in ("promote", "force_promote"):
        return Decision(False, "the champion was not promoted (it arrived by rollback or outside LeanOps)")
    age = now - promoted_at
    if age > timedelta(hours=rules.rollback.window_hours):
        return Decision(False, f"promoted {age.total_seconds() / 3600:.1f} h ago, outside the "
                               f"{rules.rollback.window_hours:g} h rollback window")
    if current.status == "insufficient":
        return _roll_back_on_estimate(current, estimate, rules)
    if current.status == "below_floor":
        failed = "; ".join(f"{c.name} {c.observed} (floor {c.required})" for c in current.checks if not c.passed)
        return Decision(True, f"v{current.version} live performance below the floor: {failed}")
    if previous is None or previous.status == "insufficient" or previous.primary is None:
        return Decision(False, f"v{current.version} is above the floor; its predecessor has too few labels "
                               "to compare with")
    metric = policy.PRIMARY[current.task]
    assert current.primary is not None  # status "ok": at least min_labels labels were scored
    tolerance = rules.improvement.min_relative
    worse = current.primary < previous.primary - abs(previous.primary) * tolerance
    detail = (f"live {metric} {current.primary:.4f} on v{current.version} vs {previous.primary:.4f} on "
              f"predecessor v{previous.version}")
    if worse:
        return Decision(True, f"{detail}: worse by more than {tolerance:.0%}")
    return Decision(False, f"{detail}: within {tolerance:.0%}")


def _roll_back_on_estimate(current: performance.Verdict, estimate: Estimate | None,
                           rules: policy.ModelPolicy) -> Decision:
    """Too few labels on ``current``: the estimate decides when the policy allows it, else nothing does yet."""
    waiting = f"{current.labels} labels on v{current.version}; {current.min_labels} needed"
    if not rules.performance.use_estimate:
        return Decision(False, waiting)
    if estimate is None or estimate.version != current.version:
        return Decision(False, f"{waiting}, and no drift check has estimated v{current.version} since its promotion")
    below = should_act_on_estimate(estimate.values, current.task, rules)
    if not below.act:
        return Decision(False, f"{waiting}; drift check #{estimate.check_id}: {below.reason}")
    return Decision(True, f"v{current.version} {below.reason} (drift check #{estimate.check_id}; "
                          f"{current.labels} labels so far, {current.min_labels} needed to measure it)")
