"""Promotion behind gates, rollback, approvals and concurrency, on a real MLflow registry."""

from __future__ import annotations

import threading

import pytest

from core.actors import Actor, cli_actor
from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.platform.database import transaction
from core.promotion import approvals, gates
from core.promotion import moves as promotion_moves
from db.models import AliasMove, AuditEvent
from tests.support import aliases
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn
from tests.support.versions import recorded

APPROVER, SCIENTIST, VIEWER = Actor("ann", "approver"), Actor("sam", "scientist"), Actor("vic", "viewer")
F1 = {1: 0.80, 2: 0.90, 3: 0.95, 4: 0.97}


@pytest.fixture
def registry(factory, workspace):
    """Model 'm' with four registered versions, each from a training run by sam that recorded its F1
    (exact, for the gate boundaries) on a dataset version whose certificate passed; the workspace's settings."""
    data = add_dataset(factory, workspace, small_churn())
    for f1 in F1.values():
        recorded(factory, workspace, data, model="m", metrics={"f1": f1}, trainer=SCIENTIST)
    return workspace


def promote(factory, registry, version, actor=APPROVER, **kw):
    return promotion_moves.promote(factory, registry, actor=actor, model="m", version=version, **kw)


def rollback(factory, registry):
    return promotion_moves.rollback(factory, registry, actor=APPROVER, model="m")


def champion(registry):
    return aliases.get(registry, model="m", alias="champion")


def test_failing_gate_blocks_then_passing_promotes_and_rollback_restores(factory, registry):
    with pytest.raises(gates.GatesFailed, match=r"metric f1: 0.8 \(needs >= 0.85\)"):
        promote(factory, registry, 1)
    assert champion(registry) is None
    promote(factory, registry, 2)
    promote(factory, registry, 3)
    assert champion(registry) == 3
    rollback(factory, registry)
    assert champion(registry) == 2
    with factory() as s:
        moves = [(m.action, m.from_version, m.to_version, m.actor) for m in promotion_moves.history(s, model="m")]
        blocked = s.query(AuditEvent).filter_by(action="model.promotion_blocked").count()
    assert moves == [("rollback", 3, 2, "ann"), ("promote", 2, 3, "ann"), ("promote", None, 2, "ann")]
    assert blocked == 1


def test_bad_requests_leave_nothing_behind(factory, registry):
    with pytest.raises(NotFound, match="no version 9"):
        promote(factory, registry, 9)
    with pytest.raises(InvalidInput, match="no champion"):
        rollback(factory, registry)
    promote(factory, registry, 2)
    with pytest.raises(InvalidInput, match="already the champion"):
        promote(factory, registry, 2)
    with pytest.raises(InvalidInput, match="no previous champion"):
        rollback(factory, registry)
    with factory() as s:
        assert len(promotion_moves.history(s, model="m")) == 1


def test_improvement_gate_compares_with_the_champion(factory, registry):
    promote(factory, registry, 3)  # f1 0.95
    with pytest.raises(gates.GatesFailed, match="improvement on f1 over champion"):
        promote(factory, registry, 2)  # 0.90 does not beat 0.95 by 2 %
    promote(factory, registry, 4)  # 0.97 is +2.1 %
    assert champion(registry) == 4

def test_viewer_and_scientist_cannot_promote_and_are_audited(factory, registry):
    for actor in (VIEWER, SCIENTIST):
        with pytest.raises(PermissionDenied):
            promote(factory, registry, 2, actor=actor)
    with pytest.raises(PermissionDenied):
        promote(factory, registry, 1, actor=APPROVER, force=True, reason="x")
    with factory() as s:
        assert s.query(AuditEvent).filter_by(action="permission.denied").count() == 3
    assert champion(registry) is None


def test_forced_promotion_needs_reason_and_is_flagged(factory, registry):
    with pytest.raises(InvalidInput, match="needs a reason"):
        promote(factory, registry, 1, actor=cli_actor(), force=True)
    change = promote(factory, registry, 1, actor=cli_actor(), force=True, reason="hotfix for incident 7")
    assert change.forced and champion(registry) == 1
    with factory() as s:
        move = s.query(AliasMove).one()
        event = s.query(AuditEvent).filter_by(action="model.force_promote").one()
    assert move.forced and move.reason == "hotfix for incident 7"
    assert event.details["forced"] is True


