"""Alert channels (Slack, HMAC-signed webhook, email): added, changed and removed by admins; their
URLs, HMAC secrets and SMTP passwords are sealed at rest (``core.secrets``) and masked in every view and
audit row (a Slack webhook URL is itself a credential); ``core.alerts.notify`` sends to the enabled ones."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit, secrets
from core.accounts.auth import require
from core.actors import Actor
from core.alerts.delivery import target_text
from core.errors import InvalidInput, NotFound
from db.models import AlertChannel

log = logging.getLogger("leanops.alerts")
KINDS = ("slack", "webhook", "email")
SECRET_KEYS = ("secret", "password")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
EMAIL_RE = re.compile(r"^[^@\s,;]+@[^@\s,;]+$")


# -- views ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChannelView:
    """A channel as pages and the CLI see it: secrets masked."""

    id: int
    name: str
    kind: str
    enabled: bool
    config: dict[str, Any]
    target: str
    created_by: str
    created_at: datetime


def _mask(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (opened) as views and audit rows show it: secrets as dots, a URL as its host only."""
    shown = {k: (("•" * 6 + str(v)[-2:] if len(str(v)) > 8 else "•" * 6) if k in SECRET_KEYS and v else v)
             for k, v in config.items()}
    if "url" in shown:
        shown["url"] = target_text(kind, config)
    return shown


def _opened(row: AlertChannel, keys: secrets.Keyring | None) -> dict[str, Any]:
    return secrets.unseal_config(row.config, keys=keys, what=f"a secret of alert channel {row.name!r}")


def _channel_view(row: AlertChannel, keys: secrets.Keyring | None) -> ChannelView:
    try:
        config = _opened(row, keys)
    except secrets.SecretKeyError as exc:  # the list still shows; sending says the same thing
        log.warning("alert channel %s: %s", row.name, exc)
        return ChannelView(id=row.id, name=row.name, kind=row.kind, enabled=row.enabled,
                           config={k: "(sealed)" if secrets.is_sealed(v) else v for k, v in row.config.items()},
                           target="(sealed: the secret key cannot open it)", created_by=row.created_by,
                           created_at=row.created_at)
    return ChannelView(id=row.id, name=row.name, kind=row.kind, enabled=row.enabled, config=_mask(row.kind, config),
                       target=target_text(row.kind, config), created_by=row.created_by, created_at=row.created_at)


# -- channels ------------------------------------------------------------------------------------

def _check_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"webhook URL {url!r} is not an http(s) URL")
    return url


