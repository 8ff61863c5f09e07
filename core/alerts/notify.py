"""Alerts: channels (Slack, HMAC-signed webhook, email), a cooldown per condition and subject, deliveries.

``notify`` is called after the caller's transaction has committed. It stores the alert in its own
transaction (deciding there whether it falls inside the cooldown), then delivers it from a
background thread, so a slow or broken channel never holds up the job that raised it. Each
channel is tried a few times with exponential backoff; every outcome is written back on the
Alert row and audited as ``alert.raised``.

A generic webhook receives the alert as JSON with two headers::

    X-LeanOps-Timestamp: <unix seconds, also in the body as "timestamp">
    X-LeanOps-Signature: sha256=<hex HMAC-SHA256 of the raw request body, keyed with the channel secret>

A receiver recomputes ``hmac.new(secret, raw_body, hashlib.sha256).hexdigest()``, compares it with
``hmac.compare_digest``, and rejects timestamps older than a few minutes (the timestamp is inside the
signed body, so it cannot be changed without breaking the signature).
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit, policy
from core.accounts.auth import require
from core.actors import Actor, system_actor
from core.alerts.channels import _get_channel
from core.alerts.delivery import Delivery, Target, deliver, with_retries
from core.errors import InvalidInput
from core.platform import locks
from core.platform.database import transaction
from core.settings import Settings
from db.models import Alert, AlertChannel, utcnow

log = logging.getLogger("leanops.alerts")

CONDITIONS = ("drift", "performance", "job_failure", "promotion", "rollback", "certificate", "retrain", "integrity",
              "test", "review", "approval")
# Events, not incidents: each one is news (a production change, a request waiting for an approver), so no
# cooldown ever holds one back. Every other condition is an incident, re-sent per (condition, subject) only
# after the cooldown.
EVENTS = ("promotion", "rollback", "approval", "test")
SEVERITIES = ("info", "warning", "critical")
ACTOR = system_actor("alerts")


@dataclass(frozen=True)
class AlertView:
    id: int
    ts: datetime
    model: str | None
    condition: str
    severity: str
    title: str
    message: str
    details: dict[str, Any]
    suppressed: bool
    deliveries: list[dict[str, Any]]

    @property
    def status(self) -> str:
        """suppressed, no channels, sending, sent, failed or partly failed."""
        if self.suppressed:
            return "suppressed"
        if not self.deliveries:
            return "no channels"
        oks = [d.get("ok") for d in self.deliveries]
        if any(ok is None for ok in oks):
            return "sending"
        return "sent" if all(oks) else "failed" if not any(oks) else "partly failed"


def _alert_view(row: Alert) -> AlertView:
    return AlertView(id=row.id, ts=row.ts, model=row.model, condition=row.condition, severity=row.severity,
                     title=row.title, message=row.message, details=dict(row.details or {}),
                     suppressed=row.suppressed, deliveries=list(row.deliveries or []))


def recent(session: Session, limit: int = 20, *, model: str | None = None) -> list[AlertView]:
    """The newest alerts first (suppressed ones included)."""
    query = select(Alert).order_by(desc(Alert.ts), desc(Alert.id)).limit(limit)
    if model is not None:
        query = query.where(Alert.model == model)
    return [_alert_view(r) for r in session.scalars(query)]


def of_model(session: Session, *, model: str) -> list[AlertView]:
    """Every alert about ``model`` (suppressed ones included), oldest first."""
    return [_alert_view(r) for r in session.scalars(select(Alert).where(Alert.model == model).order_by(Alert.id))]


# -- raising -------------------------------------------------------------------------------------

def _cooldown(policies: policy.Policies, model: str | None) -> timedelta:
    try:
        rules = policies.rules_for(model) if model else policies.file().default
    except (InvalidInput, OSError) as exc:  # a broken policies.yaml must not lose the alert
        log.warning("alerts: policies.yaml unreadable (%s); default cooldown used", exc)
        rules = policy.ModelPolicy()
    return timedelta(minutes=rules.alerts.cooldown_minutes)


def _jsonable(details: dict[str, Any] | None) -> dict[str, Any]:
    return json.loads(json.dumps(details or {}, default=str))


def _payload(row: Alert, timestamp: int) -> dict[str, Any]:
    return {"id": row.id, "ts": audit.ts_text(row.ts), "timestamp": timestamp, "model": row.model,
            "condition": row.condition, "severity": row.severity, "title": row.title, "message": row.message,
            "details": row.details}


def _store(session: Session, policies: policy.Policies, *, condition: str, model: str | None, title: str, message: str,
           details: dict[str, Any], severity: str, subject: str | None = None) -> tuple[Alert, list[Target]]:
    """Insert the alert; decide suppression under a lock so two racing incidents make one alert. The cooldown
    is per condition and subject (``subject``, else the model); events (``EVENTS``) have none."""
    suppressed = False
    now = utcnow()
    subject = subject or model
    if condition not in EVENTS:
        locks.hold(session, f"alerts:{condition}:{subject}"[:255])
        now = utcnow()
        since = now - _cooldown(policies, model)
        earlier = session.scalar(select(Alert.id).where(
            Alert.condition == condition, Alert.suppressed.is_(False), Alert.ts >= since,
            Alert.subject.is_(None) if subject is None else Alert.subject == subject).limit(1))
        suppressed = earlier is not None
    targets = [] if suppressed else [
        Target(c.name, c.kind, dict(c.config))
        for c in session.scalars(select(AlertChannel).where(AlertChannel.enabled.is_(True)).order_by(AlertChannel.id))]
    row = Alert(ts=now, model=model, condition=condition, severity=severity, title=title[:255], message=message,
                details=details, suppressed=suppressed, subject=subject[:255] if subject else None,
                deliveries=[{"channel": t.name, "ok": None, "attempts": 0, "error": "", "status": None}
                            for t in targets])
    session.add(row)
    session.flush()
    if not targets:
        audit.record(session, ACTOR, "alert.raised", f"alert:{row.id}", {
            "condition": condition, "model": model, "title": row.title, "channels": [],
            "outcome": "suppressed (cooldown)" if suppressed else "no enabled channels"})
    return row, targets


def notify(factory: sessionmaker[Session], settings: Settings, *, condition: str, model: str | None, title: str,
           message: str, details: dict[str, Any] | None = None, severity: str = "warning",
           subject: str | None = None) -> int | None:
    """Record an alert and deliver it to every enabled channel. Returns the Alert id.

    Called after the caller's own transaction has committed. Never raises for delivery
    problems (timeouts, 500s): those are retried with backoff and recorded on the alert.
    Within the model's ``alerts.cooldown_minutes`` of an earlier alert for the same condition and
    subject (``subject``: e.g. a job kind or a dataset version; default the model) the alert is stored as
    suppressed and sent nowhere. Events (``EVENTS``: promotions, rollbacks, approval requests, tests)
    never are.
    Returns None only when the alert could not even be stored (logged).
    """
    if condition not in CONDITIONS:
        raise InvalidInput(f"alert condition {condition!r} is unknown; conditions are: {', '.join(CONDITIONS)}")
    if severity not in SEVERITIES:
        raise InvalidInput(f"alert severity {severity!r} is unknown; severities are: {', '.join(SEVERITIES)}")
    try:
        with transaction(factory) as session:
            row, targets = _store(session, settings.policies, condition=condition, model=model, title=title,
                                  message=message, details=_jsonable(details), severity=severity, subject=subject)
            alert_id, payload = row.id, _payload(row, int(time.time()))
    except Exception:  # noqa: BLE001 - an alert that cannot be stored must not break its caller
        log.exception("alert %s for %s could not be stored", condition, model)
        return None
    if targets:
        _start(_send_and_record, factory, settings, alert_id, payload, targets)
    return alert_id


def notify_after_commit(session: Session, settings: Settings, *, condition: str, model: str | None, title: str,
                        message: str, details: dict[str, Any] | None = None, severity: str = "warning",
                        subject: str | None = None) -> None:
    """``notify`` once ``session``'s transaction commits; nothing if it rolls back.

    For core code that runs inside its caller's transaction.
    """
    pending: list[dict[str, Any]] = session.info.setdefault("leanops.alerts", [])
    pending.append({"settings": settings, "condition": condition, "model": model, "title": title, "message": message,
                    "details": details, "severity": severity, "subject": subject})
    if session.info.get("leanops.alert_hooks"):
        return
    session.info["leanops.alert_hooks"] = True
    from sqlalchemy import event

    @event.listens_for(session, "after_commit")
    def _committed(s: Session) -> None:
        queued, s.info["leanops.alerts"] = list(s.info["leanops.alerts"]), []
        factory = sessionmaker(s.get_bind(), expire_on_commit=False)
        for item in queued:
            try:
                notify(factory, item.pop("settings"), **item)
            except Exception:  # noqa: BLE001 - the caller has committed; an alert problem is only logged
                log.exception("alert %s for %s failed", item["condition"], item["model"])

    @event.listens_for(session, "after_transaction_end")
    def _ended(s: Session, transaction: Any) -> None:
        if transaction.parent is None:  # rolled back (after a commit the list is already empty)
            s.info["leanops.alerts"] = []


# -- delivering ----------------------------------------------------------------------------------

_pending: set[threading.Thread] = set()
_pending_lock = threading.Lock()


def _start(fn: Any, *args: Any) -> None:
    def run() -> None:
        try:
            fn(*args)
        finally:
            with _pending_lock:
                _pending.discard(threading.current_thread())

    thread = threading.Thread(target=run, name=f"alert-{args[2]}", daemon=True)
    with _pending_lock:
        if not _pending and not getattr(_start, "registered", False):
            atexit.register(wait_for_deliveries, 60)  # a CLI process waits for its alerts to go out
            _start.registered = True  # type: ignore[attr-defined]
        _pending.add(thread)
    thread.start()


def wait_for_deliveries(timeout: float | None = None) -> bool:
    """Wait until background deliveries have finished; True if none are left."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _pending_lock:
            threads = list(_pending)
        if not threads:
            return True
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        threads[0].join(left)


