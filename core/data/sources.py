"""Source databases an admin configured by URL; a SQL query against one becomes a dataset version.

What keeps a query from writing (see docs/sources.md):

* PostgreSQL: the **database role is the boundary**. ``add_source`` connects and refuses a role that is a
  superuser, may create roles or databases, belongs to the server-file/program roles, may write any
  table or sequence, or may create in the database or its schemas; every query checks the role again.
  The query is sent with the extended protocol (one statement: ``SELECT 1; COMMIT; DELETE …`` is
  refused by the server), in a read-only transaction with a statement timeout, and its rows are
  streamed so the row cap holds before they are all in memory.
* SQLite: the file is opened read-only (``mode=ro``, ``query_only``) behind an authorizer that allows
  only reads (no ATTACH, VACUUM INTO, PRAGMA writes, temp tables or writes of any kind), a deadline
  enforced by the progress handler and a row cap. A file inside the workspace (LEANOPS_HOME) or one
  of LeanOps' own SQLite databases is never a source.

The SQL reaches the database exactly as typed (``%`` and ``::`` included).

A source URL may carry the role's password, so it is sealed at rest (``core.secrets``) and shown masked
everywhere (a ``password=`` query parameter too); a row from before sealing is sealed on its next write
or by ``cli.py rotate-secret-key``.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from core import audit, secrets
from core.accounts.auth import require
from core.actors import Actor
from core.data import datasets
from core.errors import InvalidInput, NotFound, redact
from core.settings import Settings
from db.models import SourceDatabase

MAX_ROWS = 5_000_000
TIMEOUT_S = 300
ROLE_CHECK_TIMEOUT_S = 30


@dataclass(frozen=True)
class SourceView:
    name: str
    url: str  # the password is masked
    description: str
    created_by: str
    created_at: datetime


def mask(url: str) -> str:
    """``url`` as it may be shown: the password in its user part and in its query (``?password=…``) as ``***``."""
    try:
        return redact(make_url(url).render_as_string(hide_password=True))
    except ArgumentError:
        return "(not a URL)"


def _url(row: SourceDatabase, keys: secrets.Keyring) -> str:
    return secrets.unseal(row.url, keys=keys, what=f"the URL of source {row.name!r}")


def _shown_url(row: SourceDatabase, keys: secrets.Keyring | None) -> str:
    """The masked URL, or a note when the key cannot open it (a list or a removal must not need the key)."""
    if keys is None:
        return "(sealed: the secret key cannot open it)"
    try:
        return mask(_url(row, keys))
    except secrets.SecretKeyError:
        return "(sealed: the secret key cannot open it)"


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


def add_source(session: Session, settings: Settings, *, actor: Actor, name: str, url: str,
               description: str = "") -> SourceView:
    """Configure a source. A PostgreSQL URL is connected to and its role checked (it must only read);
    a SQLite path must lie outside the workspace and be none of LeanOps' own databases."""
    require(session, actor, "sources.manage", f"source:{name}")
    datasets.check_name(name)
    url = url.strip()
    parsed = make_url(_check_url(url))
    if session.scalar(select(SourceDatabase.id).where(SourceDatabase.name == name)) is not None:
        raise InvalidInput(f"a source named {name!r} already exists")
    label = f"source {name!r}"
    if parsed.get_backend_name() == "sqlite":
        _sqlite_path(parsed, label=label, settings=settings)
    else:
        _check_pg_role(parsed, label=label)
    keys = secrets.load_keys(settings)
    row = SourceDatabase(name=name, url=secrets.seal(url, keys=keys), description=description[:255],
                         created_by=actor.name)
    session.add(row)
    session.flush()
    audit.record(session, actor, "source.added", f"source:{name}", {"url": mask(url)})
    return _view(row, keys)


def remove_source(session: Session, *, actor: Actor, name: str, keys: secrets.Keyring | None) -> None:
    """``keys``: to show the removed source's masked URL in the audit event (None: it is not opened)."""
    require(session, actor, "sources.manage", f"source:{name}")
    row = _get(session, name)
    session.delete(row)
    audit.record(session, actor, "source.removed", f"source:{name}", {"url": _shown_url(row, keys)})


def list_sources(session: Session, *, keys: secrets.Keyring | None) -> list[SourceView]:
    """Every source, its URL masked (None for ``keys``: not opened)."""
    return [_view(r, keys) for r in session.scalars(select(SourceDatabase).order_by(SourceDatabase.name))]


def _get(session: Session, name: str) -> SourceDatabase:
    row = session.scalar(select(SourceDatabase).where(SourceDatabase.name == name))
    if row is None:
        names = session.scalars(select(SourceDatabase.name).order_by(SourceDatabase.name)).all()
        known = f"sources are: {', '.join(names)}" if names else "no source is configured (an admin adds them)"
        raise NotFound(f"no source database named {name!r}; {known}")
    return row


