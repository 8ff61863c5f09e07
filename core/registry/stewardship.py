"""Who answers for a model and when it was last looked at: its inventory entry and its periodic reviews.

The inventory entry (``model_profiles``) is the model-level card: the owner (a user account, not free text),
intended use, out-of-scope use and tags. The risk tier is policy (``risk_tier``), so it is changed like any
gate and audited with its diff. A review (``model_reviews``) is recorded by an approver with notes and an
outcome (continue, retrain, retire); the tier's ``review.interval_months`` says when the next one is due,
counted from the last review or, before the first, from the model's first champion (a model never in
service owes no review). An overdue review is an alert; for a tier in ``review.blocking`` it is also the
``review`` gate that refuses every promotion of the model until an approver records a review.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import desc, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.accounts.auth import list_users, require
from core.actors import Actor
from core.errors import InvalidInput, NotFound
from core.policy import Check, ModelPolicy
from core.registry import state
from core.registry.state import CHAMPION
from core.training import runs
from db.models import ModelProfile, ModelReview, utcnow

if TYPE_CHECKING:
    from core.settings import Settings

OUTCOMES = ("continue", "retrain", "retire")
NOTES_MAX = 10_000
TAGS_MAX, TAG_LEN = 20, 40
GATE = "review"

# What each tier asks of a model besides its review interval (shown in the inventory and the report).
TIER_REQUIREMENTS: dict[str, str] = {
    "low": "inventory entry and owner; review only when the policy sets an interval",
    "medium": "inventory entry and owner; periodic review (an overdue one is an alert); the policy gates",
    "high": "inventory entry and owner; periodic review that blocks promotion when overdue (gate review); "
            "signed test reports and approval of every promotion (turn approval.required on); a fairness column",
}


# -- the inventory entry -------------------------------------------------------------------------

@dataclass(frozen=True)
class Profile:
    model: str
    owner: str
    intended_use: str
    out_of_scope_use: str
    tags: tuple[str, ...]
    updated_by: str | None
    updated_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"owner": self.owner, "intended_use": self.intended_use, "out_of_scope_use": self.out_of_scope_use,
                "tags": list(self.tags), "updated_by": self.updated_by,
                "updated_at": self.updated_at.isoformat() if self.updated_at else None}


def _profile(model: str, row: ModelProfile | None) -> Profile:
    if row is None:
        return Profile(model, "", "", "", (), None, None)
    return Profile(model, row.owner, row.intended_use, row.out_of_scope_use, tuple(row.tags or ()), row.updated_by,
                   row.updated_at)


def profile(session: Session, *, model: str) -> Profile:
    """The inventory entry of ``model`` (empty fields when nobody has filled it in)."""
    return _profile(model, session.get(ModelProfile, model))


def profiles(session: Session) -> dict[str, Profile]:
    return {r.model: _profile(r.model, r) for r in session.scalars(select(ModelProfile))}


def _known(session: Session, model: str) -> None:
    if not runs.versions_of(session, model=model):
        names = ", ".join(runs.registered_models(session)[:20]) or "none"
        raise NotFound(f"model {model!r} is not registered; models are: {names}")


def _tags(tags: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    clean = tuple(dict.fromkeys(t.strip() for t in tags if t.strip()))
    if len(clean) > TAGS_MAX:
        raise InvalidInput(f"{len(clean)} tags given; at most {TAGS_MAX} are allowed")
    for tag in clean:
        if len(tag) > TAG_LEN or "," in tag:
            raise InvalidInput(f"tag {tag[:60]!r} is not a tag (at most {TAG_LEN} characters, no comma)")
    return clean


def save_profile(session: Session, *, actor: Actor, model: str, owner: str, intended_use: str, out_of_scope_use: str,
                 tags: list[str] | tuple[str, ...] = ()) -> Profile:
    """Store the inventory entry of ``model``; the owner must be an active account. Audited with each change
    (the same entry saved again is no change: nothing recorded)."""
    require(session, actor, "model_cards.edit", f"model:{model}")
    _known(session, model)
    owner = owner.strip()
    accounts = {u.username: u for u in list_users(session)}
    if owner and (owner not in accounts or not accounts[owner].active):
        active = ", ".join(sorted(n for n, u in accounts.items() if u.active)[:30]) or "none"
        raise InvalidInput(f"owner {owner!r} is not an active user account; accounts are: {active}")
    intended, out_of_scope, clean_tags = intended_use.strip(), out_of_scope_use.strip(), list(_tags(tags))
    new: dict[str, Any] = {"owner": owner, "intended_use": intended, "out_of_scope_use": out_of_scope,
                           "tags": clean_tags}
    for name, text in (("intended_use", intended), ("out_of_scope_use", out_of_scope)):
        if len(text) > NOTES_MAX:
            raise InvalidInput(f"{name.replace('_', ' ')} is {len(text):,} characters; at most "
                               f"{NOTES_MAX:,} are allowed")
    row = session.get(ModelProfile, model)
    old = _profile(model, row).as_dict()
    changes = {k: {"from": old[k], "to": v} for k, v in new.items() if old[k] != v}
    if not changes:  # saving the same entry again changes nothing and records nothing
        return _profile(model, row)
    if row is None:
        row = ModelProfile(model=model, updated_by=actor.name)
        session.add(row)
    row.owner, row.intended_use, row.out_of_scope_use, row.tags = owner, intended, out_of_scope, clean_tags
    row.updated_by, row.updated_at = actor.name, utcnow()
    session.flush()
    audit.record(session, actor, "model.profile_updated", f"model:{model}", {"changes": changes})
    return _profile(model, row)


# -- reviews -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Review:
    id: int
    model: str
    version: int | None
    reviewer: str
    outcome: str
    notes: str
    risk_tier: str
    next_due: datetime | None
    ts: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "version": self.version, "reviewer": self.reviewer,
                "outcome": self.outcome, "notes": self.notes, "risk_tier": self.risk_tier,
                "next_due": self.next_due.isoformat() if self.next_due else None, "ts": self.ts.isoformat()}


def _review(row: ModelReview) -> Review:
    return Review(row.id, row.model, row.version, row.reviewer, row.outcome, row.notes, row.risk_tier, row.next_due,
                  row.ts)


def reviews_of(session: Session, *, model: str, limit: int = 50) -> list[Review]:
    """The reviews of ``model``, newest first."""
    return [_review(r) for r in session.scalars(select(ModelReview).where(ModelReview.model == model)
                                                .order_by(desc(ModelReview.id)).limit(limit))]


def add_months(ts: datetime, months: int) -> datetime:
    """``ts`` plus whole calendar months (the 31st becomes the month's last day)."""
    from dateutil.relativedelta import relativedelta

    return ts + relativedelta(months=months)


@dataclass(frozen=True)
class ReviewStatus:
    """Where a model stands against its tier's review interval (a pure summary: see ``status_from``)."""

    model: str
    risk_tier: str
    interval_months: int | None
    blocking: bool  # an overdue review blocks promotion (the tier is in review.blocking)
    in_service_since: datetime | None  # the first champion
    last_review: Review | None
    next_due: datetime | None
    overdue: bool

    @property
    def requirements(self) -> str:
        return TIER_REQUIREMENTS[self.risk_tier]

    def as_dict(self) -> dict[str, Any]:
        return {"risk_tier": self.risk_tier, "interval_months": self.interval_months, "blocking": self.blocking,
                "requirements": self.requirements,
                "in_service_since": self.in_service_since.isoformat() if self.in_service_since else None,
                "last_review": self.last_review.as_dict() if self.last_review else None,
                "next_review_due": self.next_due.isoformat() if self.next_due else None, "overdue": self.overdue}


def status_from(model: str, rules: ModelPolicy, *, in_service_since: datetime | None, last_review: Review | None,
                now: datetime) -> ReviewStatus:
    """The review status from plain facts: due ``interval`` months after the last review (or the first champion)."""
    tier = rules.risk_tier
    months = rules.review.interval_months.get(tier)
    start = last_review.ts if last_review is not None else in_service_since
    due = add_months(start, months) if months and start is not None else None
    return ReviewStatus(model, tier, months, tier in rules.review.blocking, in_service_since, last_review, due,
                        due is not None and now >= due)


def status(session: Session, rules: ModelPolicy, *, model: str, now: datetime | None = None) -> ReviewStatus:
    """``model``'s review status under its effective policy ``rules`` (settings.policies.rules_for(model))."""
    first = state.history(session, model=model, alias=CHAMPION, limit=1, oldest_first=True)
    newest = reviews_of(session, model=model, limit=1)
    return status_from(model, rules, in_service_since=first[0].ts if first else None,
                       last_review=newest[0] if newest else None, now=now or utcnow())


def gate_check(found: ReviewStatus) -> Check | None:
    """The ``review`` gate: a check only for a tier whose overdue review blocks promotion."""
    if not found.blocking or not found.interval_months:
        return None
    if found.next_due is None:
        return Check(GATE, "not in service yet", f"a review every {found.interval_months} months", True,
                     f"{found.risk_tier}-risk model: the first review is due {found.interval_months} months after "
                     "its first champion")
    detail = (f"{found.risk_tier}-risk model: review due {found.next_due:%Y-%m-%d}"
              + (f", last review {found.last_review.ts:%Y-%m-%d} by {found.last_review.reviewer}"
                 if found.last_review else ", never reviewed"))
    if found.overdue:
        detail += "; an approver records a review (Inventory page, cli.py model review) to unblock promotion"
    return Check(GATE, "overdue" if found.overdue else "up to date",
                 f"a review every {found.interval_months} months", not found.overdue, detail)


def record_review(session: Session, settings: Settings, *, actor: Actor, model: str, outcome: str, notes: str,
                  now: datetime | None = None) -> Review:
    """An approver's review of ``model``: notes and outcome (continue, retrain, retire); audited.

    The next review falls due ``review.interval_months`` (of the model's tier) after this one.
    """
    require(session, actor, "models.approve", f"model:{model}")
    if outcome not in OUTCOMES:
        raise InvalidInput(f"review outcome {outcome!r} is unknown; outcomes are: {', '.join(OUTCOMES)}")
    notes = notes.strip()
    if not notes:
        raise InvalidInput("a review needs notes: what was looked at and why the outcome")
    if len(notes) > NOTES_MAX:
        raise InvalidInput(f"review notes are {len(notes):,} characters; at most {NOTES_MAX:,} are allowed")
    _known(session, model)
    rules = settings.policies.rules_for(model)
    now = now or utcnow()
    months = rules.review.interval_months.get(rules.risk_tier)
    row = ModelReview(model=model, version=state.champion(session, model=model), reviewer=actor.name,
                      outcome=outcome, notes=notes, risk_tier=rules.risk_tier,
                      next_due=add_months(now, months) if months else None, ts=now)
    session.add(row)
    session.flush()
    audit.record(session, actor, "model.reviewed", f"model:{model}",
                 {"review": row.id, "outcome": outcome, "notes": notes, "risk_tier": rules.risk_tier,
                  "version": row.version, "next_due": row.next_due.isoformat() if row.next_due else None})
    return _review(row)


def overdue(session: Session, settings: Settings, *, now: datetime | None = None) -> list[ReviewStatus]:
    """Every model whose review is overdue, the most overdue first."""
    now = now or utcnow()
    found = [status(session, settings.policies.rules_for(m), model=m, now=now) for m in runs.registered_models(session)]
    return sorted((s for s in found if s.overdue), key=lambda s: s.next_due or now)


def alert_overdue(factory: sessionmaker[Session], settings: Settings, *, now: datetime | None = None) -> list[str]:
    """Raise a ``review`` alert for every overdue model (the alert cooldown keeps it to one per incident)."""
    from core.alerts import notify

    with factory() as session:
        late = overdue(session, settings, now=now)
    for s in late:
        assert s.next_due is not None
        blocks = " Promotion of its versions is blocked until then (gate review)." if s.blocking else ""
        notify.notify(factory, settings, condition="review", model=s.model,
                      severity="critical" if s.blocking else "warning",
                      title=f"{s.model}: {s.risk_tier}-risk review overdue since {s.next_due:%Y-%m-%d}",
                      message=f"{s.model} ({s.risk_tier} risk) was due for its periodic review on "
                              f"{s.next_due:%Y-%m-%d}; an approver records one on the Inventory page or with "
                              f"cli.py model review.{blocks}",
                      details={"risk_tier": s.risk_tier, "next_review_due": s.next_due.isoformat(),
                               "blocking": s.blocking})
    return [s.model for s in late]
