"""Sending one alert to channels: Slack and webhook POSTs (the webhook HMAC-signed), email over SMTP,
each with a per-attempt timeout and a few retries with exponential backoff. No database here.

Alert URLs are checked where they are used (``core.alerts.addresses``): the host is resolved, a loopback,
link-local or metadata address is refused unless allow-listed, and the request goes to the address that
was checked (not a second lookup, which a DNS answer could change in between). Redirects are never
followed: a receiver could otherwise bounce the alert to an internal address. SMTP logs in only over
TLS (STARTTLS or SMTPS), so a password never crosses the network in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from core import secrets
from core.alerts.addresses import Allowed, Refused, parse_allowed, resolve
from core.settings import Settings

log = logging.getLogger("leanops.alerts")
RETRY_STATUSES = {408, 425, 429}  # and every 5xx; other 4xx answers will not change on a retry


@dataclass(frozen=True)
class Delivery:
    """How sending one alert to one channel went."""

    channel: str
    ok: bool
    attempts: int
    error: str = ""
    status: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Target:
    """What a delivery thread needs of a channel (no ORM objects cross threads)."""

    name: str
    kind: str
    config: dict[str, Any]


def target_text(kind: str, config: dict[str, Any]) -> str:
    """Where a channel sends, safe to show: a URL's scheme, host and port only (its path and query may be
    the credential, as in a Slack webhook); never a user or password."""
    if kind == "email":
        return f"{', '.join(config['to'])} via {config['host']}:{config['port']}"
    try:
        url = urlsplit(config["url"])
        host, port = url.hostname or "", url.port
    except ValueError:
        return "(not a URL)"
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    rest = "/…" if url.path not in ("", "/") or url.query else ""
    return f"{url.scheme}://{netloc}{rest}"


def deliver(targets: list[Target], payload: dict[str, Any], settings: Settings) -> list[Delivery]:
    """Send ``payload`` to every target at once; each gets its retries; none stops the others."""
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="alert-send") as pool:
        return list(pool.map(lambda t: with_retries(t, payload, settings), targets))


def with_retries(target: Target, payload: dict[str, Any], settings: Settings) -> Delivery:
    """Send to one channel (its config as stored: sealed secrets are opened here, in the sending thread)."""
    attempts, wait = max(int(settings.alert_retries), 1), float(settings.alert_backoff_seconds)
    error, status = "", None
    try:
        config = secrets.unseal_config(target.config, keys=secrets.load_keys(settings) if any(
            secrets.is_sealed(v) for v in target.config.values()) else None,
            what=f"a secret of alert channel {target.name!r}")
        allowed = parse_allowed(settings.alert_allowed_hosts)
    except (secrets.SecretKeyError, ValueError) as exc:
        log.warning("alert %s to channel %s not sent: %s", payload["id"], target.name, exc)
        return Delivery(target.name, False, 1, str(exc))
    opened = Target(target.name, target.kind, config)
    for attempt in range(1, attempts + 1):
        try:
            status = _send(opened, payload, timeout=float(settings.alert_timeout_seconds), allowed=allowed)
            return Delivery(target.name, True, attempt, "", status)
        except _Failed as exc:
            error, status = str(exc), exc.status
            if not exc.retry:
                return Delivery(target.name, False, attempt, error, status)
        if attempt < attempts:
            time.sleep(wait)
            wait *= 2
    log.warning("alert %s to channel %s failed after %d attempts: %s", payload["id"], target.name, attempts, error)
    return Delivery(target.name, False, attempts, error, status)


class _Failed(Exception):
    def __init__(self, message: str, *, status: int | None = None, retry: bool = True) -> None:
        super().__init__(message)
        self.status, self.retry = status, retry


def text_of(payload: dict[str, Any]) -> str:
    """The plain-text form of an alert (Slack text, email body)."""
    head = f"[LeanOps] {payload['severity'].upper()} · {payload['condition']}"
    if payload.get("model"):
        head += f" · {payload['model']}"
    lines = [head, payload["title"], "", payload["message"]]
    details = payload.get("details") or {}
    if details:
        lines += ["", *(f"{k}: {json.dumps(v, default=str) if isinstance(v, dict | list) else v}"
                        for k, v in details.items())]
    lines += ["", f"alert {payload['id']} at {payload['ts']}"]
    return "\n".join(lines)


def sign(secret: str, body: bytes) -> str:
    """The X-LeanOps-Signature value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _send(target: Target, payload: dict[str, Any], *, timeout: float, allowed: Allowed) -> int | None:
    if target.kind == "email":
        return _send_email(target.config, payload, timeout=timeout)
    headers = {"Content-Type": "application/json", "User-Agent": "LeanOps-alerts"}
    if target.kind == "slack":
        body = json.dumps({"text": text_of(payload)}).encode()
    else:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        headers["X-LeanOps-Timestamp"] = str(payload["timestamp"])
        headers["X-LeanOps-Signature"] = sign(target.config["secret"], body)
    return _post(target, body, headers, timeout=timeout, allowed=allowed)


