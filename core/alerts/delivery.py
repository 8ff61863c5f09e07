"""Sending one alert to channels: Slack and webhook POSTs (the webhook HMAC-signed), email over SMTP,
each with a per-attempt timeout and a few retries with exponential backoff. No database here."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

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
    if kind == "email":
        return f"{', '.join(config['to'])} via {config['host']}:{config['port']}"
    url = urlsplit(config["url"])
    return f"{url.scheme}://{url.netloc}{'/…' if url.path not in ('', '/') else ''}"


def deliver(targets: list[Target], payload: dict[str, Any], settings: Settings) -> list[Delivery]:
    """Send ``payload`` to every target at once; each gets its retries; none stops the others."""
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="alert-send") as pool:
        return list(pool.map(lambda t: with_retries(t, payload, settings), targets))


def with_retries(target: Target, payload: dict[str, Any], settings: Settings) -> Delivery:
    attempts, wait = max(int(settings.alert_retries), 1), float(settings.alert_backoff_seconds)
    error, status = "", None
    for attempt in range(1, attempts + 1):
        try:
            status = _send(target, payload, timeout=float(settings.alert_timeout_seconds))
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


def _send(target: Target, payload: dict[str, Any], *, timeout: float) -> int | None:
    if target.kind == "email":
        return _send_email(target.config, payload, timeout=timeout)
    headers = {"Content-Type": "application/json", "User-Agent": "LeanOps-alerts"}
    if target.kind == "slack":
        body = json.dumps({"text": text_of(payload)}).encode()
    else:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        headers["X-LeanOps-Timestamp"] = str(payload["timestamp"])
        headers["X-LeanOps-Signature"] = sign(target.config["secret"], body)
    request = urllib.request.Request(target.config["url"], data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - admin-set http(s) URL
            return response.status
    except urllib.error.HTTPError as exc:
        raise _Failed(f"HTTP {exc.code} {exc.reason}", status=exc.code,
                      retry=exc.code >= 500 or exc.code in RETRY_STATUSES) from None
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
            raise _Failed(f"no answer within {timeout:g} s") from None
        raise _Failed(f"cannot reach {target_text(target.kind, target.config)}: {reason}") from None


def _send_email(config: dict[str, Any], payload: dict[str, Any], *, timeout: float) -> int | None:
    msg = EmailMessage()
    msg["Subject"] = f"[LeanOps] {payload['title']}"
    msg["From"] = config["sender"]
    msg["To"] = ", ".join(config["to"])
    msg["X-LeanOps-Alert"] = str(payload["id"])
    msg.set_content(text_of(payload))
    try:
        with smtplib.SMTP(config["host"], int(config["port"]), timeout=timeout) as smtp:
            if config.get("starttls"):
                smtp.starttls(context=ssl.create_default_context())
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
