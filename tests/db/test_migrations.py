"""Alembic owns the schema: migrations are repeatable and agree with db/models.py on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.platform.database import migrate, transaction
from db.models import AuditEvent, Base, Schedule, utcnow
from db.session import alembic_config, make_engine
from tests.support.factories import admin_actor

IGNORED_TABLES = {"apscheduler_jobs"}  # APScheduler creates and owns its job-store table


def head_revision(url: str) -> str:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_migrate_from_empty_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)
    migrate(url)
    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision(url)
        with engine.connect() as conn:
            # The seeded audit head must not be inserted a second time.
            assert conn.scalar(text("SELECT count(*) FROM audit_head")) == 1
    finally:
        engine.dispose()


def test_migrate_again_keeps_schema_and_data(db_url: str, engine: Engine,
                                             factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        audit.record(session, admin_actor(), "test.event", "subject", {"n": 1})
    tables_before = set(inspect(engine).get_table_names())

    migrate(db_url)

    assert current_revision(engine) == head_revision(db_url)
    engine.dispose()  # re-read the schema through fresh connections
    assert set(inspect(engine).get_table_names()) == tables_before
    with transaction(factory) as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1
        assert audit.verify(session).ok


def _include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    return not (type_ == "table" and name in IGNORED_TABLES)


def test_models_match_migrations(engine: Engine) -> None:
    # A real APScheduler job store table sits in production DBs; it must not count as drift.
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    SQLAlchemyJobStore(engine=engine).jobs_t.create(engine, checkfirst=True)

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": _include, "compare_type": True, "compare_server_default": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], "db/models.py and the migrations disagree; add a migration:\n" + "\n".join(map(str, diff))


def test_sqlite_pragmas(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    row = {"name": "orphan", "kind": "audit.verify", "params": {}, "cron": "0 0 * * *", "paused": False,
           "description": "", "last_job_id": 999_999, "updated_at": utcnow()}
    with pytest.raises(DBIntegrityError), engine.begin() as conn:
        conn.execute(insert(Schedule).values(**row))
