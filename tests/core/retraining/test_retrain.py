"""Retrain triggers and the rollback rule (decision tables), and the actions on a real DB and MLflow registry."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from core import policy
from core.errors import InvalidInput, PermissionDenied
from core.monitoring.performance import Verdict
from core.platform import schedules
from core.platform.database import transaction
from core.promotion import moves
from core.retraining import auto_rollback, decisions, model_schedules, triggers
from db.models import Alert, AuditEvent, DriftCheck, Job, Schedule, utcnow
from jobs.runner import run_next
from tests.support import aliases, versions
from tests.support.performance import log_predictions
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn
from tests.support.worker import drain

APPROVER = moves.Actor("ann", "approver")
NOW = utcnow()


def rules(**sections):
    base = policy.ModelPolicy().model_dump()
    for key, value in sections.items():
        base[key] = base[key] | value if isinstance(value, dict) else value
    return policy.ModelPolicy.model_validate(base)


def check(detected, share=0.6, columns=None):
    return SimpleNamespace(drift_detected=detected, drift_share=share, threshold=0.5, version=3,
                           columns=columns or {"age": {"drifted": True}, "plan": {"drifted": False}})


@pytest.mark.parametrize(("detected", "on_drift", "act", "says"), [
    (True, True, True, "drift detected on v3: drift share 0.60 (threshold 0.50); drifted columns: age"),
    (True, False, False, "retrain.on_drift is off"),
    (False, True, False, "no dataset drift"),
    (False, False, False, "no dataset drift"),
])
def test_retrain_on_drift(detected, on_drift, act, says):
    decision = decisions.should_retrain_on_drift(check(detected), rules(retrain={"on_drift": on_drift}))
    assert decision.act is act and says in decision.reason


@pytest.mark.parametrize(("new", "trained", "step", "act", "says"), [
    (110, 100, 0.10, True, "+10.0%"),
    (109, 100, 0.10, False, "+9.0%"),
    (1000, 100, None, False, "on_data_growth is off"),
    (90, 100, 0.10, False, "-10.0%"),
    (100, 100, 0.0, True, "+0.0%"),
    (50, 0, 0.10, True, "trained on none"),
])
def test_retrain_on_growth(new, trained, step, act, says):
    decision = decisions.should_retrain_on_growth(new, trained, rules(retrain={"on_data_growth": step}))
    assert decision.act is act and says in decision.reason


@pytest.mark.parametrize(("via_api", "on_upload", "act"), [(True, True, True), (True, False, False),
                                                          (False, True, False), (False, False, False)])
def test_retrain_on_upload(via_api, on_upload, act):
    assert decisions.should_retrain_on_upload(via_api, rules(retrain={"on_upload": on_upload})).act is act


def verdict(version, f1, labels=100, status=None):
    status = status or ("insufficient" if labels < 50 else "ok" if f1 >= 0.8 else "below_floor")
    return Verdict("m", version, "classification", labels, 50, {"accuracy": f1, "f1": f1}, {}, (
        policy.Check("live f1", f1, ">= 0.8", f1 >= 0.8),), status)


@pytest.mark.parametrize(("hours_ago", "action", "auto", "current", "previous", "act", "says"), [
    (1, "promote", True, verdict(2, 0.5), verdict(1, 0.9), True, "below the floor: live f1 0.5"),
    (1, "force_promote", True, verdict(2, 0.5), None, True, "below the floor"),
    (1, "promote", True, verdict(2, 0.85), verdict(1, 0.95), True, "worse by more than 2%"),
    (1, "promote", True, verdict(2, 0.94), verdict(1, 0.95), False, "within 2%"),
    (1, "promote", True, verdict(2, 0.85), verdict(1, 0.95, labels=10), False, "predecessor has too few"),
    (1, "promote", True, verdict(2, 0.85), None, False, "predecessor has too few"),
    (1, "promote", True, verdict(2, 0.1, labels=10), verdict(1, 0.9), False, "10 labels on v2; 50 needed"),
    (80, "promote", True, verdict(2, 0.5), verdict(1, 0.9), False, "outside the 72 h rollback window"),
    (1, "rollback", True, verdict(2, 0.5), verdict(1, 0.9), False, "arrived by rollback"),
    (1, "promote", False, verdict(2, 0.5), verdict(1, 0.9), False, "rollback.auto is off"),
])
def test_roll_back(hours_ago, action, auto, current, previous, act, says):
    decision = decisions.should_roll_back(promoted_at=NOW - timedelta(hours=hours_ago), action=action, now=NOW,
                                        current=current, previous=previous, rules=rules(rollback={"auto": auto}))
    assert decision.act is act and says in decision.reason


# -- actions -------------------------------------------------------------------------------------

@pytest.fixture
def registry(factory, workspace):
    """Model 'm' with three really trained versions (LeanOps runs on a certified dataset version); gates pass
    for every version, and v2 beats v1 by more than the improvement gate asks. The workspace's settings."""
    add_dataset(factory, workspace, small_churn(2000))
    for spec in (versions.WEAKER, versions.STRONGER, versions.STRONGER | {"seed": 1}):
        versions.trained(factory, workspace, model_name="m", **spec)
    return workspace