def _view(row: SourceDatabase, keys: secrets.Keyring | None) -> SourceView:
    return SourceView(name=row.name, url=_shown_url(row, keys), description=row.description, created_by=row.created_by,
                      created_at=row.created_at)


def run_query(settings: Settings, *, url: str, sql: str, label: str = "the source", max_rows: int = MAX_ROWS,
              timeout_s: int = TIMEOUT_S) -> pd.DataFrame:
    """Run one read-only query; a database error becomes ``InvalidInput`` with its first line."""
    sql = (sql or "").strip().rstrip(";").strip()
    if not sql:
        raise InvalidInput("the SQL query is empty; write a SELECT")
    parsed = make_url(_check_url(url))
    if parsed.get_backend_name() == "sqlite":
        names, rows = _query_sqlite(parsed, sql, label=label, max_rows=max_rows, timeout_s=timeout_s,
                                     settings=settings)
    else:
        names, rows = _query_postgresql(parsed, sql, label=label, max_rows=max_rows, timeout_s=timeout_s)
    if len(rows) > max_rows:
        raise InvalidInput(f"the query returned more than {max_rows} rows; narrow it with WHERE or LIMIT")
    return pd.DataFrame.from_records(rows, columns=names)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _too_long(label: str, timeout_s: int) -> InvalidInput:
    return InvalidInput(f"the query on {label} ran longer than {timeout_s} s and was stopped; "
                        "narrow it with WHERE or LIMIT")


# -- SQLite --------------------------------------------------------------------------------------

_ACTIONS = {getattr(sqlite3, f"SQLITE_{n}"): n.replace("_", " ") for n in (
    "CREATE_INDEX", "CREATE_TABLE", "CREATE_TEMP_INDEX", "CREATE_TEMP_TABLE", "CREATE_TEMP_TRIGGER",
    "CREATE_TEMP_VIEW", "CREATE_TRIGGER", "CREATE_VIEW", "DELETE", "DROP_INDEX", "DROP_TABLE", "DROP_TEMP_INDEX",
    "DROP_TEMP_TABLE", "DROP_TEMP_TRIGGER", "DROP_TEMP_VIEW", "DROP_TRIGGER", "DROP_VIEW", "INSERT", "PRAGMA",
    "READ", "SELECT", "TRANSACTION", "UPDATE", "ATTACH", "DETACH", "ALTER_TABLE", "REINDEX", "ANALYZE",
    "CREATE_VTABLE", "DROP_VTABLE", "FUNCTION", "SAVEPOINT", "RECURSIVE")}
_READS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
_REFUSED_FUNCTIONS = {"load_extension", "fts3_tokenizer"}
_PROGRESS_STEPS = 10_000  # SQLite VM instructions between deadline checks (well under a millisecond)


def _protected_paths(settings: Settings) -> tuple[Path, list[Path]]:
    """The workspace folder and LeanOps' own SQLite files wherever they are: never a source (they hold users,
    tokens and the audit log)."""
    files = []
    for db_url in (settings.db_url, settings.mlflow_uri):
        parsed = make_url(db_url)
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            files.append(Path(parsed.database).expanduser().resolve())
    return settings.home, files


def _sqlite_path(parsed: URL, *, label: str, settings: Settings) -> Path:
    assert parsed.database  # _check_url requires a file path for SQLite
    path = Path(parsed.database).expanduser().resolve()
    workspace, own_files = _protected_paths(settings)
    if path.is_relative_to(workspace) or path in own_files:
        where = f"inside the LeanOps workspace {workspace}" if path.is_relative_to(workspace) \
            else "one of LeanOps' own databases"
        raise InvalidInput(f"{label}: the SQLite file {path} is {where}; a source must be a database of "
                           "your data kept outside LEANOPS_HOME")
    return path


