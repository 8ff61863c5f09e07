"""Streamlit pieces for alerts: the Overview's recent-alerts panel and the Admin page's Alerts tab."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import secrets
from core.actors import Actor
from core.alerts import channels, notify
from core.errors import LeanOpsError
from ui import resources
from ui.components import act, ago

STATUS = {"sent": "sent", "failed": "failed", "partly failed": "partly failed", "sending": "sending",
          "suppressed": "not sent: cooldown", "no channels": "not sent: no channel enabled"}  # words (sortable)
KIND_LABELS = {"Slack webhook": "slack", "Generic webhook": "webhook", "Email": "email"}


@st.cache_data(ttl=5)
def recent_alerts(limit: int = 20) -> pd.DataFrame:
    with resources.session_factory()() as session:
        rows = notify.recent(session, limit=limit)
    return pd.DataFrame([{
        "time": a.ts, "condition": a.condition, "model": a.model or "—", "severity": a.severity, "title": a.title,
        "delivery": STATUS[a.status] + _failures(a),
    } for a in rows], columns=["time", "condition", "model", "severity", "title", "delivery"])


def _failures(alert: notify.AlertView) -> str:
    bad = [f"{d['channel']}: {d['error']}" for d in alert.deliveries if d.get("ok") is False]
    return f" ({'; '.join(bad)})" if bad else ""


@st.cache_data(ttl=5)
def channel_list() -> list[channels.ChannelView]:
    with resources.session_factory()() as session:
        return channels.channels(session, keys=secrets.keys_if_any(resources.settings()))


def recent_panel() -> None:
    """Overview: the newest alerts with condition, model, time and delivery status."""
    st.subheader("Recent alerts")
    frame = recent_alerts()
    if frame.empty:
        st.caption("No alerts yet. Admins add Slack, webhook or email channels under Admin → Alerts.")
        return
    st.dataframe(frame, hide_index=True, width="stretch")


def _show_result(result: notify.Delivery) -> None:
    tries = f"{result.attempts} attempt{'s' if result.attempts != 1 else ''}"
    if result.ok:
        st.success(f"Test alert delivered to {result.channel} ({tries}, status {result.status}).")
    else:
        st.error(f"Test alert to {result.channel} failed after {tries}: {result.error}")


def _channel_row(channel: channels.ChannelView, who: Actor) -> None:
    state = "enabled" if channel.enabled else "disabled"
    st.markdown(f"**{channel.name}** · {channel.kind} · `{channel.target}` · {state} · added by "
                f"{channel.created_by} {ago(channel.created_at)}")
    c1, c2, c3 = st.columns(3)
    if c1.button("Send test alert", key=f"alert-test-{channel.id}"):
        try:
            st.session_state[f"alert-result-{channel.id}"] = notify.send_test(
                resources.session_factory(), resources.settings(), actor=who, channel_id=channel.id)
        except LeanOpsError as exc:
            st.error(str(exc))
        st.cache_data.clear()
    label = "Disable" if channel.enabled else "Enable"
    if c2.button(label, key=f"alert-toggle-{channel.id}"):
        if act(lambda s: channels.change_channel(s, actor=who, channel_id=channel.id, enabled=not channel.enabled,
                                                 keys=secrets.load_keys(resources.settings())),
               success=f"{channel.name}: {label.lower()}d"):
            st.rerun()
    if c3.button("Delete", key=f"alert-delete-{channel.id}"):
        keys_or_none = secrets.keys_if_any(resources.settings())  # a removal must not need the key
        act(lambda s: channels.remove_channel(s, actor=who, channel_id=channel.id, keys=keys_or_none),
            success=f"{channel.name} deleted")
        st.rerun()
    if (result := st.session_state.get(f"alert-result-{channel.id}")) is not None:
        _show_result(result)


def _config_form(kind: str) -> dict[str, object]:
    if kind == "slack":
        return {"url": st.text_input("Slack webhook URL", placeholder="https://hooks.slack.com/services/…")}
    if kind == "webhook":
        st.caption("Each POST carries `X-LeanOps-Signature: sha256=<HMAC-SHA256 of the raw body with this secret>` "
                   "and `X-LeanOps-Timestamp`.")
        return {"url": st.text_input("Webhook URL"), "secret": st.text_input("HMAC secret", type="password")}
    c1, c2 = st.columns([3, 1])
    config: dict[str, object] = {"host": c1.text_input("SMTP host"), "port": c2.number_input("SMTP port", 1, 65535, 25)}
    c1, c2 = st.columns(2)
    config["sender"] = c1.text_input("From address")
    config["to"] = c2.text_input("To addresses (comma-separated)")
    c1, c2 = st.columns(2)
    config["starttls"] = c1.checkbox("Use STARTTLS")
    config["ssl"] = c2.checkbox("Use SMTPS (implicit TLS, usually port 465)")
    st.caption("An SMTP login needs STARTTLS or SMTPS: LeanOps never sends a password in clear.")
    c1, c2 = st.columns(2)
    config["username"] = c1.text_input("SMTP username (optional)")
    config["password"] = c2.text_input("SMTP password", type="password")
    return config


def admin_tab(who: Actor) -> None:
    """Admin → Alerts: channels with test/enable/delete, and a form to add one."""
    st.caption("Alerts on drift, performance drops, failed jobs, promotions and rollbacks, and failed data "
               "certificates go to every enabled channel. The same model and condition alert once per "
               "cooldown (`alerts.cooldown_minutes` in the policy).")
    found = channel_list()
    if not found:
        st.info("No alert channels yet.")
    for channel in found:
        _channel_row(channel, who)
    st.markdown("**Add a channel**")
    kind = KIND_LABELS[st.radio("Channel type", list(KIND_LABELS), horizontal=True, key="alert-kind")]
    with st.form(f"add-alert-channel-{kind}", clear_on_submit=True):
        name = st.text_input("Channel name")
        config = _config_form(kind)
        if st.form_submit_button("Add channel") and act(
                lambda s: channels.add_channel(s, actor=who, name=name, kind=kind, config=config,
                                               keys=secrets.load_keys(resources.settings())),
                success=f"Channel {name} added"):
            st.rerun()
    st.markdown("**Recent alerts**")
    st.dataframe(recent_alerts(), hide_index=True, width="stretch")
