"""Source databases an admin configured by URL; a SQL query against one becomes a dataset version.

Queries run on a read-only connection (PostgreSQL: ``default_transaction_read_only`` and a
statement timeout; SQLite: the file opened with ``mode=ro``), through the driver's own cursor so
the SQL reaches the database exactly as typed (``%`` and ``::`` included).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from core import audit
from core.actors import Actor
from core.auth import require
from core.data import datasets
from core.errors import InvalidInput, NotFound
from db.models import SourceDatabase

MAX_ROWS = 5_000_000
TIMEOUT_S = 300


@dataclass(frozen=True)
class SourceView:
    name: str
    url: str  # the password is masked
    description: str
    created_by: str
    created_at: datetime


def mask(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"


def _check_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInput(f"source URL {mask(url)!r} is not a database URL; expected e.g. "
                           "postgresql+psycopg://reader@host/db or sqlite:////path/data.db") from None
    backend = parsed.get_backend_name()
    if backend not in {"postgresql", "sqlite"}:
        raise InvalidInput(f"source backend {backend!r} is not supported; use postgresql or sqlite")
    if backend == "sqlite" and not parsed.database:
        raise InvalidInput("a SQLite source needs a file path, e.g. sqlite:////data/warehouse.db")
    return url


def add_source(session: Session, *, actor: Actor, name: str, url: str, description: str = "") -> SourceView:
    require(session, actor, "sources.manage", f"source:{name}")
    datasets.check_name(name)
    _check_url(url.strip())
    if session.scalar(select(SourceDatabase.id).where(SourceDatabase.name == name)) is not None:
        raise InvalidInput(f"a source named {name!r} already exists")
    row = SourceDatabase(name=name, url=url.strip(), description=description[:255], created_by=actor.name)
    session.add(row)
    session.flush()
    audit.record(session, actor, "source.added", f"source:{name}", {"url": mask(row.url)})
    return _view(row)


def remove_source(session: Session, *, actor: Actor, name: str) -> None:
    require(session, actor, "sources.manage", f"source:{name}")
    row = _get(session, name)
    session.delete(row)
    audit.record(session, actor, "source.removed", f"source:{name}", {"url": mask(row.url)})


def list_sources(session: Session) -> list[SourceView]:
    return [_view(r) for r in session.scalars(select(SourceDatabase).order_by(SourceDatabase.name))]


def _get(session: Session, name: str) -> SourceDatabase:
    row = session.scalar(select(SourceDatabase).where(SourceDatabase.name == name))
    if row is None:
        names = session.scalars(select(SourceDatabase.name).order_by(SourceDatabase.name)).all()
        known = f"sources are: {', '.join(names)}" if names else "no source is configured (an admin adds them)"
        raise NotFound(f"no source database named {name!r}; {known}")
    return row


def _view(row: SourceDatabase) -> SourceView:
    return SourceView(name=row.name, url=mask(row.url), description=row.description, created_by=row.created_by,
                      created_at=row.created_at)


def run_query(*, url: str, sql: str, label: str = "the source", max_rows: int = MAX_ROWS,
              timeout_s: int = TIMEOUT_S) -> pd.DataFrame:
    """Run one read-only query; a database error becomes ``InvalidInput`` with its first line."""
    sql = (sql or "").strip().rstrip(";").strip()
    if not sql:
        raise InvalidInput("the SQL query is empty; write a SELECT")
    conn, errors = _connect(url, label=label, timeout_s=timeout_s)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        if cur.description is None:
            raise InvalidInput(f"the statement returned no rows to register on {label}; write a SELECT")
        names = [d[0] for d in cur.description]
        rows = cur.fetchmany(max_rows + 1)
    except errors as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidInput(f"the query failed on {label}: {first}") from None
    finally:
        conn.close()
    if len(rows) > max_rows:
        raise InvalidInput(f"the query returned more than {max_rows} rows; narrow it with WHERE or LIMIT")
    return pd.DataFrame.from_records(rows, columns=names)


def _connect(url: str, *, label: str, timeout_s: int) -> tuple[Any, type[Exception]]:
    """A read-only DB-API connection and the driver's error class."""
    parsed = make_url(_check_url(url))
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database  # _check_url requires a file path for SQLite
        path = Path(parsed.database)
        if not path.is_file():
            raise InvalidInput(f"{label}: the SQLite file {path} does not exist")
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=timeout_s)
        conn.execute("PRAGMA query_only = ON")
        return conn, sqlite3.Error
    import psycopg

    try:
        pg = psycopg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                             options=f"-c default_transaction_read_only=on -c statement_timeout={timeout_s * 1000}",
                             connect_timeout=10)
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidInput(f"cannot connect to {label}: {first}") from None
    pg.read_only = True
    return pg, psycopg.Error


def register_query(session: Session, *, actor: Actor, source: str, sql: str, name: str, store_root: Path,
                   description: str = "", max_rows: int = MAX_ROWS) -> datasets.Registration:
    """Run ``sql`` on the configured source (read-only) and register the result as a version of ``name``."""
    require(session, actor, "datasets.write", f"dataset:{name}")
    datasets.check_name(name)
    row = _get(session, source)
    frame = run_query(url=row.url, sql=sql, label=f"source {source!r}", max_rows=max_rows)
    return datasets.register(session, actor=actor, name=name, data=frame, store_root=store_root,
                             source=f"sql:{source}", source_query=sql.strip(), description=description,
                             filename=f"the result of the query on {source!r}")
