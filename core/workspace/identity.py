"""A workspace's id: a random name kept in ``HOME/workspace.id``, made once, never changed.

Issue 26 item 9 / issue 29 item 2: ``make run`` starts an API and must know that the process answering
on its port is the one it started on its workspace, not another program (or another LeanOps) that
held the port. ``cli.py init`` prints the id; the API answers it in ``/health/ready``;
the launcher compares the two. The id says nothing secret: it only tells workspaces apart.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core.settings import Settings

FILE = "workspace.id"


def workspace_id(settings: Settings) -> str:
    """The workspace's id, made now when it has none (atomically: two processes starting at once read one id)."""
    path = settings.home / FILE
    found = _read(path)
    if found:
        return found
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_text(secrets.token_hex(8) + "\n")
    try:
        os.link(tmp, path)  # fails when another process made it first: then theirs is the id
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read(path) or ""


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