def promote(factory, registry, version):
    moves.promote(factory, registry, actor=APPROVER, model="m", version=version, reason="test")
    drain(factory, registry)  # a worker runs the follow-ups the promotion queued (aliases.sync, schedules.sync)


def audit_rows(factory, prefix):
    with factory() as s:
        return [(e.actor, e.action, e.details) for e in s.scalars(
            select(AuditEvent).where(AuditEvent.action.like(prefix)).order_by(AuditEvent.seq))]


def test_request_retrain_queues_once_per_model_as_system(factory, workspace, registry):
    with pytest.raises(InvalidInput, match="m has no champion"):
        triggers.request_retrain(factory, workspace, model="m", reason="r", trigger="manual")
    promote(factory, registry, 1)
    first = triggers.request_retrain(factory, workspace, model="m", reason="drift share 0.7", trigger="drift")
    again = triggers.request_retrain(factory, workspace, model="m", reason="weekly", trigger="schedule")
    assert first.queued and not again.queued and again.job_id == first.job_id
    with pytest.raises(InvalidInput, match="trigger 'bogus' is unknown"):
        triggers.request_retrain(factory, workspace, model="m", reason="r", trigger="bogus")
    with factory() as s:
        jobs = s.scalars(select(Job).where(Job.kind == "retrain")).all()
        assert [(j.created_by, j.params) for j in jobs] == [
            ("system:retrain", {"model": "m", "trigger": "drift", "reason": "drift share 0.7"})]
        jobs[0].status = "succeeded"
        s.commit()
    assert triggers.request_retrain(factory, workspace, model="m", reason="weekly", trigger="schedule").queued
    assert [(a, d["trigger"], d["reason"]) for a, _, d in audit_rows(factory, "retrain.requested")] == [
        ("system:retrain", "drift", "drift share 0.7"), ("system:retrain", "schedule", "weekly")]


def test_on_drift_retrains_the_champion_only(factory, workspace, registry):
    promote(factory, registry, 1)
    with transaction(factory) as s:
        ids = []
        for version, detected in ((1, True), (1, False), (2, True)):
            row = DriftCheck(model="m", version=version, source="window", window="last 24 h", current_rows=500,
                             reference_rows=1000, threshold=0.5, drift_share=0.75 if detected else 0.1,
                             drift_detected=detected, columns={"age": {"drifted": detected}},
                             created_by="system:drift")
            s.add(row)
            s.flush()
            ids.append(row.id)
    quiet = triggers.on_drift(factory, workspace, ids[1])
    stale = triggers.on_drift(factory, workspace, ids[2])
    queued = triggers.on_drift(factory, workspace, ids[0])
    assert not quiet.act and "no dataset drift" in quiet.reason
    assert not stale.act and "the champion is now v1" in stale.reason
    assert queued.queued and f"drift check {ids[0]}: drift detected on v1" in queued.reason


