"""Issue 14, items 7 and 9 for alerts: channel secrets sealed at rest and masked in the audit log; alert
URLs never reach loopback, link-local or metadata addresses unless allow-listed; no redirects followed.
Against the real local HTTP receiver."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core import secrets
from core.actors import cli_actor
from core.alerts import channels, notify
from core.alerts.addresses import parse_allowed, refusal
from core.platform.database import transaction
from db.models import AlertChannel, AuditEvent
from tests.support.receivers import HttpReceiver

ADMIN = cli_actor()
SECRET = "s3cret-s3cret-s3cret"
SLACK = "https://hooks.slack.com/services/T0SECRET/B0SECRET/xoxSECRETtoken"


@pytest.fixture
def http():
    with HttpReceiver(hang_seconds=5) as receiver:
        yield receiver


@pytest.fixture
def fast(settings):
    return settings.model_copy(update={"alert_timeout_seconds": 1, "alert_backoff_seconds": 0.01})


def add(factory, settings, name, kind, config) -> channels.ChannelView:
    with transaction(factory) as s:
        return channels.add_channel(s, actor=ADMIN, name=name, kind=kind, config=config,
                                    keys=secrets.load_keys(settings))


def test_channel_secrets_are_sealed_at_rest_and_the_slack_url_is_masked_everywhere(factory, settings):
    slack = add(factory, settings, "slack", "slack", {"url": SLACK})
    add(factory, settings, "hook", "webhook", {"url": "https://example.com/in?token=abc123", "secret": SECRET})
    with factory() as s:
        raw = " ".join(str(v) for (v,) in s.execute(text("SELECT config FROM alert_channels")))
        audit_text = " ".join(e.details_json for e in s.query(AuditEvent))
        added = s.query(AuditEvent).filter_by(action="alert_channel.added", subject="alert_channel:slack").one().details
    for plain in ("T0SECRET", "xoxSECRETtoken", SECRET, "abc123"):
        assert plain not in raw, "a channel secret is stored in plain text"
        assert plain not in audit_text, "a channel secret reached the audit log"
    assert raw.count(secrets.PREFIX) == 3
    assert slack.target == "https://hooks.slack.com/…" and slack.config["url"] == "https://hooks.slack.com/…"
    assert added["config"]["url"] == "https://hooks.slack.com/…"


def test_a_channel_stored_in_plain_text_still_sends_and_is_sealed_on_its_next_write(factory, fast, http):
    allowed = fast.model_copy(update={"alert_allowed_hosts": "127.0.0.1"})
    with transaction(factory) as s:  # as a version before sealing stored it
        s.add(AlertChannel(name="old", kind="webhook", created_by="admin", enabled=True,
                           config={"url": http.url("/old"), "secret": SECRET}))
    with factory() as s:
        channel_id = s.query(AlertChannel.id).filter_by(name="old").scalar()
    assert notify.send_test(factory, allowed, actor=ADMIN, channel_id=channel_id).ok
    keys = secrets.load_keys(fast)
    with transaction(factory) as s:
        channels.change_channel(s, actor=ADMIN, channel_id=channel_id, keys=keys, enabled=False)
    with factory() as s:
        config = s.get(AlertChannel, channel_id).config
    assert all(secrets.is_sealed(config[k]) for k in ("url", "secret"))
    assert secrets.unseal_config(config, keys=keys) == {"url": http.url("/old"), "secret": SECRET}
    assert notify.send_test(factory, allowed, actor=ADMIN, channel_id=channel_id).ok
    assert len(http.received("/old")) == 2


def test_a_wrong_key_fails_the_delivery_with_a_reason_and_never_shows_a_key(factory, fast, http):
    channel = add(factory, fast, "hook", "webhook", {"url": http.url("/hook"), "secret": SECRET})
    other = secrets.generate_key()
    wrong = fast.model_copy(update={"secret_key": type(fast.secret_key)(other), "alert_allowed_hosts": "127.0.0.1"})
    result = notify.send_test(factory, wrong, actor=ADMIN, channel_id=channel.id)
    assert not result.ok and http.received() == []
    assert "cannot be unsealed with the key from LEANOPS_SECRET_KEY" in result.error
    assert other not in result.error and SECRET not in result.error


@pytest.mark.parametrize(("host", "reason"), [
    ("127.0.0.1", "loopback"), ("localhost", "loopback"), ("[::1]", "loopback"),
    ("169.254.169.254", "cloud metadata"), ("[fd00:ec2::254]", "cloud metadata"), ("169.254.10.1", "link-local"),
    ("[fe80::1]", "link-local"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
    ("[::ffff:127.0.0.1]", "loopback"),
])
def test_internal_addresses_are_refused_before_anything_is_sent(factory, fast, http, host, reason):
    channel = add(factory, fast, "inside", "slack", {"url": f"http://{host}:{http.port}/x"})
    result = notify.send_test(factory, fast, actor=ADMIN, channel_id=channel.id)
    assert (result.ok, result.attempts) == (False, 1)  # a refusal is not retried
    assert f"is a {reason} address" in result.error and "LEANOPS_ALERT_ALLOWED_HOSTS" in result.error
    assert http.received() == []


@pytest.mark.parametrize("allowed", ["127.0.0.1", "localhost", "127.0.0.0/8", "LOCALHOST."])
def test_an_allow_listed_host_or_network_is_reached(factory, fast, http, allowed):
    channel = add(factory, fast, "local", "slack", {"url": f"http://localhost:{http.port}/ok"})
    result = notify.send_test(factory, fast.model_copy(update={"alert_allowed_hosts": allowed}), actor=ADMIN,
                              channel_id=channel.id)
    assert result.ok and len(http.received("/ok")) == 1
    assert http.received("/ok")[0].headers["Host"] == f"localhost:{http.port}"  # the URL's name, not the address


def test_redirects_are_not_followed(factory, fast, http):
    http.answer("/moved", 302)  # Location: /redirected/moved on the same receiver
    channel = add(factory, fast, "moved", "webhook", {"url": http.url("/moved"), "secret": SECRET})
    result = notify.send_test(factory, fast.model_copy(update={"alert_allowed_hosts": "127.0.0.1"}), actor=ADMIN,
                              channel_id=channel.id)
    assert (result.ok, result.attempts, result.status) == (False, 1, 302)
    assert "alerts follow no redirects" in result.error
    assert len(http.received("/moved")) == 1 and http.received("/redirected") == []


def test_the_allow_list_setting_is_checked():
    from core.errors import InvalidInput
    from core.settings import get_settings

    assert get_settings(alert_allowed_hosts="localhost, 10.0.0.0/8 ::1").alert_allowed_hosts
    with pytest.raises(InvalidInput, match="LEANOPS_ALERT_ALLOWED_HOSTS: 'http://x' is neither a host name"):
        get_settings(alert_allowed_hosts="localhost,http://x")
    allowed = parse_allowed("Hooks.Example.com 10.1.0.0/16")
    import ipaddress

    assert allowed.admits("hooks.example.com", ipaddress.ip_address("8.8.8.8"))
    assert allowed.admits("x", ipaddress.ip_address("10.1.2.3"))
    assert not allowed.admits("x", ipaddress.ip_address("10.2.0.1"))
    assert refusal(ipaddress.ip_address("10.0.0.5")) is None  # private networks are where in-house receivers live
    assert refusal(ipaddress.ip_address("93.184.216.34")) is None
