"""Model card fields of a model version (intended use, limitations, owner): read by all, edited by scientists.

Every save is audited as ``model_card.updated`` with the changed fields (before and after).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from core import audit
from core.accounts.auth import require
from core.actors import Actor
from core.errors import InvalidInput, NotFound
from core.training import runs
from db.models import ModelCard, utcnow

FIELDS: tuple[str, ...] = ("intended_use", "limitations", "owner")
LIMITS: dict[str, int] = {"intended_use": 10_000, "limitations": 10_000, "owner": 128}


@dataclass(frozen=True)
class ModelCardView:
    model: str
    version: int
    intended_use: str
    limitations: str
    owner: str
    updated_by: str | None  # None: never filled in
    updated_at: datetime | None

    @property
    def empty(self) -> bool:
        return not (self.intended_use or self.limitations or self.owner)

    def fields(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in FIELDS}


def _view(model: str, version: int, row: ModelCard | None) -> ModelCardView:
    if row is None:
        return ModelCardView(model, version, "", "", "", None, None)
    return ModelCardView(model, version, row.intended_use, row.limitations, row.owner, row.updated_by, row.updated_at)


def get(session: Session, *, model: str, version: int) -> ModelCardView:
    """The card of ``model`` v``version`` (empty fields when nobody has filled it in yet)."""
    return _view(model, version, session.get(ModelCard, (model, version)))


def _check_version(session: Session, model: str, version: int) -> None:
    known = runs.versions_of(session, model=model)
    if version not in known:
        have = ", ".join(str(v) for v in known[-20:]) or "none"
        raise NotFound(f"model {model!r} has no version {version}; its versions are: {have}")


def save(session: Session, *, actor: Actor, model: str, version: int, intended_use: str, limitations: str,
         owner: str) -> ModelCardView:
    """Store the card fields of a version; the audit event carries each changed field's old and new text."""
    require(session, actor, "model_cards.edit", f"model:{model}")
    _check_version(session, model, version)
    new = {"intended_use": intended_use.strip(), "limitations": limitations.strip(), "owner": owner.strip()}
    for name, text in new.items():
        if len(text) > LIMITS[name]:
            raise InvalidInput(f"{name.replace('_', ' ')} is {len(text):,} characters; at most "
                               f"{LIMITS[name]:,} are allowed")
    row = session.get(ModelCard, (model, version))
    old = _view(model, version, row).fields()
    changes = {name: {"from": old[name], "to": new[name]} for name in FIELDS if old[name] != new[name]}
    if not changes:
        raise InvalidInput(f"the model card of {model} v{version} is unchanged")
    if row is None:
        row = ModelCard(model=model, version=version, updated_by=actor.name)
        session.add(row)
    row.intended_use, row.limitations, row.owner = new["intended_use"], new["limitations"], new["owner"]
    row.updated_by, row.updated_at = actor.name, utcnow()
    session.flush()
    audit.record(session, actor, "model_card.updated", f"model:{model}", {"version": version, "changes": changes})
    return _view(model, version, row)
