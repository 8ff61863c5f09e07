"""Model card fields: anyone reads, scientists and up edit, every save is audited with its diff."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.actors import Actor
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.platform.database import transaction
from core.registry import cards
from db.models import AuditEvent, ModelCard, TrainingRun

SAM, VIC = Actor("sam", "scientist"), Actor("vic", "viewer")


@pytest.fixture
def version(factory) -> int:
    """churn v1 as a finished training run row (all the card needs to know is that the version exists)."""
    with transaction(factory) as s:
        s.add(TrainingRun(dataset_name="churn", dataset_version=1, dataset_sha256="0" * 64, model_name="churn",
                          model_version=1, model_kind="linear", task="classification", target="churn", params={},
                          spec={}, seed=42, status="succeeded", code_version="test", created_by="sam"))
    return 1


def save(factory, actor=SAM, version=1, **fields):
    values = {"intended_use": "", "limitations": "", "owner": ""} | fields
    with transaction(factory) as s:
        return cards.save(s, actor=actor, model="churn", version=version, **values)


def test_empty_card_then_save_and_edit_with_a_diff(factory, version):
    with factory() as s:
        card = cards.get(s, model="churn", version=version)
    assert card.empty and card.updated_by is None
    save(factory, intended_use="Churn risk ranking.", owner="sam")
    card = save(factory, intended_use="Churn risk ranking.", limitations="  Synthetic data only. ", owner="ann")
    assert (card.limitations, card.owner, card.updated_by) == ("Synthetic data only.", "ann", "sam")
    with factory() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "model_card.updated")
                                .order_by(AuditEvent.seq)))
        assert cards.get(s, model="churn", version=1).owner == "ann"
    assert [e.subject for e in events] == ["model:churn", "model:churn"]
    assert events[1].details == {"version": 1, "changes": {
        "limitations": {"from": "", "to": "Synthetic data only."}, "owner": {"from": "sam", "to": "ann"}}}


def test_viewers_read_but_may_not_edit_and_the_refusal_is_audited(factory, version):
    with pytest.raises(PermissionDenied, match="vic has role 'viewer', which may not model_cards.edit"):
        save(factory, actor=VIC, owner="vic")
    with factory() as s:
        assert s.scalar(select(ModelCard)) is None
        denied = s.scalars(select(AuditEvent).where(AuditEvent.action == "permission.denied")).one()
    assert denied.details["permission"] == "model_cards.edit"


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"version": 5, "owner": "x"}, NotFound, "model 'churn' has no version 5; its versions are: 1"),
    ({"owner": "x" * 129}, InvalidInput, "owner is 129 characters; at most 128 are allowed"),
    ({}, InvalidInput, "the model card of churn v1 is unchanged"),
])
def test_bad_input_is_refused_and_nothing_is_written(factory, version, kwargs, error, message):
    with pytest.raises(error, match=message):
        save(factory, **kwargs)
    with factory() as s:
        assert s.scalar(select(ModelCard)) is None
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "model_card.updated")) is None
