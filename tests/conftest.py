"""Shared fixtures: a migrated metadata DB on SQLite and on PostgreSQL, settings, engine, session factory.

Migrations run once per test session into a template (a SQLite file, a PostgreSQL template database);
each test gets its own copy, so tests never share rows and never pay for Alembic.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.platform.database import migrate
from core.settings import Settings, get_settings
from db.session import make_engine, make_session_factory

TEST_SECRET_KEY = "mFQ0sZ9wKq0x3pY5ZJt2p2b8kQ6rGZ3mYzq3tOGmXkU="  # a Fernet key for tests only


@pytest.fixture(autouse=True)
def _no_leanops_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own LEANOPS_* variables must not leak into the settings under test."""
    for name in list(os.environ):
        if name.startswith("LEANOPS_") and name != "LEANOPS_TEST_PG_URL":
            monkeypatch.delenv(name)
    # Secrets are sealed with LEANOPS_SECRET_KEY (else the workspace's key file): in-process tests share this
    # one, so a channel sealed by core code the test calls opens in the settings the test hands around.
    monkeypatch.setenv("LEANOPS_SECRET_KEY", TEST_SECRET_KEY)
    # mlflow.set_tracking_uri/set_registry_uri export these: an earlier test's store must not reach
    # the processes this test starts (they would look for models in the wrong registry).
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


@pytest.fixture(autouse=True)
def _no_sweep_outlives_its_test() -> Iterator[None]:
    """A page run in-process starts the housekeeping sweep of its test's database; left running, it logs a
    failure with a traceback each pass once that database is dropped, and Python 3.11's traceback formatting
    calls ``ast.parse``, whose depth counter is shared between threads (a SystemError in another test)."""
    yield
    from jobs import housekeeping

    housekeeping.stop_all()


# -- SQLite --------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "leanops.db"
    migrate(f"sqlite:///{path}")
    # Fold the WAL into the main file so a plain file copy is the whole database.
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """A freshly migrated SQLite database of this test's own."""
    path = tmp_path / "db" / "leanops.db"
    path.parent.mkdir()
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


# -- PostgreSQL ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL server's URL from LEANOPS_TEST_PG_URL: skipped locally when unset, an error in CI."""
    url = os.environ.get("LEANOPS_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("LEANOPS_TEST_PG_URL not set in CI")
        pytest.skip("LEANOPS_TEST_PG_URL not set; PostgreSQL variants skipped")
    return url


def _pg_admin(sa_url: str) -> Any:  # a psycopg connection (psycopg imported lazily)
    """An autocommit psycopg connection to the server (CREATE/DROP DATABASE can't run in a transaction)."""
    import psycopg

    dsn = make_url(sa_url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(dsn, autocommit=True)


def _with_database(sa_url: str, name: str) -> str:
    return make_url(sa_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _pg_template(pg_url: str) -> Iterator[str]:
    # Named per session: two test runs may share one server (a developer's and an agent's, say).
    name = f"leanops_tmpl_{uuid.uuid4().hex[:8]}"
    with _pg_admin(pg_url) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    migrate(_with_database(pg_url, name))  # disposes its engine, so the template has no sessions
    yield name
    with _pg_admin(pg_url) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def _pg_database(pg_url: str, _pg_template: str) -> Iterator[str]:
    """A freshly migrated PostgreSQL database of this test's own, dropped afterwards."""
    name = f"leanops_t_{uuid.uuid4().hex[:12]}"
    with _pg_admin(pg_url) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {_pg_template}")
    yield _with_database(pg_url, name)
    # Fixtures that use this one (engine) are torn down first; FORCE ends whatever a test left open.
    with _pg_admin(pg_url) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- both backends -------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest) -> str:
    """A freshly migrated metadata DB; every test using it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("_pg_database")


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return get_settings(home=tmp_path / "ws", db_url=db_url, scheduler="off", admin_user="admin",
                        admin_password="admin-pass-123")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)
