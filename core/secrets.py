"""Secrets at rest: source URLs and alert-channel secrets are sealed with Fernet under a key kept
outside the database, so a copy of the database (a backup, a dump, a read replica) holds no credential.

The key comes from ``LEANOPS_SECRET_KEY`` or, when that is unset, from the workspace file
``$LEANOPS_HOME/secret.key`` (written by ``cli.py init`` with 0600 permissions). Either may hold several
keys (comma- or line-separated): the first seals, every one unseals. That is how a key is rotated
(``cli.py rotate-secret-key``, see docs/security.md). A key is never printed, logged or put in a message.

A sealed value is stored as ``sealed:v1:<Fernet token>``. A value without that prefix is plain text
written before sealing existed: it is read as it is and sealed on its next write (or by
``rotate-secret-key``, which seals every stored secret at once).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import LeanOpsError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet
    from sqlalchemy.orm import Session, sessionmaker

    from core.actors import Actor
    from core.settings import Settings

PREFIX = "sealed:v1:"
KEY_FILE = "secret.key"
# The alert-channel config fields that are sealed: a webhook or Slack URL is itself a credential.
SEALED_CONFIG_KEYS = ("url", "secret", "password")
_NEW_KEY_HINT = ("make one with: python -c \"from cryptography.fernet import Fernet; "
                 "print(Fernet.generate_key().decode())\"")


class SecretKeyError(LeanOpsError):
    """The secret key is missing or malformed, or is not the key a stored secret was sealed with."""


@dataclass(frozen=True)
class Keyring:
    """The keys in use: the first seals, all unseal. ``source`` names where they came from (never the keys)."""

    fernet: MultiFernet
    source: str
    count: int


def key_path(settings: Settings) -> Path:
    return settings.home / KEY_FILE


def _split(text: str) -> list[str]:
    return [k.strip() for k in text.replace(",", "\n").splitlines() if k.strip()]


def keyring_from(keys: list[str], *, source: str) -> Keyring:
    """A keyring of ``keys`` (Fernet keys as text); a malformed one is named by position, never shown."""
    from cryptography.fernet import Fernet, MultiFernet

    if not keys:
        raise SecretKeyError(f"{source} holds no key; {_NEW_KEY_HINT}")
    fernets = []
    for n, key in enumerate(keys, 1):
        try:
            fernets.append(Fernet(key.encode()))
        except ValueError:
            raise SecretKeyError(f"key {n} of {len(keys)} in {source} is not a Fernet key (32 url-safe "
                                 f"base64-encoded bytes); {_NEW_KEY_HINT}") from None
    return Keyring(MultiFernet(fernets), source, len(fernets))


def load_keys(settings: Settings) -> Keyring:
    """The workspace's keys: ``LEANOPS_SECRET_KEY`` if set, else the workspace's ``secret.key``."""
    if settings.secret_key is not None:
        return keyring_from(_split(settings.secret_key.get_secret_value()), source="LEANOPS_SECRET_KEY")
    path = key_path(settings)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SecretKeyError(f"no secret key: LEANOPS_SECRET_KEY is not set and {path} does not exist. "
                             "Run `python cli.py init` to create the workspace key, or set LEANOPS_SECRET_KEY "
                             "to the key the stored secrets were sealed with") from None
    except OSError as exc:
        raise SecretKeyError(f"cannot read the secret key file {path}: {exc.strerror}") from None
    return keyring_from(_split(text), source=str(path))


def keys_if_any(settings: Settings) -> Keyring | None:
    """The workspace's keys, or None when there are none to load (for lists that show secrets masked)."""
    try:
        return load_keys(settings)
    except SecretKeyError:
        return None


def generate_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def write_key_file(settings: Settings, keys: list[str]) -> Path:
    """Write ``keys`` (first one seals) to the workspace key file: readable by its owner only, replaced
    atomically so a crash leaves the old file or the new one, never half of one."""
    path = key_path(settings)
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(keys) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)  # the umask may have narrowed it further, never widened: make it exact
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def ensure_key_file(settings: Settings) -> bool:
    """Create the workspace key file (0600) when it does not exist; True if it was created now."""
    if key_path(settings).exists():
        return False
    settings.home.mkdir(parents=True, exist_ok=True)
    write_key_file(settings, [generate_key()])
    return True


def workspace_keys(settings: Settings) -> Keyring:
    """The keys ``init`` works with: ``LEANOPS_SECRET_KEY`` if set, else the workspace file, created (0600)
    when it does not exist yet."""
    if settings.secret_key is None:
        ensure_key_file(settings)
    return load_keys(settings)


# -- sealing -------------------------------------------------------------------------------------

def is_sealed(stored: str) -> bool:
    return isinstance(stored, str) and stored.startswith(PREFIX)


def seal(text: str, *, keys: Keyring) -> str:
    """``text`` encrypted with the first key (a new random IV each time)."""
    return PREFIX + keys.fernet.encrypt(text.encode()).decode()


def unseal(stored: str, *, keys: Keyring, what: str = "a stored secret") -> str:
    """The plain text of a sealed value; a value stored before sealing existed is returned as it is."""
    if not is_sealed(stored):
        return stored
    from cryptography.fernet import InvalidToken

    ring = keys
    try:
        return ring.fernet.decrypt(stored.removeprefix(PREFIX).encode()).decode()
    except InvalidToken:
        raise SecretKeyError(f"{what} cannot be unsealed with the key from {ring.source}: it was sealed with "
                             "another key. Restore the key it was sealed with (LEANOPS_SECRET_KEY or the "
                             "workspace's secret.key), or enter the secret again") from None


