"""Approvals that flow: a request for a version failing its gates is refused at once, naming them; approvers are
told through the alert channels; ``pending_for`` is what an approver may decide; gate results follow a policy save."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core import policy
from core.actors import Actor, cli_actor
from core.alerts import notify
from core.platform.database import transaction
from core.promotion import approvals, gates
from core.registry import gate_records
from db.models import AuditEvent
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn
from tests.support.versions import recorded
from tests.support.worker import drain

ANN, BOB, SAM = Actor("ann", "approver"), Actor("bob", "approver"), Actor("sam", "scientist")


@pytest.fixture
def registry(factory, workspace):
    """Model 'm': v1 F1 0.95 (passes), v2 F1 0.50 (fails the metric gate), both trained by sam; approvals on."""
    data = add_dataset(factory, workspace, small_churn())
    for f1 in (0.95, 0.50):
        recorded(factory, workspace, data, model="m", metrics={"f1": f1}, trainer=SAM)
    text = policy.DEFAULT_POLICY_YAML.replace("required: false\n    approvers: 1", "required: true\n    approvers: 1")
    (workspace.home / "policies.yaml").write_text(text)
    return workspace


def test_a_request_for_a_failing_version_is_refused_at_once_naming_the_gates(factory, registry) -> None:
    with pytest.raises(gates.GatesFailed) as refused, transaction(factory) as s:
        approvals.request_promotion(s, actor=SAM, model="m", version=2, settings=registry)
    assert "m v2 cannot be requested for promotion: its gates fail (metric f1: 0.5 (needs >= 0.85))" \
        in str(refused.value)
    with factory() as s:
        assert approvals.pending_requests(s, model="m") == []
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "model.promotion_request_refused")).all()
    assert (event.actor, event.details) == ("sam", {"version": 2, "failed": ["metric f1"]})


def test_approvers_are_told_and_see_what_they_may_decide(factory, registry) -> None:
    with transaction(factory) as s:
        request = approvals.request_promotion(s, actor=SAM, model="m", version=1, reason="ready", settings=registry)
    assert notify.wait_for_deliveries(30)
    with factory() as s:
        [told] = [a for a in notify.recent(s) if a.condition == "approval"]
        assert told.title == "m v1 waits for approval: sam requested its promotion (ready)" and not told.suppressed
        waiting = approvals.pending_for(s, actor=ANN)
        assert [(w.id, w.kind, w.model, w.version, w.requested_by) for w in waiting] == \
            [(request.id, "promotion", "m", 1, "sam")]
        assert approvals.pending_for(s, actor=SAM) == []  # a scientist decides nothing
        assert approvals.pending_for(s, actor=Actor("sam", "admin")) == []  # nor the trainer, whatever the role
        assert approvals.count_pending_for(s, actor=BOB) == 1
    approvals.decide(factory, registry, actor=ANN, request_id=request.id, approve=True)
    with factory() as s:
        assert approvals.pending_for(s, actor=BOB) == []  # promoted: nothing waits any more


def test_gate_results_follow_a_policy_save(factory, registry) -> None:
    with transaction(factory) as s:
        request = approvals.request_promotion(s, actor=SAM, model="m", version=1, settings=registry)
        gates.evaluate_gates(s, registry, model="m", version=1, champion=None, context="request")
    text = registry.policies.text().replace('f1: ">= 0.85"', 'f1: ">= 0.99"')
    with transaction(factory) as s:
        registry.policies.save(s, actor=cli_actor(), text=text)
    drain(factory, registry)  # the gates.refresh job the save queued
    with factory() as s:
        latest = gate_records.latest_per_version(s, model="m")[1]
    assert latest.context == "policy_changed" and latest.passed is False and request.id