def _query_sqlite(parsed: URL, sql: str, *, label: str, max_rows: int, timeout_s: int,
                  settings: Settings) -> tuple[list[str], list[Any]]:
    path = _sqlite_path(parsed, label=label, settings=settings)
    if not path.is_file():
        raise InvalidInput(f"{label}: the SQLite file {path} does not exist")
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=timeout_s)
    refused: list[str] = []
    deadline = time.monotonic() + timeout_s
    expired: list[bool] = []

    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _source: str | None) -> int:
        if action in _READS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() not in _REFUSED_FUNCTIONS:
            return sqlite3.SQLITE_OK
        what = arg2 if action == sqlite3.SQLITE_FUNCTION else arg1
        refusal = " ".join(filter(None, [_ACTIONS.get(action, f"action {action}"), what]))
        if refusal not in refused:
            refused.append(refusal)
        return sqlite3.SQLITE_DENY

    def past_deadline() -> int:
        if time.monotonic() > deadline:
            expired.append(True)
            return 1  # SQLite interrupts the statement
        return 0

    try:
        conn.execute("PRAGMA query_only = ON")
        conn.set_authorizer(authorize)
        conn.set_progress_handler(past_deadline, _PROGRESS_STEPS)
        cur = conn.execute(sql)
        if cur.description is None:
            raise InvalidInput(f"the statement returned no rows to register on {label}; write a SELECT")
        names = [d[0] for d in cur.description]
        rows = cur.fetchmany(max_rows + 1)
    except sqlite3.Error as exc:
        if refused:
            raise InvalidInput(f"the query failed on {label}: only reads are allowed on a SQLite source "
                               f"(refused: {', '.join(refused[:3])})") from None
        if expired:
            raise _too_long(label, timeout_s) from None
        raise InvalidInput(f"the query failed on {label}: {_first_line(exc)}") from None
    finally:
        conn.close()
    return names, rows


# -- PostgreSQL ----------------------------------------------------------------------------------

# What the connected role may do beyond reading. Roles are cluster-wide; the table, sequence and schema
# privileges are those of the source's own database (the only one a query reaches).
_ROLE_CHECK = """
SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication,
  ARRAY(SELECT g FROM unnest(ARRAY['pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program',
                                   'pg_write_all_data', 'pg_signal_backend', 'pg_checkpoint',
                                   'pg_use_reserved_connections', 'pg_create_subscription']) AS g
        WHERE to_regrole(g) IS NOT NULL AND pg_has_role(r.oid, to_regrole(g), 'MEMBER')) AS builtin,
  ARRAY(SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
          AND has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, TRIGGER')
        ORDER BY 1 LIMIT 6) AS tables,
  ARRAY(SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(r.oid, c.oid, 'USAGE, UPDATE') END
        ORDER BY 1 LIMIT 6) AS sequences,
  has_database_privilege(r.oid, current_database(), 'CREATE') AS create_db,
  ARRAY(SELECT n.nspname::text FROM pg_namespace n
        WHERE n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
          AND has_schema_privilege(r.oid, n.oid, 'CREATE')
        ORDER BY 1 LIMIT 6) AS schemas,
  EXISTS (SELECT 1 FROM pg_proc p WHERE p.proname IN ('dblink_exec', 'dblink_connect')
          AND has_function_privilege(r.oid, p.oid, 'EXECUTE')) AS dblink,
  ARRAY(SELECT format('%I.%I', n.nspname, p.proname) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.prosecdef AND p.proowner <> r.oid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
        ORDER BY 1 LIMIT 6) AS definer
FROM pg_roles r WHERE r.rolname = current_user
"""

_READ_ONLY_ROLE = ("connect as a role that may only read: GRANT SELECT only (e.g. CREATE ROLE reader LOGIN PASSWORD "
                   "'…'; GRANT CONNECT ON DATABASE db TO reader; GRANT USAGE ON SCHEMA public TO reader; "
                   "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader)")


def _listed(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", …" if len(names) > 5 else "")


def _role_problems(conn: Any) -> tuple[str, list[str]]:
    """The connected role's name and what it can do beyond reading (empty: a read-only role)."""
    (role, superuser, createrole, createdb, replication, builtin, tables, sequences, create_db, schemas,
     dblink, definer) = conn.execute(_ROLE_CHECK, prepare=True).fetchone()
    if superuser:
        return role, ["is a superuser (it can write anything, read and write server files, run programs)"]
    problems = []
    if createrole:
        problems.append("has CREATEROLE (it can grant itself other roles)")
    if createdb:
        problems.append("has CREATEDB")
    if replication:
        problems.append("has REPLICATION")
    if builtin:
        problems.append(f"is a member of {_listed(builtin)}")
    if tables:
        problems.append(f"can INSERT, UPDATE, DELETE, TRUNCATE or add triggers on {_listed(tables)}")
    if sequences:
        problems.append(f"can advance the sequences {_listed(sequences)}")
    if create_db:
        problems.append("can CREATE schemas in the database")
    if schemas:
        hint = " (REVOKE CREATE ON SCHEMA public FROM PUBLIC)" if "public" in schemas else ""
        problems.append(f"can CREATE in the schemas {_listed(schemas)}{hint}")
    if dblink:
        problems.append("can run dblink (it connects to other databases from the server)")
    if definer:  # such a function runs as its owner: whatever its owner may write, the role may ask it to
        problems.append(f"can execute SECURITY DEFINER functions {_listed(definer)} (REVOKE EXECUTE ON FUNCTION "
                        "… FROM PUBLIC, or from the role)")
    return role, problems


