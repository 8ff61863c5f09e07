"""Cron expressions in plain words: "0 6 * * *" → "every day at 06:00 UTC".

Covers the shapes schedules use in practice; anything else is shown as the raw expression, which is
always right, rather than a paraphrase that might be wrong. Schedules run in UTC (jobs/scheduler.py).
Weekdays keep crontab's meaning (0 and 7 = Sunday), which is what the scheduler fires on
(``jobs.scheduler.cron_trigger`` names the days for APScheduler, whose own numbers start at Monday).
"""

from __future__ import annotations

DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]  # crontab's 0-6
NAMES = {name[:3].lower(): i for i, name in enumerate(DAYS)}


def _int(field: str, low: int, high: int) -> int | None:
    return int(field) if field.isdigit() and low <= int(field) <= high else None


def _step(field: str) -> int | None:
    """N of "*/N"."""
    return int(field[2:]) if field.startswith("*/") and field[2:].isdigit() and int(field[2:]) > 0 else None


def _weekdays(field: str) -> str | None:
    """"1-5" → "weekday", "1,3" → "Monday and Wednesday"; None for shapes not handled."""
    def day(text: str) -> int | None:
        return NAMES.get(text.lower()) if not text.isdigit() else int(text) % 7 if int(text) <= 7 else None

    if "-" in field and "," not in field:
        a, _, b = field.partition("-")
        first, last = day(a), day(b)
        if first is None or last is None:
            return None
        if (first, last) == (1, 5):
            return "weekday (Monday to Friday)"
        return f"day from {DAYS[first]} to {DAYS[last]}"
    days = [day(p) for p in field.split(",")]
    if not days or any(d is None for d in days):
        return None
    names = [DAYS[d] for d in days if d is not None]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def cron_words(expr: str) -> str:
    """``expr`` (five cron fields, UTC) in words; the raw expression when its shape is not a common one."""
    fields = expr.split()
    if len(fields) != 5:
        return expr
    minute, hour, dom, month, dow = fields
    if month != "*":
        return expr
    if fields == ["*"] * 5:
        return "every minute"
    if (n := _step(minute)) is not None and hour == dom == dow == "*":
        return f"every {n} minutes"
    m = _int(minute, 0, 59)
    if m is None:
        return expr
    if hour == "*" and dom == dow == "*":
        return f"every hour at minute {m:02d}"
    if (n := _step(hour)) is not None and dom == dow == "*":
        return f"every {n} hours at minute {m:02d}" if n > 1 else f"every hour at minute {m:02d}"
    h = _int(hour, 0, 23)
    if h is None:
        return expr
    at = f"at {h:02d}:{m:02d} UTC"
    if dom == "*" and dow == "*":
        return f"every day {at}"
    if dom == "*" and (days := _weekdays(dow)) is not None:
        return f"every {days} {at}"
    if dow == "*" and (d := _int(dom, 1, 31)) is not None:
        return f"on day {d} of every month {at}"
    return expr