def test_rollback_after_a_bad_promotion_is_audited_and_alerted(factory, workspace, registry):
    promote(factory, registry, 1)
    promote(factory, registry, 2)
    before = utcnow() - timedelta(days=2)
    log_predictions(factory, version=1, outputs=[1] * 60, labels=[1] * 60, start=before)
    log_predictions(factory, version=2, outputs=[1] * 30, labels=[0] * 30)
    waiting = auto_rollback.check_rollback(factory, workspace, "m")
    assert not waiting.decision.act and "30 labels on v2; 50 needed" in waiting.decision.reason
    log_predictions(factory, version=2, outputs=[1] * 30, labels=[0] * 30, start=utcnow() - timedelta(hours=2))
    done = auto_rollback.check_rollback(factory, workspace, "m")
    assert done.decision.act and (done.from_version, done.to_version) == (2, 1)
    assert aliases.get(workspace, model="m", alias="champion") == 1
    rolled = audit_rows(factory, "model.rollback")
    assert [(a, d["from"], d["to"]) for a, _, d in rolled] == [("system:auto-rollback", 2, 1)]
    assert "automatic rollback: v2 live performance below the floor: live f1 0.0" in rolled[0][2]["reason"]
    with factory() as s:
        assert s.scalar(select(Alert.condition).where(Alert.condition == "rollback")) == "rollback"
    again = auto_rollback.check_rollback(factory, workspace, "m")  # v1 arrived by rollback: left alone
    assert not again.decision.act and "arrived by rollback" in again.decision.reason


def test_model_schedules_follow_champions_and_policy(factory, workspace, registry):
    with transaction(factory) as s:
        assert model_schedules.sync_model_schedules(s, workspace) == {"created": [], "changed": [], "removed": []}
    promote(factory, registry, 1)  # the promotion itself gives the new champion its drift schedule
    with factory() as s:
        assert s.get(Schedule, "drift:m") is not None
    text = policy.DEFAULT_POLICY_YAML + '  m:\n    retrain:\n      schedule: "0 3 * * 1"\n'
    (workspace.home / policy.POLICY_FILE).write_text(text)
    with transaction(factory) as s:
        done = model_schedules.sync_model_schedules(s, workspace)
    assert done["created"] == ["retrain:m"]
    with transaction(factory) as s:
        schedules.set_paused(s, actor=moves.Actor("root", "admin"), name="retrain:m", paused=True)
    (workspace.home / policy.POLICY_FILE).write_text(text.replace('"0 3 * * 1"', '"0 4 * * 2"'))
    with transaction(factory) as s:
        assert model_schedules.sync_model_schedules(s, workspace)["changed"] == ["retrain:m"]
        row = s.get(Schedule, "retrain:m")
        assert (row.kind, row.cron, row.paused, row.params["trigger"]) == ("retrain", "0 4 * * 2", True, "schedule")
    (workspace.home / policy.POLICY_FILE).write_text(policy.DEFAULT_POLICY_YAML)
    with transaction(factory) as s:
        assert model_schedules.sync_model_schedules(s, workspace)["removed"] == ["retrain:m"]
    assert [a for a, _, _ in audit_rows(factory, "schedule.%")][-1] == "system:model-schedules"


def test_saving_the_policy_syncs_schedules_at_once(factory, workspace, registry):
    promote(factory, registry, 1)
    text = policy.DEFAULT_POLICY_YAML + '  m:\n    retrain:\n      schedule: "0 3 * * 1"\n'
    with transaction(factory) as s:
        workspace.policies.save(s, actor=moves.Actor("root", "admin"), text=text)
    run_next(factory, workspace, "w1")  # a worker runs the schedules.sync job the save queued with it
    with factory() as s:
        assert s.get(Schedule, "retrain:m").cron == "0 3 * * 1"


# -- rollback.auto: approve ----------------------------------------------------------------------

def _approve_mode(workspace):
    (workspace.home / policy.POLICY_FILE).write_text(
        policy.DEFAULT_POLICY_YAML + "  m:\n    rollback:\n      auto: approve\n")


def _bad_v2(factory, registry):
    """v1 then v2 promoted; v2's live labels say it is far worse (the drop that rolls back when auto is true)."""
    promote(factory, registry, 1)
    promote(factory, registry, 2)
    log_predictions(factory, version=1, outputs=[1] * 60, labels=[1] * 60, start=utcnow() - timedelta(days=2))
    log_predictions(factory, version=2, outputs=[1] * 60, labels=[0] * 60, start=utcnow() - timedelta(hours=2))


def _rollback_requests(factory):
    from db.models import PromotionRequest

    with factory() as s:
        return [(r.id, r.version, r.requested_by, r.status)
                for r in s.scalars(select(PromotionRequest).order_by(PromotionRequest.id))]


def test_roll_back_decision_acts_the_same_when_auto_is_approve():
    decision = decisions.should_roll_back(promoted_at=NOW - timedelta(hours=1), action="promote", now=NOW,
                                          current=verdict(2, 0.5), previous=verdict(1, 0.9),
                                          rules=rules(rollback={"auto": "approve"}))
    assert decision.act and "below the floor" in decision.reason