def _refusal(label: str, role: str, problems: list[str]) -> InvalidInput:
    return InvalidInput(f"{label}: the database role {role!r} {'; '.join(problems)}. The role is the real boundary "
                        f"of a source: {_READ_ONLY_ROLE}")


def _pg_connect(parsed: URL, *, label: str, timeout_s: int) -> Any:
    import psycopg

    try:
        conn = psycopg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                               options=f"-c default_transaction_read_only=on -c statement_timeout={timeout_s * 1000}",
                               connect_timeout=10)
    except psycopg.Error as exc:
        raise InvalidInput(f"cannot connect to {label}: {_first_line(exc)}") from None
    conn.read_only = True
    return conn


def _check_pg_role(parsed: URL, *, label: str) -> None:
    """Refuse a role that can do more than read (what add_source accepts)."""
    import psycopg

    conn = _pg_connect(parsed, label=label, timeout_s=ROLE_CHECK_TIMEOUT_S)
    try:
        role, problems = _role_problems(conn)
    except psycopg.Error as exc:
        raise InvalidInput(f"cannot check the database role of {label}: {_first_line(exc)}") from None
    finally:
        conn.close()
    if problems:
        raise _refusal(label, role, problems)


def _query_postgresql(parsed: URL, sql: str, *, label: str, max_rows: int,
                      timeout_s: int) -> tuple[list[str], list[Any]]:
    import psycopg

    conn = _pg_connect(parsed, label=label, timeout_s=timeout_s)
    rows: list[Any] = []
    names: list[str] = []
    try:
        role, problems = _role_problems(conn)  # again: the role may have been granted more since add_source
        if problems:
            raise _refusal(label, role, problems)
        cur = conn.cursor()
        # stream() always uses the extended protocol: one statement, so "SELECT 1; COMMIT; DELETE …" is
        # refused by the server, and the rows arrive in chunks, so the row cap holds before they are in memory.
        stream = cur.stream(sql, size=1000 if psycopg.capabilities.has_stream_chunked() else 1)
        try:
            for row in stream:
                if not names:
                    names = [d.name for d in cur.description or []]
                rows.append(row)
                if len(rows) > max_rows:
                    break  # closing the stream cancels the rest
        finally:
            stream.close()
    except psycopg.Error as exc:
        if "cannot insert multiple commands into a prepared statement" in str(exc):
            raise InvalidInput(f"the query on {label} has more than one statement; a source runs exactly one "
                               "SELECT (no ';' between statements)") from None
        if exc.sqlstate == "57014":  # query_canceled: the statement timeout
            raise _too_long(label, timeout_s) from None
        if "didn't produce a result" in str(exc):
            raise InvalidInput(f"the statement returned no rows to register on {label}; write a SELECT") from None
        raise InvalidInput(f"the query failed on {label}: {_first_line(exc)}") from None
    finally:
        conn.close()
    if not rows:
        raise InvalidInput(f"the query on {label} returned no rows; there is nothing to register")
    return names, rows


def register_query(session: Session, settings: Settings, *, actor: Actor, source: str, sql: str, name: str,
                   description: str = "", max_rows: int = MAX_ROWS) -> datasets.Registration:
    """Run ``sql`` on the configured source (read-only) and register the result as a version of ``name``."""
    require(session, actor, "datasets.write", f"dataset:{name}")
    datasets.check_name(name)
    row = _get(session, source)
    url = _url(row, secrets.load_keys(settings))
    frame = run_query(settings, url=url, sql=sql, label=f"source {source!r}", max_rows=max_rows)
    return datasets.register(session, actor=actor, name=name, data=frame, store=settings.data_store,
                             settings=settings,
                             source=f"sql:{source}", source_query=sql.strip(), description=description,
                             filename=f"the result of the query on {source!r}")


def query(session: Session, settings: Settings, *, actor: Actor, source: str, sql: str,
          max_rows: int = MAX_ROWS) -> pd.DataFrame:
    """Run ``sql`` on the configured source (read-only) and return its rows, registering nothing (batch scoring
    reads its input this way)."""
    require(session, actor, "read", f"source:{source}")
    row = _get(session, source)
    frame = run_query(settings, url=_url(row, secrets.load_keys(settings)), sql=sql, label=f"source {source!r}",
                      max_rows=max_rows)
    audit.record(session, actor, "source.queried", f"source:{source}", {"sql": sql.strip()[:2000], "rows": len(frame)})
    return frame
