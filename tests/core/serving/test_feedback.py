"""Feedback is bound to whoever made the prediction (issue 14 item 8): labels drive live performance and the
automatic rollback, so another token may not rewrite them. Overwrites are audited with the old values."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core import audit, policy
from core.actors import Actor
from core.errors import PermissionDenied
from core.platform.database import transaction
from core.platform.prediction_log.writer import LogWriter, Served, requester
from core.platform.storage import LocalStore
from core.serving.feedback import feedback_for, record_feedback
from db.models import AuditEvent, PredictionLog, utcnow
from tests.support.factories import admin_actor

NO_PARTITIONS = LocalStore(Path(__file__).parent / "no-partitions")  # (no such folder) every row here is hot

TEAM_A = Actor("token:team-a", "scientist", "token")
TEAM_B = Actor("token:team-b", "scientist", "token")
ANN = Actor("ann", "approver")


def logged(factory, *, requested_by: str | None, rows: int = 3) -> str:
    """A request logged by the API's writer, as asked by ``requested_by`` (None: logged before 0007)."""
    item = Served(uuid.uuid4().hex, utcnow(), "churn", "champion", 3, {"age": np.arange(rows, dtype=np.float64)},
                  [i % 2 for i in range(rows)], 4.2, requested_by)
    writer = LogWriter(factory, capacity=100)
    writer.start()
    writer.offer(item)
    writer.stop()
    return item.request_id


def label(factory, actor: Actor, request_id: str, labels: list, policies=None) -> int:
    with transaction(factory) as session:
        return record_feedback(session, actor=actor, model="churn", request_id=request_id,
                               labels=labels, policies=policies, store=NO_PARTITIONS)


def stored(factory, request_id: str) -> list:
    with factory() as session:
        return feedback_for(session, request_id=request_id)


def events(factory, action: str) -> list[tuple[str, dict]]:
    with factory() as session:
        return [(e.actor, e.details) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))]


def test_the_requester_is_logged_with_every_record(factory) -> None:
    request_id = logged(factory, requested_by=requester(TEAM_A))
    with factory() as session:
        who = session.scalars(select(PredictionLog.requested_by).where(PredictionLog.request_id == request_id)).all()
    assert who == ["token:team-a"] * 3
    assert requester(Actor("token:" + "x" * 200, "scientist", "token")) == ("token:" + "x" * 200)[:128]


def test_another_token_may_not_label_and_nothing_is_stored(factory) -> None:
    request_id = logged(factory, requested_by="token:team-a")
    with pytest.raises(PermissionDenied, match=r"token:team-b may not label request .* made by another token or "
                                               r"user; .* role 'admin' or higher"):
        label(factory, TEAM_B, request_id, [1, 1, 1])
    assert stored(factory, request_id) == []
    [(actor, details)] = events(factory, "permission.denied")  # the refusal survives the rollback
    assert actor == "token:team-b" and details["request_id"] == request_id and details["needs"] == "admin"
    with pytest.raises(PermissionDenied):  # an approver is not an admin either
        label(factory, ANN, request_id, [1, 1, 1])
    assert label(factory, TEAM_A, request_id, [1, 0, 1]) == 3
    assert stored(factory, request_id) == [1, 0, 1]
    assert label(factory, admin_actor(), request_id, [1, 0, 0]) == 3  # admins may label anything
    assert stored(factory, request_id) == [1, 0, 0]


def test_a_request_logged_before_requesters_were_recorded_is_for_admins_only(factory) -> None:
    request_id = logged(factory, requested_by=None, rows=1)
    for actor in (TEAM_A, ANN):
        with pytest.raises(PermissionDenied, match="logged before requesters were recorded"):
            label(factory, actor, request_id, [1])
    assert stored(factory, request_id) == []
    assert label(factory, admin_actor(), request_id, [1]) == 1


def test_the_policy_may_let_a_role_label_any_request(factory, tmp_path) -> None:
    (tmp_path / policy.POLICY_FILE).write_text(
        policy.DEFAULT_POLICY_YAML + "  churn:\n    feedback:\n      label_any_request: approver\n")
    request_id = logged(factory, requested_by="token:team-a", rows=1)
    with pytest.raises(PermissionDenied, match="role 'approver' or higher"):
        label(factory, TEAM_B, request_id, [0], policies=policy.Policies.at(tmp_path / policy.POLICY_FILE))
    assert label(factory, ANN, request_id, [0], policies=policy.Policies.at(tmp_path / policy.POLICY_FILE)) == 1
    with pytest.raises(PermissionDenied, match="role 'admin' or higher"):  # without the workspace: the default
        label(factory, ANN, request_id, [1])


def test_an_overwrite_is_audited_with_the_old_and_new_labels(factory) -> None:
    request_id = logged(factory, requested_by="token:team-a")
    label(factory, TEAM_A, request_id, [1, 0, "yes"])
    assert events(factory, "prediction.feedback_overwritten") == []  # a first label replaces nothing
    label(factory, admin_actor(), request_id, [1, 1, "yes"])
    label(factory, TEAM_A, request_id, [True, 1, "yes"])  # True is another label than 1
    first, second = events(factory, "prediction.feedback_overwritten")
    assert first == (admin_actor().name, {"request_id": request_id, "replaced": 3, "previous_by": ["token:team-a"],
                                          "changed": [{"record": 1, "old": 0, "new": 1}]})
    assert second[0] == "token:team-a"
    assert second[1]["changed"] == [{"record": 0, "old": 1, "new": True}]
    assert second[1]["previous_by"] == [admin_actor().name]
    with factory() as session:
        assert audit.verify(session).ok