def _send_and_record(factory: sessionmaker[Session], settings: Settings, alert_id: int, payload: dict[str, Any],
                     targets: list[Target]) -> None:
    results = deliver(targets, payload, settings)
    outcome = "sent" if all(r.ok for r in results) else "failed" if not any(r.ok for r in results) \
        else "partly failed"
    try:
        with transaction(factory) as session:
            row = session.get(Alert, alert_id)
            if row is not None:
                row.deliveries = [r.as_dict() for r in results]
            audit.record(session, ACTOR, "alert.raised", f"alert:{alert_id}", {
                "condition": payload["condition"], "model": payload["model"], "title": payload["title"],
                "channels": [r.as_dict() for r in results], "outcome": outcome})
    except Exception:  # noqa: BLE001 - logged; the deliveries themselves already happened
        log.exception("outcome of alert %s could not be recorded", alert_id)


# -- test button ---------------------------------------------------------------------------------

def send_test(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, channel_id: int) -> Delivery:
    """Send a test alert to one channel (enabled or not) now, and say how it went (admin only)."""
    with transaction(factory) as session:
        require(session, actor, "alerts.manage", f"alert_channel:{channel_id}")
        channel = _get_channel(session, channel_id)
        target = Target(channel.name, channel.kind, dict(channel.config))
        row = Alert(ts=utcnow(), model=None, condition="test", severity="info",
                    title=f"Test alert to {channel.name}",
                    message=f"{actor.name} sent this test from LeanOps to check the {channel.kind} channel "
                            f"{channel.name!r}. Nothing is wrong.",
                    details={"requested_by": actor.name}, suppressed=False,
                    deliveries=[{"channel": target.name, "ok": None, "attempts": 0, "error": "", "status": None}])
        session.add(row)
        session.flush()
        alert_id, payload = row.id, _payload(row, int(time.time()))
    result = with_retries(target, payload, settings)
    with transaction(factory) as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None  # added above, in its own transaction
        alert.deliveries = [result.as_dict()]
        audit.record(session, actor, "alert.raised", f"alert:{alert_id}", {
            "condition": "test", "model": None, "title": payload["title"], "channels": [result.as_dict()],
            "outcome": "sent" if result.ok else "failed"})
    return result