def test_approve_mode_raises_a_request_and_an_alert_and_leaves_the_champion(factory, workspace, registry):
    from core.promotion import approvals, gates

    _approve_mode(workspace)
    _bad_v2(factory, registry)
    asked = auto_rollback.check_rollback(factory, workspace, "m")
    assert not asked.decision.act and asked.request_id is not None
    assert f"rollback request {asked.request_id} awaits an approver" in asked.decision.reason
    assert aliases.get(workspace, model="m", alias="champion") == 2  # nothing moved
    assert _rollback_requests(factory) == [(asked.request_id, 2, "system:auto-rollback", "pending")]
    assert audit_rows(factory, "model.rollback") == []
    [(actor, _, details)] = audit_rows(factory, "model.rollback_requested")
    assert actor == "system:auto-rollback" and details["version"] == 2
    assert "automatic rollback: v2 live performance below the floor" in details["reason"]
    with factory() as s:
        alerts = s.scalars(select(Alert).where(Alert.condition == "rollback")).all()
        [pending] = approvals.pending_requests(s, model="m")
        assert approvals.kind_of(pending) == "rollback"
        assert gates.open_request(s, "m", 2) is None  # not a promotion request of v2, and no promotion approvals
    assert [(a.title, a.details["request"], a.details["to_version"]) for a in alerts] == [
        ("m: rollback of v2 awaits approval", asked.request_id, 1)]
    again = auto_rollback.check_rollback(factory, workspace, "m")  # the next round does not ask twice
    assert again.request_id is None and "already requested" in again.decision.reason
    assert len(_rollback_requests(factory)) == 1
    with factory() as s:
        assert len(s.scalars(select(Alert).where(Alert.condition == "rollback")).all()) == 1
    with pytest.raises(PermissionDenied, match="may not models.approve"):
        approvals.decide(factory, workspace, actor=moves.Actor("sam", "scientist"), request_id=asked.request_id,
                         approve=True)
    change = approvals.decide(factory, workspace, actor=APPROVER, request_id=asked.request_id, approve=True,
                              comment="labels look right")
    assert change is not None and (change.action, change.from_version, change.to_version) == ("rollback", 2, 1)
    assert aliases.get(workspace, model="m", alias="champion") == 1
    assert _rollback_requests(factory)[0][3] == "rolled_back"
    [(actor, _, details)] = audit_rows(factory, "model.rollback")
    assert actor == "ann" and (details["from"], details["to"]) == (2, 1)
    assert details["reason"].startswith(f"approved rollback request {asked.request_id} (labels look right): "
                                        "automatic rollback: v2")
    assert [d["kind"] for _, _, d in audit_rows(factory, "model.approved")] == ["rollback"]


def test_a_rejected_rollback_request_keeps_the_champion_and_is_not_raised_again(factory, workspace, registry):
    from core.promotion import approvals

    _approve_mode(workspace)
    _bad_v2(factory, registry)
    asked = auto_rollback.check_rollback(factory, workspace, "m")
    assert approvals.decide(factory, workspace, actor=APPROVER, request_id=asked.request_id, approve=False,
                            comment="the labels are late, not wrong") is None
    assert aliases.get(workspace, model="m", alias="champion") == 2
    assert [s for *_, s in _rollback_requests(factory)] == ["rejected"]
    assert not auto_rollback.check_rollback(factory, workspace, "m").request_id
    assert len(_rollback_requests(factory)) == 1
    with pytest.raises(InvalidInput, match="already rejected"):
        approvals.decide(factory, workspace, actor=APPROVER, request_id=asked.request_id, approve=True)


def test_approving_a_rollback_request_after_the_champion_moved_closes_it(factory, workspace, registry):
    from core.promotion import approvals

    _approve_mode(workspace)
    _bad_v2(factory, registry)
    asked = auto_rollback.check_rollback(factory, workspace, "m")
    moves.rollback(factory, workspace, actor=APPROVER, model="m", reason="by hand")  # v2 → v1 meanwhile
    with pytest.raises(InvalidInput, match=r"back from v2, but the champion is v1 now; nothing was rolled back"):
        approvals.decide(factory, workspace, actor=APPROVER, request_id=asked.request_id, approve=True)
    assert aliases.get(workspace, model="m", alias="champion") == 1
    assert [s for *_, s in _rollback_requests(factory)] == ["obsolete"]
    assert [(a, d["request"]) for a, _, d in audit_rows(factory, "model.rollback_request_closed")] == [
        ("ann", asked.request_id)]
    assert [d["from"] for _, _, d in audit_rows(factory, "model.rollback")] == [2]  # only the one by hand


