"""Admin → Alerts tab against a real local receiver, and the Overview's Recent alerts panel."""

from __future__ import annotations

import hashlib
import hmac

import pytest
import streamlit as st

from core import secrets
from core.actors import cli_actor
from core.alerts import channels, notify
from core.platform.database import transaction
from db.models import AlertChannel, AuditEvent
from tests.support.receivers import HttpReceiver

SECRET = "page-secret-page-secret"


@pytest.fixture
def http(monkeypatch):
    """A local receiver on 127.0.0.1: a loopback address, which alerts reach only when allow-listed (in the
    environment: the dashboard reads its settings from there)."""
    monkeypatch.setenv("LEANOPS_ALERT_ALLOWED_HOSTS", "127.0.0.1")
    with HttpReceiver(hang_seconds=5) as receiver:
        yield receiver


def button(at, label, key=None):
    return next(b for b in at.button if b.label == label and (key is None or b.key == key))


def test_admin_adds_a_webhook_and_sends_a_test_alert(open_page, factory, settings, http):
    at = open_page("app_pages/admin.py")
    assert not at.exception
    assert any("No alert channels yet." in i.value for i in at.info)
    at.radio(key="alert-kind").set_value("Generic webhook").run()
    next(t for t in at.text_input if t.label == "Channel name").input("ops")
    next(t for t in at.text_input if t.label == "Webhook URL").input(http.url("/leanops"))
    next(t for t in at.text_input if t.label == "HMAC secret").input(SECRET)
    at.button(key="FormSubmitter:add-alert-channel-webhook-Add channel").click().run()
    assert not at.exception and not at.error
    with factory() as s:
        channel = s.query(AlertChannel).one()
    opened = secrets.unseal(channel.config["secret"], keys=secrets.load_keys(settings))
    assert (channel.name, channel.kind, opened) == ("ops", "webhook", SECRET)
    assert secrets.is_sealed(channel.config["secret"])
    assert any("**ops** · webhook" in m.value for m in at.markdown)
    assert not any(SECRET in m.value for m in at.markdown)

    button(at, "Send test alert", key=f"alert-test-{channel.id}").click().run()
    [request] = http.received("/leanops")
    assert request.headers["X-LeanOps-Signature"] == \
        "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.json()["condition"] == "test"
    assert at.success[-1].value == "Test alert delivered to ops (1 attempt, status 200)."

    button(at, "Disable", key=f"alert-toggle-{channel.id}").click().run()
    with factory() as s:
        assert s.get(AlertChannel, channel.id).enabled is False
        actions = [e.action for e in s.query(AuditEvent).order_by(AuditEvent.seq)]
    assert {"alert_channel.added", "alert_channel.changed", "alert.raised"} <= set(actions)


def test_a_failing_test_alert_is_explained(open_page, factory, settings, http, monkeypatch):
    monkeypatch.setenv("LEANOPS_ALERT_BACKOFF_SECONDS", "0")  # the dashboard's settings
    http.answer("/down", 500)
    with transaction(factory) as s:
        channel = channels.add_channel(s, actor=cli_actor(), name="down", kind="slack",
                                       config={"url": http.url("/down")}, keys=secrets.load_keys(settings))
    at = open_page("app_pages/admin.py")
    button(at, "Send test alert", key=f"alert-test-{channel.id}").click().run()
    assert at.error[-1].value == "Test alert to down failed after 3 attempts: HTTP 500 Internal Server Error"
    assert len(http.received("/down")) == 3


def test_bad_channel_input_is_shown_and_nothing_is_added(open_page, factory):
    at = open_page("app_pages/admin.py")
    next(t for t in at.text_input if t.label == "Channel name").input("slack")
    next(t for t in at.text_input if t.label == "Slack webhook URL").input("not a url")
    at.button(key="FormSubmitter:add-alert-channel-slack-Add channel").click().run()
    assert "'not a url' is not an http(s) URL" in at.error[0].value
    with factory() as s:
        assert s.query(AlertChannel).count() == 0


def test_overview_shows_recent_alerts_with_delivery_status(open_page, factory, settings, http):
    at = open_page("app_pages/overview.py", role="viewer")
    assert any(s.value == "Recent alerts" for s in at.subheader)
    assert any("No alerts yet" in c.value for c in at.caption)

    with transaction(factory) as s:
        channels.add_channel(s, actor=cli_actor(), name="hook", kind="slack", config={"url": http.url("/s")},
                             keys=secrets.load_keys(settings))
    allowed = settings.model_copy(update={"alert_allowed_hosts": "127.0.0.1"})
    for _ in range(2):  # the second falls inside the cooldown
        notify.notify(factory, allowed, condition="drift", model="churn", title="Drift on churn",
                      message="2 of 10 columns drifted")
    assert notify.wait_for_deliveries(60)
    st.cache_data.clear()
    at = open_page("app_pages/overview.py", role="viewer")
    assert not at.exception
    frame = next(df.value for df in at.dataframe if "delivery" in df.value.columns)
    assert frame[["condition", "model", "title", "delivery"]].values.tolist() == [
        ["drift", "churn", "Drift on churn", "not sent: cooldown"],
        ["drift", "churn", "Drift on churn", "sent"]]