def test_ten_concurrent_promotions_leave_one_champion_and_a_consistent_history(factory, registry):
    errors: list[Exception] = []

    def attempt(version: int) -> None:
        try:
            promote(factory, registry, version, actor=cli_actor(), force=True, reason=f"race {version}")
        except (InvalidInput, Conflict) as exc:  # "already the champion" / "… meanwhile": fair outcomes of a race
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(1 + i % 4,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with factory() as s:
        moves = list(reversed(promotion_moves.history(s, model="m")))
    assert len(moves) + len(errors) == 10
    for before, after in zip(moves, moves[1:], strict=False):
        assert after.from_version == before.to_version, "each move starts where the previous one ended"
    assert champion(registry) == moves[-1].to_version


def require_approvals(registry, n: int) -> None:
    from core import policy

    text = policy.DEFAULT_POLICY_YAML.replace("required: false\n    approvers: 1",
                                              f"required: true\n    approvers: {n}")
    (registry.home / "policies.yaml").write_text(text)


def decide(factory, registry, actor, request_id, approve=True):
    return approvals.decide(factory, registry, actor=actor, request_id=request_id, approve=approve,
                            comment="looks good")


def test_approval_flow_trainer_cannot_approve_and_last_approval_promotes(factory, registry):
    require_approvals(registry, 2)
    with pytest.raises(gates.GatesFailed, match="approvals"):
        promote(factory, registry, 2)
    with transaction(factory) as s:
        request_id = approvals.request_promotion(s, actor=SCIENTIST, model="m", version=2, reason="better").id
    with pytest.raises(InvalidInput, match="sam trained m v2 and cannot approve it"):
        decide(factory, registry, Actor("sam", "approver"), request_id)
    assert decide(factory, registry, APPROVER, request_id) is None  # one of two approvals
    with pytest.raises(InvalidInput, match="ann already decided"):
        decide(factory, registry, APPROVER, request_id)
    assert champion(registry) is None
    change = decide(factory, registry, Actor("bob", "approver"), request_id)
    assert change.to_version == 2 and champion(registry) == 2
    with factory() as s:
        assert not approvals.pending_requests(s, model="m")
        # the schedules.sync and aliases.sync jobs a promotion queues in its own transaction are follow-ups, not steps
        actions = [e.action for e in s.query(AuditEvent).order_by(AuditEvent.seq) if e.action != "alert.raised"
                   and not e.action.startswith("schedule.")
                   and not (e.action == "job.queued" and e.details["kind"] in ("schedules.sync", "aliases.sync"))]
    assert actions[-3:] == ["model.approved", "model.approved", "model.promote"]


def test_rejection_closes_the_request(factory, registry):
    require_approvals(registry, 1)
    with transaction(factory) as s:
        request_id = approvals.request_promotion(s, actor=SCIENTIST, model="m", version=2).id
    assert decide(factory, registry, APPROVER, request_id, approve=False) is None
    with pytest.raises(InvalidInput, match="already rejected"):
        decide(factory, registry, Actor("bob", "approver"), request_id)
    assert champion(registry) is None


def test_an_ownerless_token_never_approves_and_four_eyes_counts_people(factory, registry):
    """Issue 27 item 6: a token made before owners were required is no person (it can neither approve nor
    reject), and two tokens of one person are one pair of eyes."""
    from core.accounts import auth
    from tests.support.factories import admin_actor, make_user

    require_approvals(registry, 2)
    make_user(factory, "olga", "approver")
    with transaction(factory) as s:
        auth.create_token(s, actor=admin_actor(), role="approver", name="legacy")  # no owner: an older version's
        for name in ("olga-1", "olga-2"):
            auth.create_token(s, actor=admin_actor(), role="approver", name=name, owner="olga")
        request_id = approvals.request_promotion(s, actor=SCIENTIST, model="m", version=2, reason="better").id
    legacy = Actor("token:legacy", "approver", "token")
    for approve in (True, False):
        with pytest.raises(PermissionDenied, match="token:legacy has no owner"):
            decide(factory, registry, legacy, request_id, approve=approve)
    with factory() as s:
        assert approvals.pending_for(s, actor=legacy) == []
    assert decide(factory, registry, Actor("token:olga-1", "approver", "token"), request_id) is None
    assert decide(factory, registry, Actor("token:olga-2", "approver", "token"), request_id) is None
    assert champion(registry) is None, "one person through two tokens is one approval"
    change = decide(factory, registry, Actor("bob", "approver"), request_id)
    assert change is not None and change.to_version == 2