def test_auto_true_still_rolls_back_at_once(factory, workspace, registry):
    (workspace.home / policy.POLICY_FILE).write_text(policy.DEFAULT_POLICY_YAML)
    _bad_v2(factory, registry)
    done = auto_rollback.check_rollback(factory, workspace, "m")
    assert done.decision.act and done.request_id is None and (done.from_version, done.to_version) == (2, 1)
    assert _rollback_requests(factory) == []


# -- rolling back on the label-free estimate (performance.use_estimate) --------------------------

def estimate(version=2, upper=0.5, check_id=7):
    return decisions.Estimate(check_id, version, {"f1": {"value": upper - 0.05, "lower": upper - 0.1,
                                                         "upper": upper, "reference": 0.9}})


@pytest.mark.parametrize(("use", "current", "seen", "act", "says"), [
    (True, verdict(2, 0.0, labels=0), estimate(), True, "v2 estimated performance below the floor without "
                                                        "labels: estimated f1 0.450"),
    (True, verdict(2, 0.0, labels=0), estimate(), True, "(drift check #7; 0 labels so far, 50 needed"),
    (False, verdict(2, 0.0, labels=0), estimate(), False, "0 labels on v2; 50 needed"),
    (True, verdict(2, 0.0, labels=0), estimate(upper=0.85), False, "drift check #7: the estimate is within"),
    (True, verdict(2, 0.0, labels=0), None, False, "no drift check has estimated v2 since its promotion"),
    (True, verdict(2, 0.0, labels=0), estimate(version=1), False, "no drift check has estimated v2"),
    (True, verdict(2, 0.94), estimate(), False, "within 2%"),  # enough labels: they decide, not the estimate
])
def test_roll_back_on_the_estimate(use, current, seen, act, says):
    decision = decisions.should_roll_back(
        promoted_at=NOW - timedelta(hours=1), action="promote", now=NOW, current=current,
        previous=verdict(1, 0.95), rules=rules(performance={"use_estimate": use}), estimate=seen)
    assert decision.act is act and says in decision.reason, decision.reason


def _estimate_policy(workspace, auto="true"):
    (workspace.home / policy.POLICY_FILE).write_text(
        policy.DEFAULT_POLICY_YAML + f"  m:\n    performance:\n      use_estimate: true\n"
                                     f"    rollback:\n      auto: {auto}\n")


def _uncertain_window(factory, workspace, version=2):
    """Customers v``version`` cannot tell apart (calibrated churn probability between 0.3 and 0.7): a covariate
    shift into the model's hardest region, where its real F1 and its estimate both fall far below 0.8."""
    from core.monitoring import model_outputs
    from core.training import runs

    frame = small_churn(20000, seed=11).drop(columns=["churn"])
    with factory() as s:
        reference = runs.reference_for(s, model="m", version=version)
    found = model_outputs.predict(workspace, model="m", version=version, frame=frame, reference=reference)
    positive = next(iter(found.probabilities.values()))
    return found.sample[(positive > 0.3) & (positive < 0.7)].reset_index(drop=True)


def _estimated_check(factory, workspace):
    from core.monitoring import checks
    from tests.support.training import SCIENTIST

    window = _uncertain_window(factory, workspace)
    assert len(window) >= 300, len(window)
    check = checks.run_check(factory, workspace, actor=SCIENTIST, model="m", source="upload", current=window,
                             filename="uncertain.csv", report=False)
    assert check.version == 2 and check.estimated_performance["f1"]["upper"] < 0.8, check.estimated_performance
    return check


