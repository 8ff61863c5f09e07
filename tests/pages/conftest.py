"""AppTest fixtures: a page runs in-process against this test's workspace, signed in as a role."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.accounts import auth
from core.actors import cli_actor
from core.platform.database import transaction

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, settings, factory):
    """Point the dashboard's settings at this test's workspace; fresh caches on both sides."""
    monkeypatch.setenv("LEANOPS_HOME", str(settings.home))
    monkeypatch.setenv("LEANOPS_DB_URL", settings.db_url)
    monkeypatch.setenv("LEANOPS_SCHEDULER", "off")
    monkeypatch.setenv("LEANOPS_ADMIN_PASSWORD", "admin-pass-123")
    st.cache_resource.clear()
    st.cache_data.clear()
    yield settings
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def open_page(app_env, factory) -> Callable[..., AppTest]:
    """open_page("app_pages/jobs.py", role="viewer") → a run AppTest signed in as a user of that role."""
    made: dict[str, int] = {}

    def _open(path: str, *, role: str = "admin", run: bool = True) -> AppTest:
        if role not in made:
            with transaction(factory) as s:
                made[role] = auth.create_user(s, actor=cli_actor(), username=f"{role}-user", role=role,
                                              password="password-123", must_change_password=False).id
        at = AppTest.from_file(str(ROOT / path), default_timeout=60)
        at.session_state["user_id"] = made[role]
        at.session_state["last_seen"] = time.time()
        return at.run() if run else at

    return _open