def _check_config(kind: str, config: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    """A clean config for ``kind``; a blank secret keeps ``old``'s (so edits need not retype it)."""
    old = old or {}
    if kind == "slack":
        return {"url": _check_url(config.get("url", ""))}
    if kind == "webhook":
        secret = str(config.get("secret") or old.get("secret") or "")
        if len(secret) < 16:
            raise InvalidInput(f"a webhook secret needs at least 16 characters (got {len(secret)})")
        return {"url": _check_url(config.get("url", "")), "secret": secret}
    host = str(config.get("host") or "").strip()
    if not host:
        raise InvalidInput("an email channel needs an SMTP host")
    try:
        port = int(config.get("port") or 25)
    except (TypeError, ValueError):
        raise InvalidInput(f"SMTP port {config.get('port')!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise InvalidInput(f"SMTP port {port} is outside 1-65535")
    to = config.get("to") or []
    to = [a.strip() for a in (re.split(r"[,;\s]+", to) if isinstance(to, str) else to) if a.strip()]
    sender = str(config.get("sender") or "").strip()
    for address in [sender, *to]:
        if not EMAIL_RE.match(address):
            raise InvalidInput(f"{address!r} is not an email address")
    if not to:
        raise InvalidInput("an email channel needs at least one recipient")
    username = str(config.get("username") or "").strip()
    password = str(config.get("password") or old.get("password") or "") if username else ""
    if username and not password:
        raise InvalidInput(f"SMTP login {username!r} needs a password")
    implicit_tls = bool(config["ssl"]) if "ssl" in config else port == 465
    starttls = bool(config.get("starttls")) and not implicit_tls
    if username and not (implicit_tls or starttls):
        raise InvalidInput(f"SMTP login {username!r} needs TLS so the password is not sent in clear: turn on "
                           "STARTTLS, or use SMTPS (implicit TLS, usually port 465)")
    return {"host": host, "port": port, "sender": sender, "to": to, "starttls": starttls, "ssl": implicit_tls,
            "username": username, "password": password}


def _get_channel(session: Session, channel_id: int) -> AlertChannel:
    row = session.get(AlertChannel, channel_id)
    if row is None:
        raise NotFound(f"no alert channel with id {channel_id}")
    return row


def add_channel(session: Session, *, actor: Actor, name: str, kind: str, config: dict[str, Any],
                keys: secrets.Keyring, enabled: bool = True) -> ChannelView:
    """A new channel (admin only). ``config``: slack {url}; webhook {url, secret}; email {host, port,
    sender, to, starttls, username, password}."""
    require(session, actor, "alerts.manage", f"alert_channel:{name}")
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise InvalidInput(f"channel name {name!r} is not allowed: use 1-64 letters, digits, spaces, '.', '_' or '-'")
    if kind not in KINDS:
        raise InvalidInput(f"channel kind {kind!r} is unknown; kinds are: {', '.join(KINDS)}")
    if session.scalar(select(AlertChannel.id).where(AlertChannel.name == name)) is not None:
        raise InvalidInput(f"an alert channel named {name!r} already exists")
    clean = _check_config(kind, config)
    row = AlertChannel(name=name, kind=kind, config=secrets.seal_config(clean, keys=keys), enabled=enabled,
                       created_by=actor.name)
    session.add(row)
    session.flush()
    audit.record(session, actor, "alert_channel.added", f"alert_channel:{name}",
                 {"id": row.id, "kind": kind, "enabled": enabled, "config": _mask(kind, clean)})
    return _channel_view(row, keys)


def change_channel(session: Session, *, actor: Actor, channel_id: int, keys: secrets.Keyring,
                   enabled: bool | None = None, config: dict[str, Any] | None = None) -> ChannelView:
    """Enable/disable a channel or replace its config (a blank secret keeps the stored one)."""
    require(session, actor, "alerts.manage", f"alert_channel:{channel_id}")
    row = _get_channel(session, channel_id)
    changes: dict[str, Any] = {}
    if enabled is not None and enabled != row.enabled:
        changes["enabled"] = {"from": row.enabled, "to": enabled}
        row.enabled = enabled
    if config is not None:
        old = _opened(row, keys)
        clean = _check_config(row.kind, config, old=old)
        if clean != old:
            changes["config"] = {"from": _mask(row.kind, old), "to": _mask(row.kind, clean)}
            row.config = secrets.seal_config(clean, keys=keys)
    if changes:
        row.config = secrets.seal_config(row.config, keys=keys)  # plain text from before: sealed now
        audit.record(session, actor, "alert_channel.changed", f"alert_channel:{row.name}", {"id": row.id, **changes})
    session.flush()
    return _channel_view(row, keys)


def remove_channel(session: Session, *, actor: Actor, channel_id: int, keys: secrets.Keyring | None) -> None:
    require(session, actor, "alerts.manage", f"alert_channel:{channel_id}")
    row = _get_channel(session, channel_id)
    audit.record(session, actor, "alert_channel.removed", f"alert_channel:{row.name}",
                 {"id": row.id, "kind": row.kind, "config": _channel_view(row, keys).config})
    session.delete(row)
    session.flush()


def channels(session: Session, *, keys: secrets.Keyring | None) -> list[ChannelView]:
    """Every channel, its secrets masked (``keys`` None: the sealed ones are not opened)."""
    return [_channel_view(r, keys) for r in session.scalars(select(AlertChannel).order_by(AlertChannel.name))]