def test_an_estimate_below_the_floor_rolls_the_new_champion_back_audited_with_it(factory, workspace, registry):
    promote(factory, registry, 1)
    promote(factory, registry, 2)
    (workspace.home / policy.POLICY_FILE).write_text(
        policy.DEFAULT_POLICY_YAML + "  m:\n    performance:\n      use_estimate: true\n")
    nothing_yet = auto_rollback.check_rollback(factory, workspace, "m")
    assert not nothing_yet.decision.act
    assert "no drift check has estimated v2 since its promotion" in nothing_yet.decision.reason
    check = _estimated_check(factory, workspace)
    (workspace.home / policy.POLICY_FILE).write_text(policy.DEFAULT_POLICY_YAML)  # use_estimate off: labels only
    off = auto_rollback.check_rollback(factory, workspace, "m")
    assert not off.decision.act and off.decision.reason == "0 labels on v2; 50 needed"
    _estimate_policy(workspace)
    done = auto_rollback.check_rollback(factory, workspace, "m")
    assert done.decision.act and (done.from_version, done.to_version) == (2, 1), done.decision.reason
    assert aliases.get(workspace, model="m", alias="champion") == 1
    [(actor, _, moved)] = audit_rows(factory, "model.rollback")
    f1 = check.estimated_performance["f1"]
    assert actor == "system:auto-rollback" and (moved["from"], moved["to"]) == (2, 1)
    assert f"automatic rollback: v2 estimated performance below the floor without labels: estimated f1 " \
           f"{f1['value']:.3f}" in moved["reason"] and f"drift check #{check.id}" in moved["reason"]
    [(actor, _, acted)] = audit_rows(factory, "performance.estimate_acted")
    assert actor == "system:auto-rollback" and (acted["action"], acted["version"], acted["check_id"]) == (
        "rollback", 2, check.id)
    assert acted["estimated_performance"] == check.estimated_performance
    with factory() as s:
        [alert] = s.scalars(select(Alert).where(Alert.condition == "rollback")).all()
        assert "estimated f1" in alert.message
    again = auto_rollback.check_rollback(factory, workspace, "m")  # v1 arrived by rollback: left alone
    assert not again.decision.act and "arrived by rollback" in again.decision.reason


def test_an_estimate_below_the_floor_asks_an_approver_when_auto_is_approve(factory, workspace, registry):
    from core.promotion import approvals

    promote(factory, registry, 1)
    promote(factory, registry, 2)
    _estimate_policy(workspace, auto="approve")
    check = _estimated_check(factory, workspace)
    asked = auto_rollback.check_rollback(factory, workspace, "m")
    assert not asked.decision.act and asked.request_id is not None, asked.decision.reason
    assert aliases.get(workspace, model="m", alias="champion") == 2  # nothing moved yet
    [(_, _, requested)] = audit_rows(factory, "model.rollback_requested")
    assert "estimated f1" in requested["reason"] and f"drift check #{check.id}" in requested["reason"]
    [(_, _, acted)] = audit_rows(factory, "performance.estimate_acted")
    assert (acted["action"], acted["check_id"]) == ("rollback_requested", check.id)
    assert acted["estimated_performance"] == check.estimated_performance
    assert auto_rollback.check_rollback(factory, workspace, "m").request_id is None  # asked once
    assert len(audit_rows(factory, "performance.estimate_acted")) == 1
    change = approvals.decide(factory, workspace, actor=APPROVER, request_id=asked.request_id, approve=True)
    assert change is not None and (change.from_version, change.to_version) == (2, 1)
    [(_, _, moved)] = audit_rows(factory, "model.rollback")
    assert "estimated f1" in moved["reason"]


def test_enough_labels_outweigh_a_low_estimate(factory, workspace, registry):
    promote(factory, registry, 1)
    promote(factory, registry, 2)
    _estimate_policy(workspace)
    _estimated_check(factory, workspace)
    log_predictions(factory, version=2, outputs=[1] * 60, labels=[1] * 60, start=utcnow() - timedelta(hours=2))
    kept = auto_rollback.check_rollback(factory, workspace, "m")
    assert not kept.decision.act and "predecessor has too few labels" in kept.decision.reason
    assert aliases.get(workspace, model="m", alias="champion") == 2
    assert audit_rows(factory, "performance.estimate_acted") == []


def test_an_estimate_made_before_the_promotion_does_not_roll_back(factory, workspace, registry):
    promote(factory, registry, 1)
    moves.promote(factory, registry, actor=APPROVER, model="m", version=2, reason="test")
    _estimate_policy(workspace)
    check = _estimated_check(factory, workspace)
    with transaction(factory) as s:  # the check predates v2's promotion (it estimated the challenger)
        s.get(DriftCheck, check.id).ts = utcnow() - timedelta(hours=1)
    kept = auto_rollback.check_rollback(factory, workspace, "m")
    assert not kept.decision.act and "no drift check has estimated v2 since its promotion" in kept.decision.reason
