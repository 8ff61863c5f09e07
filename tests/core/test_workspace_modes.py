"""Workspace files are the owner's alone (issue 27 item 6): whatever the umask, `init` leaves the workspace
folder 0700 and LeanOps' own files in it 0600 (the SQLite DB, the secret and audit keys, the checkpoint log,
which is also created 0600 when a checkpoint is first written)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from core import audit_checkpoints
from core.settings import get_settings
from core.workspace.bootstrap import init_workspace
from db.session import make_engine, make_session_factory
from tests.support.factories import admin_actor


def _mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_init_leaves_the_workspace_and_its_files_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    settings = get_settings(home=home, db_url=f"sqlite:///{home}/leanops.db", scheduler="off",
                            admin_password="admin-pass-123")
    old = os.umask(0o022)  # a common default: files 0644, folders 0755
    try:
        home.mkdir()
        engine = make_engine(settings.db_url)
        try:
            factory = make_session_factory(engine)
            init_workspace(factory, settings, demo=False)
            audit_checkpoints.write(factory, settings, actor=admin_actor())
        finally:
            engine.dispose()
    finally:
        os.umask(old)
    assert _mode(home) == "0o700"
    for name in ("leanops.db", "audit.key", "audit-checkpoints.jsonl"):
        assert _mode(home / name) == "0o600", name
    others = [p.name for p in home.iterdir() if p.is_file() and stat.S_IMODE(p.stat().st_mode) & 0o077
              and p.name not in ("policies.yaml", "audit.pub")]  # what is meant to be read: still inside 0700
    assert not [n for n in others if n.startswith(("leanops.db", "secret", "audit"))], others
