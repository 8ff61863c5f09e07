"""The model inventory (SR 11-7's "comprehensive set of information for models"): one row per model.

Owner (a user account), risk tier from the policy and what that tier requires, intended and out-of-scope
use, tags, status (champion and since when), last validation (the newest signed gate evaluation of the
champion), the last review and when the next one is due, and the model's open alerts (warning or critical,
the last ``OPEN_ALERT_DAYS`` days). Read by the Inventory page, ``cli.py model list`` and ``GET /v1/models``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core.alerts import notify
from core.errors import InvalidInput
from core.promotion import test_reports
from core.registry import state, stewardship
from core.registry.state import CHAMPION
from core.training import runs
from db.models import utcnow

if TYPE_CHECKING:
    from core.settings import Settings

OPEN_ALERT_DAYS = 7
SORTS = ("model", "owner", "risk_tier", "next_review_due", "open_alerts", "last_validation")
_TIER_ORDER = {"high": 0, "medium": 1, "low": 2}


@dataclass(frozen=True)
class InventoryRow:
    model: str
    owner: str
    risk_tier: str
    tier_requires: str
    intended_use: str
    out_of_scope_use: str
    tags: list[str]
    versions: int
    champion: int | None
    champion_since: str | None
    status: str
    last_validation: str | None
    last_validation_passed: bool | None
    last_review: str | None
    last_review_outcome: str | None
    last_reviewer: str | None
    review_interval_months: int | None
    next_review_due: str | None
    overdue: bool
    review_blocks_promotion: bool
    open_alerts: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def row_of(session: Session, settings: Settings, *, model: str, now: datetime | None = None) -> InventoryRow:
    now = now or utcnow()
    rules = settings.policies.rules_for(model)
    prof = stewardship.profile(session, model=model)
    review = stewardship.status(session, rules, model=model, now=now)
    arrival = state.arrival(session, model=model, alias=CHAMPION)
    champion = arrival.version if arrival else None
    validated = test_reports.latest(session, model=model, version=champion) if champion is not None else None
    last = review.last_review
    if last is not None and last.outcome == "retire":
        status = f"retire decided by {last.reviewer} on {last.ts:%Y-%m-%d}"
    elif arrival is not None:
        status = f"champion v{arrival.version} since {arrival.since:%Y-%m-%d}"
    else:
        status = "no champion"
    since = now - timedelta(days=OPEN_ALERT_DAYS)
    alerts = [a for a in notify.recent(session, 200, model=model)
              if a.ts >= since and a.severity in ("warning", "critical") and a.condition != "test"]
    return InventoryRow(
        model=model, owner=prof.owner, risk_tier=review.risk_tier, tier_requires=review.requirements,
        intended_use=prof.intended_use, out_of_scope_use=prof.out_of_scope_use, tags=list(prof.tags),
        versions=len(runs.versions_of(session, model=model)), champion=champion,
        champion_since=_iso(arrival.since) if arrival else None, status=status,
        last_validation=_iso(validated.created_at) if validated else None,
        last_validation_passed=validated.passed if validated else None,
        last_review=_iso(last.ts) if last else None, last_review_outcome=last.outcome if last else None,
        last_reviewer=last.reviewer if last else None, review_interval_months=review.interval_months,
        next_review_due=_iso(review.next_due), overdue=review.overdue, review_blocks_promotion=review.blocking,
        open_alerts=len(alerts))


def list_models(session: Session, settings: Settings, *, search: str = "", sort: str = "model",
                now: datetime | None = None) -> list[InventoryRow]:
    """Every registered model's inventory row; ``search`` matches name, owner, tier, tags and uses; ``sort`` one of
    SORTS (overdue reviews first within equal keys)."""
    if sort not in SORTS:
        raise InvalidInput(f"sort {sort!r} is unknown; sorts are: {', '.join(SORTS)}")
    now = now or utcnow()
    rows = [row_of(session, settings, model=m, now=now) for m in runs.registered_models(session)]
    needle = search.strip().lower()
    if needle:
        rows = [r for r in rows if needle in " ".join([r.model, r.owner, r.risk_tier, *r.tags, r.intended_use,
                                                       r.out_of_scope_use, r.status]).lower()]

    def key(r: InventoryRow) -> tuple[Any, ...]:
        value: Any = {"model": r.model, "owner": r.owner or "\uffff", "risk_tier": _TIER_ORDER.get(r.risk_tier, 9),
                      "next_review_due": r.next_review_due or "9999", "open_alerts": -r.open_alerts,
                      "last_validation": r.last_validation or ""}[sort]
        return (value, not r.overdue, r.model)

    return sorted(rows, key=key)


def reviews_due(session: Session, settings: Settings, *, within_days: int = 30,
                now: datetime | None = None) -> list[InventoryRow]:
    """Models whose review is overdue or due within ``within_days`` (the Overview's list), soonest first."""
    now = now or utcnow()
    horizon = (now + timedelta(days=within_days)).isoformat()
    rows = [r for r in list_models(session, settings, sort="next_review_due", now=now)
            if r.next_review_due is not None and r.next_review_due <= horizon]
    return rows
