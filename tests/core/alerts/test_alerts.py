"""Alerts against a real local HTTP receiver and a real SMTP server (aiosmtpd): formats, signatures,
retries, timeouts, cooldown, permissions, and the hooks (job failure, promotion, rollback, certificate)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest

from core import audit, secrets
from core.actors import Actor, cli_actor
from core.alerts import channels, notify
from core.data import datasets
from core.errors import InvalidInput, PermissionDenied
from core.platform import job_queue
from core.platform.database import transaction
from core.policy import DEFAULT_POLICY_YAML
from core.promotion import gates, moves
from db.models import Alert, AlertChannel, AuditEvent, utcnow
from jobs.runner import run_next
from tests.support.receivers import HttpReceiver, SmtpReceiver
from tests.support.tls import LocalCert, local_cert

ADMIN = cli_actor()
SECRET = "s3cret-s3cret-s3cret"


@pytest.fixture
def settings(settings):
    """The local stand-ins listen on 127.0.0.1, a loopback address alerts go to only when allow-listed."""
    return settings.model_copy(update={"alert_allowed_hosts": "127.0.0.1"})


@pytest.fixture
def fast(settings):
    """Settings with short timeouts and backoff, so failure paths finish quickly."""
    return settings.model_copy(update={"alert_timeout_seconds": 0.5, "alert_backoff_seconds": 0.05})


@pytest.fixture
def http():
    with HttpReceiver(hang_seconds=10) as receiver:
        yield receiver


@pytest.fixture
def tls_trusted(tmp_path, monkeypatch) -> LocalCert:
    """A local certificate the sending side trusts (through SSL_CERT_FILE, so its verification stays real)."""
    cert = local_cert(tmp_path / "tls")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert.cert))
    return cert


@pytest.fixture
def smtp():
    with SmtpReceiver() as receiver:
        yield receiver


def add(factory, settings, name, kind, config, actor=ADMIN, enabled=True) -> channels.ChannelView:
    with transaction(factory) as s:
        return channels.add_channel(s, actor=actor, name=name, kind=kind, config=config,
                                    keys=secrets.load_keys(settings), enabled=enabled)


def raise_alert(factory, settings, condition="drift", model="churn", **kw) -> int:
    alert_id = notify.notify(factory, settings, condition=condition, model=model,
                             title=kw.pop("title", f"{condition} on {model}"),
                             message=kw.pop("message", "3 of 5 columns drifted"), **kw)
    assert notify.wait_for_deliveries(60)
    return alert_id


def stored(factory, alert_id) -> notify.AlertView:
    with factory() as s:
        return next(a for a in notify.recent(s, limit=100) if a.id == alert_id)


def events(factory, action):
    with factory() as s:
        return list(s.query(AuditEvent).filter_by(action=action).order_by(AuditEvent.seq))


def test_slack_webhook_and_email_each_get_the_alert(factory, settings, http, smtp):
    add(factory, settings, "team-slack", "slack", {"url": http.url("/slack/T000/B000/xyz")})
    add(factory, settings, "ops-hook", "webhook", {"url": http.url("/hook"), "secret": SECRET})
    add(factory, settings, "oncall-mail", "email", {
        "host": "127.0.0.1", "port": smtp.port, "sender": "leanops@example.com",
        "to": "a@example.com, b@example.com"})
    alert_id = raise_alert(factory, settings, details={"drift_share": 0.6, "columns": ["age", "plan"]})

    [slack] = http.received("/slack")
    assert slack.method == "POST" and slack.headers["Content-Type"] == "application/json"
    text = slack.json()["text"]
    assert "drift on churn" in text and "3 of 5 columns drifted" in text and "drift_share: 0.6" in text

    [hook] = http.received("/hook")
    expected = hmac.new(SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["X-LeanOps-Signature"] == f"sha256={expected}"
    body = hook.json()
    assert body["timestamp"] == int(hook.headers["X-LeanOps-Timestamp"])
    assert (body["id"], body["condition"], body["model"], body["details"]["columns"]) == \
        (alert_id, "drift", "churn", ["age", "plan"])

    [mail] = smtp.wait_for(1)
    assert mail["Subject"] == "[LeanOps] drift on churn"
    assert (mail["From"], mail["To"]) == ("leanops@example.com", "a@example.com, b@example.com")
    assert "3 of 5 columns drifted" in mail.get_content()

    view = stored(factory, alert_id)
    assert view.status == "sent" and not view.suppressed
    assert {(d["channel"], d["ok"], d["attempts"]) for d in view.deliveries} == \
        {("team-slack", True, 1), ("ops-hook", True, 1), ("oncall-mail", True, 1)}
    [raised] = events(factory, "alert.raised")
    assert raised.actor == "system:alerts" and raised.subject == f"alert:{alert_id}"
    assert raised.details["outcome"] == "sent" and len(raised.details["channels"]) == 3


def test_500_is_retried_then_recorded_and_other_channels_still_get_it(factory, fast, http):
    http.answer("/broken", 500)
    add(factory, fast, "broken", "webhook", {"url": http.url("/broken"), "secret": SECRET})
    add(factory, fast, "fine", "slack", {"url": http.url("/fine")})
    alert_id = raise_alert(factory, fast)  # returns normally: delivery problems never raise

    assert len(http.received("/broken")) == 3 and len(http.received("/fine")) == 1
    deliveries = {d["channel"]: d for d in stored(factory, alert_id).deliveries}
    assert deliveries["broken"] == {"channel": "broken", "ok": False, "attempts": 3,
                                    "error": "HTTP 500 Internal Server Error", "status": 500}
    assert deliveries["fine"]["ok"] is True
    assert stored(factory, alert_id).status == "partly failed"
    [raised] = events(factory, "alert.raised")
    assert raised.details["outcome"] == "partly failed"


def test_client_errors_are_not_retried(factory, fast, http):
    add(factory, fast, "gone", "slack", {"url": http.url("/status/404")})
    alert_id = raise_alert(factory, fast)
    [delivery] = stored(factory, alert_id).deliveries
    assert (delivery["ok"], delivery["attempts"], delivery["status"]) == (False, 1, 404)
    assert len(http.received("/status/404")) == 1


def test_a_hanging_receiver_times_out_on_every_attempt(factory, fast, http):
    add(factory, fast, "slow", "webhook", {"url": http.url("/hang"), "secret": SECRET})
    alert_id = raise_alert(factory, fast)
    [delivery] = stored(factory, alert_id).deliveries
    assert (delivery["ok"], delivery["attempts"], delivery["error"]) == (False, 3, "no answer within 0.5 s")
    assert len(http.received("/hang")) == 3


def test_notify_returns_while_delivery_is_still_hanging(factory, settings, http):
    # A 60 s timeout against a receiver that never answers: if notify waited for delivery, it
    # could only return after the receiver was stopped below.
    slow = settings.model_copy(update={"alert_timeout_seconds": 60, "alert_retries": 1})
    add(factory, settings, "slow", "webhook", {"url": http.url("/hang"), "secret": SECRET})
    alert_id = notify.notify(factory, slow, condition="drift", model="churn", title="t", message="m")
    http.wait_for(1, "/hang")
    assert stored(factory, alert_id).status == "sending"
    http.stop()  # releases the hanging request without an answer
    assert notify.wait_for_deliveries(60)
    [delivery] = stored(factory, alert_id).deliveries
    assert delivery["ok"] is False and delivery["attempts"] == 1


def test_cooldown_suppresses_the_second_alert_per_model_and_condition(factory, settings, http):
    add(factory, settings, "hook", "slack", {"url": http.url("/s")})
    first = raise_alert(factory, settings)
    second = raise_alert(factory, settings)
    other_condition = raise_alert(factory, settings, condition="performance")
    other_model = raise_alert(factory, settings, model="fraud")
    tests = [raise_alert(factory, settings, condition="test", model=None) for _ in range(2)]

    assert len(http.received("/s")) == 5  # everything but the second drift alert on churn
    assert [stored(factory, a).suppressed for a in (first, second, other_condition, other_model, *tests)] == \
        [False, True, False, False, False, False]
    view = stored(factory, second)
    assert view.status == "suppressed" and view.deliveries == []
    outcomes = {e.subject: e.details["outcome"] for e in events(factory, "alert.raised")}
    assert outcomes[f"alert:{second}"] == "suppressed (cooldown)"

    with transaction(factory) as s:  # once the cooldown has passed, the incident alerts again
        s.get(Alert, first).ts = utcnow() - timedelta(minutes=361)
    third = raise_alert(factory, settings)
    assert not stored(factory, third).suppressed and len(http.received("/s")) == 6


def test_cooldown_comes_from_the_models_policy(factory, settings, http):
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "policies.yaml").write_text(
        DEFAULT_POLICY_YAML + "  noisy:\n    alerts:\n      cooldown_minutes: 0\n")
    add(factory, settings, "hook", "slack", {"url": http.url("/s")})
    noisy = [raise_alert(factory, settings, model="noisy") for _ in range(2)]
    churn = [raise_alert(factory, settings, model="churn") for _ in range(2)]
    assert [stored(factory, a).suppressed for a in noisy + churn] == [False, False, False, True]


def test_disabled_channels_get_nothing_and_no_channel_still_stores_the_alert(factory, settings, http):
    channel = add(factory, settings, "hook", "slack", {"url": http.url("/s")}, enabled=False)
    alert_id = raise_alert(factory, settings)
    assert http.received() == [] and stored(factory, alert_id).status == "no channels"
    with transaction(factory) as s:
        channels.change_channel(s, actor=ADMIN, channel_id=channel.id, keys=secrets.load_keys(settings),
                                enabled=True)
    raise_alert(factory, settings, condition="performance")
    assert len(http.received("/s")) == 1


def test_only_admins_manage_channels_and_refusals_are_audited(factory, settings):
    with pytest.raises(PermissionDenied, match="may not alerts.manage"):
        add(factory, settings, "hook", "slack", {"url": "https://hooks.slack.com/services/x"},
            actor=Actor("ann", "approver"))
    [denied] = events(factory, "permission.denied")
    assert (denied.actor, denied.subject) == ("ann", "alert_channel:hook")
    with factory() as s:
        assert channels.channels(s, keys=secrets.load_keys(settings)) == []
    channel = add(factory, settings, "hook", "webhook", {"url": "https://example.com/in", "secret": SECRET})
    with pytest.raises(PermissionDenied):
        notify.send_test(factory, settings, actor=Actor("sam", "scientist"), channel_id=channel.id)
    with pytest.raises(PermissionDenied), transaction(factory) as s:
        channels.remove_channel(s, actor=Actor("vic", "viewer"), channel_id=channel.id,
                                keys=secrets.load_keys(settings))
    assert len(events(factory, "permission.denied")) == 3


def test_secrets_are_masked_in_views_and_audit_and_kept_on_edit(factory, settings):
    mail = add(factory, settings, "mail", "email", {
        "host": "smtp.example.com", "port": "587", "sender": "a@example.com",
        "to": ["b@example.com"], "starttls": True, "username": "bot",
        "password": "hunter2-hunter2"})
    hook = add(factory, settings, "hook", "webhook", {"url": "https://example.com/in", "secret": SECRET})
    assert mail.config["password"] == "••••••r2" and hook.config["secret"] == "••••••et"
    keys = secrets.load_keys(settings)
    with transaction(factory) as s:  # a blank secret keeps the stored one
        channels.change_channel(s, actor=ADMIN, channel_id=hook.id, keys=keys,
                                config={"url": "https://example.com/v2", "secret": ""})
        channels.remove_channel(s, actor=ADMIN, channel_id=mail.id, keys=keys)
    with factory() as s:
        stored_config = s.get(AlertChannel, hook.id).config
        texts = [e.details_json for e in s.query(AuditEvent)]
        [unopened] = channels.channels(s, keys=None)  # listed without the key: nothing sealed is shown
    assert secrets.unseal_config(stored_config, keys=keys) == {"url": "https://example.com/v2", "secret": SECRET}
    assert (unopened.name, unopened.config["secret"], unopened.target) == \
        ("hook", "(sealed)", "(sealed: the secret key cannot open it)")
    assert [e.action for e in events(factory, "alert_channel.added")] == ["alert_channel.added"] * 2
    assert len(events(factory, "alert_channel.changed")) == 1 and len(events(factory, "alert_channel.removed")) == 1
    assert not any(SECRET in t or "hunter2-hunter2" in t for t in texts)


@pytest.mark.parametrize(("kind", "config", "message"), [
    ("slack", {"url": "hooks.slack.com/x"}, "is not an http"),
    ("webhook", {"url": "https://x.example/in", "secret": "short"}, "at least 16 characters"),
    ("email", {"host": "", "to": "a@example.com", "sender": "b@example.com"}, "needs an SMTP host"),
    ("email", {"host": "h", "port": 70000, "to": "a@example.com", "sender": "b@example.com"}, "outside 1-65535"),
    ("email", {"host": "h", "to": "not-an-address", "sender": "b@example.com"}, "'not-an-address' is not an email"),
    ("email", {"host": "h", "to": "a@example.com", "sender": "b@example.com", "username": "u"}, "needs a password"),
    ("pager", {}, "kinds are: slack, webhook, email"),
])
def test_bad_channel_config_is_refused_with_a_reason(factory, settings, kind, config, message):
    with pytest.raises(InvalidInput, match=message):
        add(factory, settings, "c", kind, config)
    with factory() as s:
        assert channels.channels(s, keys=secrets.load_keys(settings)) == []
    assert events(factory, "alert_channel.added") == []


def test_duplicate_names_and_unknown_conditions_are_refused(factory, settings):
    add(factory, settings, "c", "slack", {"url": "https://x.example/a"})
    with pytest.raises(InvalidInput, match="already exists"):
        add(factory, settings, "c", "slack", {"url": "https://x.example/b"})
    with pytest.raises(InvalidInput, match="conditions are: drift"):
        notify.notify(factory, settings, condition="weather", model=None, title="t", message="m")


def test_send_test_is_synchronous_and_logs_in_to_smtp_after_starttls(factory, fast, http, tls_trusted):
    with SmtpReceiver(login=("bot", "hunter2-hunter2"), tls=tls_trusted.server_context()) as smtp:
        mail = add(factory, fast, "mail", "email", {
            "host": "127.0.0.1", "port": smtp.port, "sender": "a@example.com",
            "to": "b@example.com", "starttls": True, "username": "bot",
            "password": "hunter2-hunter2"}, enabled=False)
        result = notify.send_test(factory, fast, actor=ADMIN, channel_id=mail.id)
        assert result == notify.Delivery("mail", True, 1, "", 250)  # the receiver takes AUTH only after STARTTLS
        assert smtp.logins == ["bot"] and smtp.messages[0]["Subject"] == "[LeanOps] Test alert to mail"
    http.answer("/down", 503)
    hook = add(factory, fast, "hook", "webhook", {"url": http.url("/down"), "secret": SECRET})
    failed = notify.send_test(factory, fast, actor=ADMIN, channel_id=hook.id)
    assert (failed.ok, failed.attempts, failed.status) == (False, 3, 503)
    with factory() as s:
        tests = notify.recent(s)
    assert [(a.condition, a.status) for a in tests] == [("test", "failed"), ("test", "sent")]
    assert [e.actor for e in events(factory, "alert.raised")] == [ADMIN.name, ADMIN.name]


def test_smtps_logs_in_over_implicit_tls(factory, fast, tls_trusted):
    with SmtpReceiver(login=("bot", "hunter2-hunter2"), tls=tls_trusted.server_context(), implicit_tls=True) as smtp:
        mail = add(factory, fast, "mail", "email", {
            "host": "127.0.0.1", "port": smtp.port, "sender": "a@example.com",
            "to": "b@example.com", "ssl": True, "username": "bot",
            "password": "hunter2-hunter2"})
        assert notify.send_test(factory, fast, actor=ADMIN, channel_id=mail.id).ok
        assert smtp.logins == ["bot"] and len(smtp.messages) == 1


def test_an_smtp_password_is_never_sent_in_clear(factory, fast):
    config = {"host": "127.0.0.1", "sender": "a@example.com", "to": "b@example.com", "username": "bot",
              "password": "hunter2-hunter2"}
    with SmtpReceiver(login=("bot", "hunter2-hunter2")) as smtp:  # a server that would take AUTH in clear
        with pytest.raises(InvalidInput, match="needs TLS so the password is not sent in clear"):
            add(factory, fast, "mail", "email", config | {"port": smtp.port})
        with transaction(factory) as s:  # a channel stored before the rule, in plain text
            s.add(AlertChannel(name="old-mail", kind="email", created_by="admin", enabled=True,
                               config=config | {"port": smtp.port, "to": ["b@example.com"], "starttls": False}))
        with factory() as s:
            old = s.query(AlertChannel).filter_by(name="old-mail").one()
        result = notify.send_test(factory, fast, actor=ADMIN, channel_id=old.id)
        assert (result.ok, result.attempts) == (False, 1)
        assert "without TLS would send the password in clear" in result.error
        assert smtp.attempts == [] and smtp.messages == []


def test_a_server_without_starttls_gets_no_login(factory, fast, tls_trusted):
    with SmtpReceiver(login=("bot", "hunter2-hunter2")) as smtp:  # offers no STARTTLS
        mail = add(factory, fast, "mail", "email", {
            "host": "127.0.0.1", "port": smtp.port, "sender": "a@example.com",
            "to": "b@example.com", "starttls": True, "username": "bot",
            "password": "hunter2-hunter2"})
        result = notify.send_test(factory, fast, actor=ADMIN, channel_id=mail.id)
        assert not result.ok and "STARTTLS" in result.error
        assert smtp.attempts == []


def test_wrong_smtp_password_is_not_retried(factory, fast, tls_trusted):
    with SmtpReceiver(login=("bot", "right-password"), tls=tls_trusted.server_context()) as smtp:
        mail = add(factory, fast, "mail", "email", {
            "host": "127.0.0.1", "port": smtp.port, "sender": "a@example.com",
            "to": "b@example.com", "starttls": True, "username": "bot",
            "password": "wrong-password"})
        result = notify.send_test(factory, fast, actor=ADMIN, channel_id=mail.id)
        assert (result.ok, result.attempts, result.status) == (False, 1, 535)
        assert smtp.messages == []


# -- hooks ---------------------------------------------------------------------------------------

def test_a_failed_job_raises_a_job_failure_alert(factory, settings, http):
    add(factory, settings, "hook", "webhook", {"url": http.url("/hook"), "secret": SECRET})
    with transaction(factory) as s:
        audit.record(s, ADMIN, "test.event", "x", {})
    with transaction(factory) as s:  # break the chain so the verify job fails
        s.query(AuditEvent).filter_by(action="test.event").update({"subject": "tampered"})
    with transaction(factory) as s:
        job_id = job_queue.enqueue(s, actor=ADMIN, kind="audit.verify", params={}).id
    run_next(factory, settings, "w1")
    assert notify.wait_for_deliveries(60)
    with factory() as s:
        assert job_queue.get(s, job_id).status == "failed"
    [hook] = http.received("/hook")
    body = hook.json()
    assert (body["condition"], body["severity"]) == ("job_failure", "critical")
    # the title names the cause, in words
    assert body["title"].startswith(f"audit verification (job {job_id}) failed: audit chain broken: "
                                    "event 2 was altered")
    assert "audit chain broken" in body["message"] and body["details"]["job_id"] == job_id


def test_an_unreachable_channel_does_not_break_the_runner(factory, fast):
    add(factory, fast, "nowhere", "slack", {"url": "http://127.0.0.1:9/"})  # discard port: connection refused
    with transaction(factory) as s:
        job_id = job_queue.enqueue(s, actor=ADMIN, kind="train", params={"dataset": "missing:1", "target": "y"}).id
    assert run_next(factory, fast, "w1") == job_id
    assert notify.wait_for_deliveries(60)
    with factory() as s:
        [alert] = notify.recent(s)
        assert job_queue.get(s, job_id).status == "failed"
    assert (alert.condition, alert.model, alert.status) == ("job_failure", "missing", "failed")
    assert "cannot reach" in alert.deliveries[0]["error"]


def test_promotion_and_rollback_alert_after_commit(factory, settings, http):
    from tests.support import versions
    from tests.support.training import add_dataset, small_churn

    add_dataset(factory, settings, small_churn(2000))
    for spec in (versions.WEAKER, versions.STRONGER, versions.FAILING):  # really trained: v1, v2 pass; v3 fails
        versions.trained(factory, settings, model_name="m", **spec)
    add(factory, settings, "hook", "slack", {"url": http.url("/s")})
    approver = Actor("ann", "approver")
    for version in (1, 2):
        moves.promote(factory, settings, actor=approver, model="m", version=version, reason="better")
    moves.rollback(factory, settings, actor=approver, model="m", reason="live F1 dropped")
    with pytest.raises(gates.GatesFailed):  # a refused promotion alerts nobody
        moves.promote(factory, settings, actor=approver, model="m", version=3)
    assert notify.wait_for_deliveries(60)
    with factory() as s:
        raised = [(a.condition, a.title, a.suppressed) for a in reversed(notify.recent(s))]
    # production changes are events: never held back by a cooldown, and each title names who and why
    assert raised == [("promotion", "m: champion promoted v1 (first champion) by ann: better", False),
                      ("promotion", "m: champion promoted v1 → v2 by ann: better", False),
                      ("rollback", "m: champion rolled back v2 → v1 by ann: live F1 dropped", False)]
    texts = [r.json()["text"] for r in http.received("/s")]
    assert len(texts) == 3  # delivered from their own threads: in any order
    assert sum("Reason: live F1 dropped" in t for t in texts) == 1


def test_a_failed_certificate_alerts_once_the_registration_commits(factory, settings, http):
    from core.workspace.demo import churn_frame

    add(factory, settings, "hook", "webhook", {"url": http.url("/hook"), "secret": SECRET})

    def register(frame):
        with transaction(factory) as s:
            return datasets.register(s, actor=ADMIN, name="churn", data=frame, store=settings.home,
                                     settings=settings,
                                     source="test")

    register(churn_frame(rows=300, seed=1))
    bad = churn_frame(rows=300, seed=2)
    bad["customer_age"] = bad["customer_age"] * 12  # months instead of years
    with pytest.raises(RuntimeError), transaction(factory) as s:  # rolled back: no alert
        datasets.register(s, actor=ADMIN, name="churn", data=bad, store=settings.home, source="test",
                          settings=settings)
        raise RuntimeError("caller failed after registering")
    assert notify.wait_for_deliveries(60)
    with factory() as s:
        assert notify.recent(s) == []
    reg = register(bad)
    assert not reg.certificate.passed
    assert notify.wait_for_deliveries(60)
    [hook] = http.received("/hook")
    body = hook.json()
    assert (body["condition"], body["model"]) == ("certificate", "dataset:churn")
    assert body["title"].startswith("dataset churn:2's certificate failed (range customer_age: min 216")  # the cause
    assert body["details"]["failed_checks"] and "customer_age" in json.dumps(body["details"])
