"""System work belongs to the system (issue 27 item 3), on both backends: users cancel only their own jobs (a
token's jobs are its owner's), the system's, the CLI's and an admin's jobs only admins cancel; a user may have
only so many jobs waiting; maintenance kinds are claimed ahead of user work."""

from __future__ import annotations

import pytest

from core.accounts import auth
from core.actors import Actor, cli_actor, system_actor
from core.errors import InvalidInput, PermissionDenied
from core.platform import job_queue
from core.platform.database import transaction
from db.models import AuditEvent


def _user(factory, name: str, role: str) -> Actor:
    with transaction(factory) as s:
        user = auth.create_user(s, actor=cli_actor(), username=name, role=role, password=f"{name}-pass-12345")
        return auth.actor_for(user)


def _queue(factory, actor: Actor, kind: str = "diagnostic.sleep") -> int:
    with transaction(factory) as s:
        return job_queue.enqueue(s, actor=actor, kind=kind, params={"seconds": 0} if kind == "diagnostic.sleep"
                                 else {}).id


def _cancel(factory, actor: Actor, job_id: int) -> None:
    with transaction(factory) as s:
        job_queue.cancel(s, actor=actor, job_id=job_id)


def test_users_cancel_their_own_jobs_and_only_admins_the_systems(factory) -> None:
    sam, sue = _user(factory, "sam", "scientist"), _user(factory, "sue", "scientist")
    ann = _user(factory, "ann", "admin")
    with transaction(factory) as s:
        auth.create_token(s, actor=cli_actor(), role="scientist", name="sam-ci", owner="sam")
    token = Actor("token:sam-ci", "scientist", "token")
    system = _queue(factory, system_actor("schedule:audit-verify"), "audit.verify")
    by_cli = _queue(factory, cli_actor())
    by_admin, by_sue = _queue(factory, ann), _queue(factory, sue)
    own, through_token = _queue(factory, sam), _queue(factory, token)
    for job_id in (system, by_cli, by_admin, by_sue):
        with pytest.raises(PermissionDenied, match=f"only their own jobs; job {job_id} "):
            _cancel(factory, sam, job_id)
    with factory() as s:
        refused = s.query(AuditEvent).filter_by(action="permission.denied", actor="sam").count()
    assert refused == 4
    _cancel(factory, sam, own)
    _cancel(factory, sam, through_token)  # the token's job is its owner's
    _cancel(factory, token, _queue(factory, sam))  # and the owner's job through the token
    for job_id in (system, by_cli, by_sue):
        _cancel(factory, ann, job_id)
    with factory() as s:
        assert {job_queue.get(s, j).status for j in (system, by_cli, by_sue, own, through_token)} == {"cancelled"}
        assert job_queue.get(s, by_admin).status == "queued"


def test_a_user_may_have_only_so_many_jobs_waiting(factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_queue, "QUEUED_PER_USER", 3)
    sam = _user(factory, "sam", "scientist")
    with transaction(factory) as s:
        auth.create_token(s, actor=cli_actor(), role="scientist", name="sam-ci", owner="sam")
    _queue(factory, sam)
    _queue(factory, sam)
    _queue(factory, Actor("token:sam-ci", "scientist", "token"))  # counts for its owner
    with pytest.raises(InvalidInput, match="sam already has 3 jobs waiting in the queue; the limit is 3 per user"):
        _queue(factory, sam)
    with pytest.raises(InvalidInput, match="sam already has 3 jobs waiting"):
        _queue(factory, Actor("token:sam-ci", "scientist", "token"))
    for _ in range(4):  # the system's and the CLI's own work is not limited
        _queue(factory, cli_actor())
    _queue(factory, _user(factory, "sue", "scientist"))  # the limit is per user


def test_maintenance_kinds_are_claimed_before_user_work(factory) -> None:
    sam = _user(factory, "sam", "scientist")
    first = [_queue(factory, sam) for _ in range(3)]
    verify = _queue(factory, system_actor("schedule:audit-verify"), "audit.verify")
    with transaction(factory) as s:
        claimed = job_queue.claim(s, worker="w1")
        assert claimed is not None and claimed.id == verify
    with transaction(factory) as s:
        claimed = job_queue.claim(s, worker="w1")
        assert claimed is not None and claimed.id == first[0]
