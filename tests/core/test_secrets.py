"""Secrets at rest (issue 14, item 7): sealing with LEANOPS_SECRET_KEY or the workspace key file, clear errors
for a missing or wrong key (never showing one), the key file made by init (0600), plain rows from before
sealed on init, and key rotation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select, text

from core import secrets
from core.actors import Actor, cli_actor, system_actor
from core.alerts import channels
from core.data import sources
from core.errors import PermissionDenied
from core.platform.database import transaction
from core.workspace.bootstrap import init_workspace
from db.models import AlertChannel, AuditEvent, SourceDatabase

ADMIN = cli_actor()
SECRET = "s3cret-s3cret-s3cret"


@pytest.fixture
def file_key(settings):
    """Settings without LEANOPS_SECRET_KEY: the workspace's key file holds the key (as after `cli.py init`).
    The test environment keeps its LEANOPS_SECRET_KEY: core must go by the settings it is given."""
    bare = settings.model_copy(update={"secret_key": None})
    assert secrets.ensure_key_file(bare)
    return bare


def stored_text(factory) -> str:
    with factory() as s:
        urls = [u for (u,) in s.execute(text("SELECT url FROM source_databases"))]
        configs = [str(c) for (c,) in s.execute(text("SELECT config FROM alert_channels"))]
    return " ".join(urls + configs)


def test_seal_and_unseal(settings):
    keys = secrets.load_keys(settings)
    url = "postgresql://u:hunter2-secret@h/db"  # a password no random base64 holds by chance ("pw" did, 3 % of runs)
    first, second = secrets.seal(url, keys=keys), secrets.seal(url, keys=keys)
    assert first != second and first.startswith(secrets.PREFIX) and "hunter2" not in first.removeprefix(secrets.PREFIX)
    assert secrets.unseal(first, keys=keys) == url
    assert secrets.unseal("sqlite:////data/old.db", keys=keys) == "sqlite:////data/old.db"  # plain, from before


def test_a_missing_key_is_a_clear_error(settings):
    bare = settings.model_copy(update={"secret_key": None})
    with pytest.raises(secrets.SecretKeyError, match=r"LEANOPS_SECRET_KEY is not set and .*secret.key does not exist. "
                                                     r"Run `python cli.py init`"):
        secrets.load_keys(bare)


def test_a_malformed_or_wrong_key_is_named_but_never_shown(settings):
    bad = "not-a-fernet-key-but-a-long-secret-value"
    with pytest.raises(secrets.SecretKeyError, match="key 2 of 2 in LEANOPS_SECRET_KEY is not a Fernet key") as exc:
        secrets.load_keys(settings.model_copy(update={"secret_key": SecretStr(f"{secrets.generate_key()},{bad}")}))
    assert bad not in str(exc.value)
    sealed = secrets.seal("hunter2-hunter2", keys=secrets.load_keys(settings))
    other = secrets.generate_key()
    with pytest.raises(secrets.SecretKeyError, match="the URL of source 'wh' cannot be unsealed with the key from "
                                                     "LEANOPS_SECRET_KEY: it was sealed with another key") as exc:
        secrets.unseal(sealed, keys=secrets.keyring_from([other], source="LEANOPS_SECRET_KEY"),
                       what="the URL of source 'wh'")
    assert other not in str(exc.value) and "hunter2" not in str(exc.value)


def test_init_writes_the_key_file_owner_only_and_keeps_it(factory, settings):
    settings = settings.model_copy(update={"secret_key": None})  # no LEANOPS_SECRET_KEY: init makes the file
    path = secrets.key_path(settings)
    umask = os.umask(0)  # a permissive umask must not make the file readable by others
    try:
        init_workspace(factory, settings, demo=False)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    secrets.keyring_from(first.split(), source="the file")  # a valid Fernet key
    init_workspace(factory, settings, demo=False)
    assert path.read_text() == first  # a second init keeps the key


def test_init_with_an_environment_key_writes_no_file(factory, settings):
    init_workspace(factory, settings, demo=False)
    assert not secrets.key_path(settings).exists()


def test_plain_rows_from_before_work_and_init_seals_them(factory, settings, tmp_path: Path):
    warehouse = tmp_path / "warehouse.db"
    import sqlite3

    with sqlite3.connect(warehouse) as conn:
        conn.execute("CREATE TABLE t (a INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    plain_url = f"sqlite:///{warehouse}?password=hunter2-hunter2"
    with transaction(factory) as s:  # as a version before sealing stored them
        s.add(SourceDatabase(name="wh", url=plain_url, created_by="admin"))
        s.add(AlertChannel(name="hook", kind="webhook", created_by="admin",
                           config={"url": "https://example.com/in", "secret": SECRET}))
    with factory() as s:
        shown = [v.url for v in sources.list_sources(s, keys=secrets.load_keys(settings))]
        assert shown == [f"sqlite:///{warehouse}?password=***"]
    with transaction(factory) as s:  # a plain row still works
        reg = sources.register_query(s, settings, actor=Actor("sam", "scientist"), source="wh",
                                     sql="select a from t", name="t")
    assert reg.version.rows == 1
    init_workspace(factory, settings, demo=False)
    assert "hunter2" not in stored_text(factory) and SECRET not in stored_text(factory)
    with factory() as s:
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "secrets.sealed")).all()
        assert s.scalar(select(SourceDatabase.url)).startswith(secrets.PREFIX)
    assert event.details == {"sources": ["wh"], "channels": ["hook"], "values": 3}
    init_workspace(factory, settings, demo=False)  # nothing left to seal: no second event
    with factory() as s:
        assert len(s.scalars(select(AuditEvent).where(AuditEvent.action == "secrets.sealed")).all()) == 1


def test_rotating_the_workspace_key(factory, file_key):
    settings = file_key
    with transaction(factory) as s:
        channels.add_channel(s, actor=ADMIN, name="hook", kind="webhook",
                             config={"url": "https://example.com/in", "secret": SECRET},
                             keys=secrets.load_keys(settings))
        s.add(SourceDatabase(name="old", url="postgresql://reader:pw-pw-pw@db.example/w", created_by="admin"))
    old_keys = secrets.load_keys(settings)
    rotation = secrets.rotate_key(factory, settings, actor=ADMIN)
    assert (rotation.generated, rotation.sources, rotation.channels, rotation.was_plain) == (True, ["old"], ["hook"], 1)
    path = secrets.key_path(settings)
    assert len(path.read_text().split()) == 1 and stat.S_IMODE(path.stat().st_mode) == 0o600
    new_keys = secrets.load_keys(settings)
    with factory() as s:
        config = s.scalar(select(AlertChannel.config))
        url = s.scalar(select(SourceDatabase.url))
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.action == "secrets.resealed")).all()
    assert secrets.unseal_config(config, keys=new_keys)["secret"] == SECRET
    assert secrets.unseal(url, keys=new_keys) == "postgresql://reader:pw-pw-pw@db.example/w"
    with pytest.raises(secrets.SecretKeyError):  # the old key no longer opens anything
        secrets.unseal(url, keys=old_keys)
    assert event.details["key"] == str(path) and path.read_text().strip() not in event.details_json


def test_rotating_an_environment_key_seals_with_its_first_key(factory, settings):
    with transaction(factory) as s:
        channels.add_channel(s, actor=ADMIN, name="hook", kind="webhook",
                             config={"url": "https://example.com/in", "secret": SECRET},
                             keys=secrets.load_keys(settings))
    old = settings.secret_key.get_secret_value()
    new = secrets.generate_key()
    both = settings.model_copy(update={"secret_key": SecretStr(f"{new},{old}")})  # the operator puts the new one first
    rotation = secrets.rotate_key(factory, both, actor=ADMIN)
    assert (rotation.key, rotation.generated, rotation.channels) == ("LEANOPS_SECRET_KEY", False, ["hook"])
    with factory() as s:
        config = s.scalar(select(AlertChannel.config))
    assert secrets.unseal_config(config, keys=secrets.keyring_from([new], source="new"))["secret"] == SECRET


def test_only_admins_rotate_and_a_refusal_changes_no_key(factory, file_key):
    before = secrets.key_path(file_key).read_text()
    with pytest.raises(PermissionDenied):
        secrets.rotate_key(factory, file_key, actor=Actor("ann", "approver"))
    assert secrets.key_path(file_key).read_text() == before
    secrets.rotate_key(factory, file_key, actor=system_actor("ops"))
    assert secrets.key_path(file_key).read_text() != before
