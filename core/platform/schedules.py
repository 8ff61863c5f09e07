"""Recurring jobs. Rows here are the truth; the one scheduler process mirrors them into APScheduler.

A cron is parsed when it is saved by APScheduler's own trigger parser (``cron_trigger``), the one the
scheduler builds its trigger with, so a cron the scheduler would refuse never reaches a row. This is the
one core module allowed to import APScheduler, and only ``apscheduler.triggers`` (a parser with no
threads or job store); the scheduler itself stays in jobs/ (tests/test_layers.py holds the exception).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.accounts.auth import require
from core.actors import Actor
from core.errors import InvalidInput, NotFound
from core.platform.job_queue import kind_named
from db.models import Schedule, utcnow

CRON_HELP = "five fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * *' (daily 03:00 UTC)"
_CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")  # APScheduler's names, in crontab's order
_CRON_LABELS = ("minute", "hour", "day-of-month", "month", "day-of-week")


@dataclass(frozen=True)
class ScheduleView:
    name: str
    kind: str
    params: dict[str, Any]
    cron: str
    paused: bool
    description: str
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_job_id: int | None


def _view(row: Schedule) -> ScheduleView:
    return ScheduleView(row.name, row.kind, row.params, row.cron, row.paused, row.description,
                        None if row.paused else row.next_run_at, row.last_run_at, row.last_job_id)


def check_cron(cron: str) -> str:
    """The cron as stored (five fields, lower case, single spaces) once APScheduler's parser accepts it.

    Raises:
        InvalidInput: naming the field APScheduler refused and why, e.g. for ``99 99 * * *``:
            "the minute field '99' is refused: the last value (99) is higher than the maximum value (59)".
    """
    fields = cron.lower().split()
    if len(fields) != 5:
        raise InvalidInput(f"cron {cron!r} has {len(fields)} field{'s' * (len(fields) != 1)}, not {CRON_HELP}")
    for name, label, value in zip(_CRON_FIELDS, _CRON_LABELS, fields, strict=True):
        try:
            _trigger(**{name: value})
        except ValueError as exc:
            why = str(exc).partition(f"Error validating expression {value!r}: ")[2] or str(exc)
            raise InvalidInput(f"cron {cron!r}: the {label} field {value!r} is refused: {why}; "
                               f"cron is {CRON_HELP}") from None
    return " ".join(fields)


def cron_trigger(cron: str) -> Any:
    """The APScheduler ``CronTrigger`` (UTC) of a cron, with crontab's meaning of every field (see
    ``crontab_days``: APScheduler's own weekday numbers start at Monday, even in ``from_crontab``)."""
    minute, hour, day, month, day_of_week = check_cron(cron).split()
    return _trigger(minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week)


def _trigger(*, day_of_week: str = "*", **fields: str) -> Any:
    # The documented exception to "core never imports apscheduler": the trigger parser only.
    from apscheduler.triggers.cron import CronTrigger

    return CronTrigger(**fields, day_of_week=crontab_days(day_of_week), timezone="UTC")


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab's numbering: 0 (and 7) = Sunday


def _day_number(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token) % 7
    if token in _DAY_NAMES:
        return _DAY_NAMES.index(token)
    raise ValueError(f"not a day of the week: {token!r}")


def crontab_days(field: str) -> str:
    """A crontab day-of-week field as day names, which APScheduler reads the same way crontab does.

    APScheduler 3 numbers weekdays from 0 = Monday, also in ``CronTrigger.from_crontab``, so the
    crontab field "0" (Sunday) would fire on Mondays and "1-5" Tuesday to Saturday. Expanding every
    number, range and step into crontab's days and naming them keeps the crontab meaning.
    """
    field = field.lower()
    if field == "*":
        return field
    days: list[int] = []
    for part in field.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            low, high = 0, 6
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _day_number(first), _day_number(last)
            high = 7 if last.isdigit() and int(last) == 7 else high  # "5-7": Friday to Sunday
        else:
            low = high = _day_number(base)
        days.extend(d % 7 for d in range(low, high + 1, int(step) if step else 1))
    return ",".join(_DAY_NAMES[d] for d in sorted(set(days)))


def _get(session: Session, name: str) -> Schedule:
    row = session.get(Schedule, name)
    if row is None:
        raise NotFound(f"no schedule named {name!r}")
    return row


def list_schedules(session: Session) -> list[ScheduleView]:
    return [_view(r) for r in session.scalars(select(Schedule).order_by(Schedule.name))]


def ensure(session: Session, *, actor: Actor, name: str, kind: str, cron: str, params: dict[str, Any] | None = None,
           description: str = "") -> ScheduleView:
    """Create the schedule if it does not exist yet (an existing one keeps its user's edits)."""
    row = session.get(Schedule, name)
    if row is not None:
        return _view(row)
    require(session, actor, "schedules.manage", f"schedule:{name}")
    kind_named(kind)  # refuses an unknown kind, listing the kinds
    row = Schedule(name=name, kind=kind, cron=check_cron(cron), params=params or {}, description=description)
    session.add(row)
    session.flush()
    audit.record(session, actor, "schedule.created", f"schedule:{name}", {"kind": kind, "cron": row.cron})
    return _view(row)


def set_paused(session: Session, *, actor: Actor, name: str, paused: bool) -> None:
    require(session, actor, "schedules.manage", f"schedule:{name}")
    row = _get(session, name)
    if row.paused != paused:
        row.paused, row.updated_at = paused, utcnow()
        audit.record(session, actor, "schedule.paused" if paused else "schedule.resumed", f"schedule:{name}", {})


def set_cron(session: Session, *, actor: Actor, name: str, cron: str) -> None:
    require(session, actor, "schedules.manage", f"schedule:{name}")
    row = _get(session, name)
    new = check_cron(cron)
    if row.cron != new:
        old, row.cron, row.updated_at = row.cron, new, utcnow()
        audit.record(session, actor, "schedule.changed", f"schedule:{name}", {"from": old, "to": new})


def set_params(session: Session, *, name: str, params: dict[str, Any]) -> None:
    """Replace the params a schedule's jobs get (the system's own schedules follow their policy; not audited)."""
    _get(session, name).params = params


def remove(session: Session, *, actor: Actor, name: str, reason: str = "") -> None:
    """Delete a schedule row; the scheduler drops its job at its next sync."""
    require(session, actor, "schedules.manage", f"schedule:{name}")
    row = _get(session, name)
    session.delete(row)
    session.flush()
    audit.record(session, actor, "schedule.removed", f"schedule:{name}",
                 {"kind": row.kind, "cron": row.cron, "reason": reason})


def note_next_run(session: Session, *, name: str, next_run_at: datetime | None) -> None:
    """Called by the scheduler process after it (re)computes a schedule's next fire time."""
    row = session.get(Schedule, name)
    if row is not None and row.next_run_at != next_run_at:
        row.next_run_at = next_run_at


def note_fired(session: Session, *, name: str, job_id: int) -> None:
    row = _get(session, name)
    row.last_run_at, row.last_job_id = utcnow(), job_id


def snapshot(session: Session) -> dict[str, tuple[str, bool, datetime]]:
    """name → (cron, paused, updated_at): what the scheduler compares to notice edits."""
    return {r.name: (r.cron, r.paused, r.updated_at) for r in session.scalars(select(Schedule))}