def _post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float, allowed: Allowed) -> int:
    """POST ``body`` to the channel's URL at the one address that was checked; no redirects, no proxies."""
    import httpx

    where = target_text(target.kind, target.config)
    try:
        url = urlsplit(target.config["url"])
        host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        raise _Failed(f"{where}: not a URL", retry=False) from None
    if url.scheme not in ("http", "https") or not host:
        raise _Failed(f"{where}: not an http(s) URL", retry=False)
    try:
        address = resolve(host, port, allowed)
    except Refused as exc:
        raise _Failed(f"{where}: {exc}", retry=False) from None
    except OSError as exc:
        raise _Failed(f"cannot reach {where}: cannot resolve {host} ({exc.strerror or exc})") from None
    pinned = f"[{address}]" if address.version == 6 else str(address)
    request_url = url._replace(netloc=f"{pinned}:{port}").geturl()
    named = f"[{host}]" if ":" in host else host
    headers = headers | {"Host": named if url.port is None else f"{named}:{url.port}"}
    auth: tuple[str, str] | httpx._client.UseClientDefault = httpx.USE_CLIENT_DEFAULT
    if url.username:  # user:password@ in the URL is HTTP basic auth, as any HTTP client reads it
        auth = (unquote(url.username), unquote(url.password or ""))
    # sni_hostname: TLS is checked against the name in the URL, although the connection goes to an address
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            response = client.post(request_url, content=body, headers=headers, auth=auth, extensions=extensions)
    except httpx.TimeoutException:
        raise _Failed(f"no answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise _Failed(f"cannot reach {where}: {exc}") from None
    code = response.status_code
    if 300 <= code < 400:
        raise _Failed(f"HTTP {code} {response.reason_phrase}: the receiver redirects, and alerts follow no "
                      "redirects; give the channel the final URL", status=code, retry=False)
    if code >= 400:
        raise _Failed(f"HTTP {code} {response.reason_phrase}", status=code,
                      retry=code >= 500 or code in RETRY_STATUSES)
    return code


def _send_email(config: dict[str, Any], payload: dict[str, Any], *, timeout: float) -> int | None:
    msg = EmailMessage()
    msg["Subject"] = f"[LeanOps] {payload['title']}"
    msg["From"] = config["sender"]
    msg["To"] = ", ".join(config["to"])
    msg["X-LeanOps-Alert"] = str(payload["id"])
    msg.set_content(text_of(payload))
    implicit_tls, starttls = bool(config.get("ssl")), bool(config.get("starttls"))
    if config.get("username") and not (implicit_tls or starttls):
        # a channel stored before this rule: never send its password in clear
        raise _Failed(f"refused: SMTP login to {config['host']}:{config['port']} without TLS would send the password "
                      "in clear; turn on STARTTLS or SMTPS for this channel", retry=False)
    context = ssl.create_default_context()
    try:
        smtp = (smtplib.SMTP_SSL(config["host"], int(config["port"]), timeout=timeout, context=context)
                if implicit_tls else smtplib.SMTP(config["host"], int(config["port"]), timeout=timeout))
        with smtp:
            if starttls and not implicit_tls:
                smtp.starttls(context=context)
            if config.get("username"):
                smtp.login(config["username"], config["password"])
            refused = smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise _Failed(f"SMTP login refused ({exc.smtp_code})", status=exc.smtp_code, retry=False) from None
    except smtplib.SMTPResponseException as exc:
        raise _Failed(f"SMTP {exc.smtp_code} {exc.smtp_error!r}", status=exc.smtp_code,
                      retry=exc.smtp_code >= 400 and exc.smtp_code < 500) from None
    except TimeoutError:
        raise _Failed(f"no answer within {timeout:g} s") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise _Failed(f"SMTP {config['host']}:{config['port']}: {exc}") from None
    if refused:
        raise _Failed(f"recipients refused: {', '.join(refused)}", retry=False)
    return 250