def seal_config(config: Mapping[str, Any], *, keys: Keyring) -> dict[str, Any]:
    """An alert-channel config with its secret fields (``SEALED_CONFIG_KEYS``) sealed."""
    fields = [k for k in SEALED_CONFIG_KEYS if isinstance(config.get(k), str) and config[k]]
    return {k: seal(v, keys=keys) if k in fields and not is_sealed(v) else v for k, v in config.items()}


def unseal_config(config: Mapping[str, Any], *, keys: Keyring | None,
                  what: str = "an alert channel's secret") -> dict[str, Any]:
    """An alert-channel config as it was entered (every sealed field opened; ``keys`` may be None only
    for a config with nothing sealed)."""
    sealed = [k for k, v in config.items() if is_sealed(v)]
    if not sealed:
        return dict(config)
    if keys is None:
        raise SecretKeyError(f"{what} is sealed and no key was given to open it")
    return {k: unseal(v, keys=keys, what=what) if k in sealed else v for k, v in config.items()}


# -- rotation ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rotation:
    key: str  # where the sealing key lives (a path or LEANOPS_SECRET_KEY), never the key
    generated: bool  # a new key was written to the workspace file
    sources: list[str]
    channels: list[str]
    was_plain: int  # values stored in plain text before this run

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "generated": self.generated, "sources": self.sources, "channels": self.channels,
                "was_plain": self.was_plain}


def _plain_fields(config: Mapping[str, Any]) -> list[str]:
    return [k for k in SEALED_CONFIG_KEYS if isinstance(config.get(k), str) and config[k] and not is_sealed(config[k])]


def _reseal_rows(session: Session, ring: Keyring, *, only_plain: bool) -> tuple[list[str], list[str], int]:
    """Seal the stored secrets under ``ring``'s first key: every one, or only those still in plain text.
    Returns the sources and channels written and how many values were plain."""
    from sqlalchemy import select

    from db.models import AlertChannel, SourceDatabase

    plain, sources, channels = 0, [], []
    for src in session.scalars(select(SourceDatabase).order_by(SourceDatabase.id).with_for_update()):
        if only_plain and is_sealed(src.url):
            continue
        plain += not is_sealed(src.url)
        src.url = seal(unseal(src.url, keys=ring, what=f"the URL of source {src.name!r}"), keys=ring)
        sources.append(src.name)
    for channel in session.scalars(select(AlertChannel).order_by(AlertChannel.id).with_for_update()):
        fields = _plain_fields(channel.config)
        if only_plain and not fields:
            continue
        plain += len(fields)
        channel.config = seal_config(unseal_config(channel.config, keys=ring,
                                                   what=f"a secret of alert channel {channel.name!r}"), keys=ring)
        channels.append(channel.name)
    session.flush()
    return sources, channels, plain


def seal_plain(session: Session, *, actor: Actor, keys: Keyring) -> int:
    """Seal the secrets stored in plain text before sealing existed (``init`` runs this on every start, so
    an upgraded workspace holds no plain secret after its first start). Returns how many were sealed."""
    from core import audit

    sources, channels, plain = _reseal_rows(session, keys, only_plain=True)
    if plain:
        audit.record(session, actor, "secrets.sealed", "secrets",
                     {"sources": sources, "channels": channels, "values": plain})
    return plain


def _require_admin(session: Session, actor: Actor) -> None:
    """The stored secrets belong to sources and alert channels: rotating needs both permissions (admin)."""
    from core.accounts.auth import require

    require(session, actor, "sources.manage", "secrets")
    require(session, actor, "alerts.manage", "secrets")


def rotate_key(factory: sessionmaker[Session], settings: Settings, *, actor: Actor) -> Rotation:
    """Seal every stored secret under a new key (admin only), in one transaction.

    With the workspace key file: a new key is generated and written *in front of* the old ones, every
    secret is sealed again with it, and only after that commits is the file cut down to the new key —
    a crash at any point leaves a file that unseals everything. With ``LEANOPS_SECRET_KEY``: the
    operator puts the new key first in that list beforehand; this seals everything with it, and the
    old keys can then be removed from the list. Either way plain-text values from before are sealed too.
    """
    from core import audit
    from core.platform.database import transaction

    from_env = settings.secret_key is not None
    current = load_keys(settings)  # refuses a missing or malformed key before anything changes
    keys: list[str] = []
    if not from_env:
        old = _split(key_path(settings).read_text())
        keys = [generate_key(), *old]
        with transaction(factory) as session:  # refuse a non-admin before the key file changes
            _require_admin(session, actor)
        write_key_file(settings, keys)
        current = keyring_from(keys, source=str(key_path(settings)))
    with transaction(factory) as session:
        _require_admin(session, actor)
        sources, channels, plain = _reseal_rows(session, current, only_plain=False)
        audit.record(session, actor, "secrets.resealed", "secrets", {
            "key": current.source, "new_key": not from_env, "sources": sources, "channels": channels,
            "was_plain": plain})
    if not from_env:
        write_key_file(settings, keys[:1])
    return Rotation(current.source, not from_env, sources, channels, plain)
