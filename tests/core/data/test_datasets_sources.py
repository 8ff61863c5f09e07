"""Source databases: admin-configured by URL, queried read-only; a query result becomes a version."""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from core import secrets
from core.actors import Actor
from core.data import datasets, sources
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.platform.database import transaction
from db.models import DatasetVersion

ADMIN, ALICE, BOB = Actor("root", "admin"), Actor("alice", "scientist"), Actor("bob", "viewer")


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE features (id INTEGER, spend REAL, segment TEXT)")
        conn.executemany("INSERT INTO features VALUES (?, ?, ?)",
                         [(i, i * 1.5, "a" if i % 3 else "b") for i in range(1, 301)])
    return path


def add(factory, settings, name: str, url: str, actor: Actor = ADMIN) -> sources.SourceView:
    with transaction(factory) as s:
        return sources.add_source(s, settings, actor=actor, name=name, url=url)


def query(factory, settings, sql: str, *, source: str = "wh", name: str = "features") -> datasets.Registration:
    with transaction(factory) as s:
        return sources.register_query(s, settings, actor=ALICE, source=source, sql=sql, name=name)


def versions(factory) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(DatasetVersion))


def test_a_query_on_a_sqlite_source_becomes_a_version(factory, settings, warehouse: Path) -> None:
    add(factory, settings, "wh", f"sqlite:///{warehouse}")
    reg = query(factory, settings, "SELECT id, spend, segment FROM features WHERE id % 2 = 0;")
    assert reg.created and reg.certificate.passed
    assert (reg.version.rows, reg.version.source) == (150, "sql:wh")
    assert reg.version.source_query == "SELECT id, spend, segment FROM features WHERE id % 2 = 0;"
    assert reg.version.dtypes == {"id": "int64", "spend": "float64", "segment": "object"}
    again = query(factory, settings, "select id, spend, segment from features where id % 2 = 0")
    assert not again.created and again.version.version == 1


def test_queries_cannot_write_to_the_source(factory, settings, warehouse: Path) -> None:
    add(factory, settings, "wh", f"sqlite:///{warehouse}")
    for sql in ["DELETE FROM features", "DROP TABLE features", "INSERT INTO features VALUES (0, 0, 'x')"]:
        with pytest.raises(InvalidInput, match="the query failed on source 'wh': only reads are allowed on a SQLite"):
            query(factory, settings, sql)
    with sqlite3.connect(warehouse) as conn:
        assert conn.execute("SELECT count(*) FROM features").fetchone() == (300,)


@pytest.mark.parametrize("sql, reason", [
    ("SELECT nope FROM features", "the query failed on source 'wh': no such column: nope"),
    ("SELEC 1", "the query failed on source 'wh': near \"SELEC\": syntax error"),
    ("  ;  ", "the SQL query is empty; write a SELECT"),
    ("SELECT * FROM features WHERE id < 0", "the result of the query on 'wh' has no rows (3 columns, 0 rows)"),
    ("SELECT id, id FROM features", "the result of the query on 'wh' repeats the column name 'id'"),
])
def test_sql_errors_give_one_line_and_store_nothing(factory, settings, warehouse: Path, sql: str, reason: str) -> None:
    add(factory, settings, "wh", f"sqlite:///{warehouse}")
    with pytest.raises(InvalidInput) as err:
        query(factory, settings, sql)
    assert str(err.value).startswith(reason) and "\n" not in str(err.value)
    assert versions(factory) == 0
    assert not (Path(settings.home) / "datasets").exists()


def test_only_admins_configure_sources_and_urls_are_checked(factory, settings, warehouse: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # db.example does not exist: the role check (tested against a real server below) is skipped here.
    monkeypatch.setattr(sources, "_check_pg_role", lambda parsed, *, label: None)
    with pytest.raises(PermissionDenied, match="which may not sources.manage; it needs 'admin'"):
        add(factory, settings, "wh", f"sqlite:///{warehouse}", actor=ALICE)
    with pytest.raises(InvalidInput, match="source backend 'mysql' is not supported"):
        add(factory, settings, "wh", "mysql://u:p@host/db")
    with pytest.raises(InvalidInput, match="is not a database URL"):
        add(factory, settings, "wh", "not a url")
    with pytest.raises(InvalidInput, match="source name|dataset name '../wh' is not allowed"):
        add(factory, settings, "../wh", f"sqlite:///{warehouse}")
    shown = add(factory, settings, "pg", "postgresql+psycopg://reader:s3cret@db.example/warehouse")
    assert shown.url == "postgresql+psycopg://reader:***@db.example/warehouse"
    with pytest.raises(InvalidInput, match="a source named 'pg' already exists"):
        add(factory, settings, "pg", "postgresql+psycopg://reader@db.example/warehouse")
    with factory() as s:
        assert [v.name for v in sources.list_sources(s, keys=secrets.load_keys(settings))] == ["pg"]
    with transaction(factory) as s:
        sources.remove_source(s, actor=ADMIN, name="pg", keys=secrets.load_keys(settings))
    with pytest.raises(NotFound, match="no source database named 'pg'; no source is configured"):
        query(factory, settings, "select 1", source="pg")


def test_viewers_cannot_register_from_a_source(factory, settings, warehouse: Path) -> None:
    add(factory, settings, "wh", f"sqlite:///{warehouse}")
    with pytest.raises(PermissionDenied), transaction(factory) as s:
        sources.register_query(s, settings, actor=BOB, source="wh", sql="select 1 as a", name="x")


def test_a_missing_sqlite_file_is_reported(factory, settings, tmp_path: Path) -> None:
    add(factory, settings, "gone", f"sqlite:///{tmp_path / 'gone.db'}")
    with pytest.raises(InvalidInput, match="source 'gone': the SQLite file .*gone.db does not exist"):
        query(factory, settings, "select 1", source="gone")
    assert not (tmp_path / "gone.db").exists()


@dataclass
class PgWarehouse:
    """A source database on the test server: ``admin`` is the superuser's URL to it; ``role`` makes a
    LOGIN role (cluster-wide, dropped afterwards) with the given grants and returns its URL."""

    admin: str
    roles: list[str] = field(default_factory=list)

    def sql(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(make_url(self.admin).set(drivername="postgresql").render_as_string(
                hide_password=False), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def role(self, *grants: str) -> str:
        name = f"leanops_reader_{uuid.uuid4().hex[:8]}"
        self.roles.append(name)
        self.sql(f"CREATE ROLE {name} LOGIN PASSWORD 'reader-pw'", *(g.format(role=name) for g in grants))
        return make_url(self.admin).set(username=name, password="reader-pw").render_as_string(hide_password=False)

    def count(self) -> int:
        import psycopg

        with psycopg.connect(make_url(self.admin).set(drivername="postgresql").render_as_string(
                hide_password=False)) as conn:
            return conn.execute("SELECT count(*) FROM features").fetchone()[0]


READ_ONLY = ("GRANT USAGE ON SCHEMA public TO {role}", "GRANT SELECT ON features TO {role}")


@pytest.fixture
def pg_warehouse(pg_url: str):
    import psycopg

    name = f"leanops_src_{uuid.uuid4().hex[:10]}"
    admin = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = make_url(pg_url).set(database=name)
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        conn.execute("CREATE TABLE features AS SELECT g AS id, (g * 1.5)::numeric(10,2) AS spend, "
                     "now()::date - g AS day FROM generate_series(1, 200) g")
        # PostgreSQL 14 and older let PUBLIC create in schema public; a read-only source must not.
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    warehouse = PgWarehouse(admin=url.render_as_string(hide_password=False))
    yield warehouse
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        for role in warehouse.roles:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def pg_source(pg_warehouse: PgWarehouse) -> str:
    """The URL of a role that may only SELECT from the source's table."""
    return pg_warehouse.role(*READ_ONLY)


def test_a_postgresql_source_is_read_only_and_sql_reaches_it_as_typed(factory, settings, pg_source: str) -> None:
    add(factory, settings, "pg", pg_source)
    reg = query(factory, settings, "SELECT id, spend, day, id % 7 AS bucket, 'x'::text AS tag FROM features",
                source="pg")
    assert reg.version.rows == 200
    assert reg.version.dtypes == {"id": "int64", "spend": "float64", "day": "datetime64[ns]", "bucket": "int64",
                                  "tag": "object"}
    with pytest.raises(InvalidInput, match="cannot execute DELETE in a read-only transaction"):
        query(factory, settings, "DELETE FROM features", source="pg")
    with pytest.raises(InvalidInput, match='relation "nope" does not exist'):
        query(factory, settings, "SELECT * FROM nope", source="pg")


MULTI = "the query on source 'pg' has more than one statement; a source runs exactly one SELECT"


@pytest.mark.parametrize("sql", ["SELECT 1; COMMIT; BEGIN READ WRITE; DELETE FROM features; COMMIT",
                                 "SELECT 1; COMMIT; BEGIN READ WRITE; DROP TABLE features; COMMIT",
                                 "SELECT 1; DROP TABLE features",
                                 "SELECT 1 AS a; SET default_transaction_read_only = off"])
def test_a_postgresql_query_is_one_statement_even_for_a_role_that_could_write(
        factory, settings, pg_warehouse: PgWarehouse, monkeypatch: pytest.MonkeyPatch, sql: str) -> None:
    """The extended protocol is a second wall: were the role check fooled, ``COMMIT; BEGIN READ WRITE``
    still could not leave the read-only transaction."""
    monkeypatch.setattr(sources, "_role_problems", lambda conn: ("postgres", []))
    add(factory, settings, "pg", pg_warehouse.admin)  # the superuser, as if it had passed the role check
    with pytest.raises(InvalidInput, match=MULTI):
        query(factory, settings, sql, source="pg")
    assert pg_warehouse.count() == 200 and versions(factory) == 0


def test_a_multi_statement_query_is_refused_on_a_read_only_role(factory, settings, pg_source: str,
                                                                pg_warehouse: PgWarehouse) -> None:
    add(factory, settings, "pg", pg_source)
    with pytest.raises(InvalidInput, match=MULTI):
        query(factory, settings, "SELECT 1; COMMIT; BEGIN READ WRITE; DELETE FROM features; COMMIT", source="pg")
    assert pg_warehouse.count() == 200


def test_add_source_refuses_a_role_that_can_do_more_than_read(factory, settings, pg_warehouse: PgWarehouse) -> None:
    cases = [
        (pg_warehouse.admin, "is a superuser"),
        (pg_warehouse.role(*READ_ONLY, "GRANT INSERT ON features TO {role}"),
         "can INSERT, UPDATE, DELETE, TRUNCATE or add triggers on public.features"),
        (pg_warehouse.role(*READ_ONLY, "GRANT pg_read_server_files TO {role}"), "is a member of pg_read_server_files"),
        (pg_warehouse.role(*READ_ONLY, "GRANT CREATE ON SCHEMA public TO {role}"), "can CREATE in the schemas public"),
        (pg_warehouse.role(*READ_ONLY, "ALTER ROLE {role} CREATEROLE"), "has CREATEROLE"),
        # issue 27: the server roles that act outside the database, and functions that run as their owner
        (pg_warehouse.role(*READ_ONLY, "GRANT pg_signal_backend TO {role}"), "is a member of pg_signal_backend"),
        (pg_warehouse.role(*READ_ONLY, "GRANT pg_write_server_files TO {role}"),
         "is a member of pg_write_server_files"),
        (pg_warehouse.role(*READ_ONLY, "GRANT pg_execute_server_program TO {role}"),
         "is a member of pg_execute_server_program"),
    ]
    for url, what in cases:
        with pytest.raises(InvalidInput) as err:
            add(factory, settings, "pg", url)
        message = str(err.value)
        assert message.startswith("source 'pg': the database role ") and what in message, message
        assert "The role is the real boundary" in message and "GRANT SELECT only" in message
        assert "reader-pw" not in message
    with factory() as s:
        assert sources.list_sources(s, keys=secrets.load_keys(settings)) == []

    # a SECURITY DEFINER function anyone may run (EXECUTE goes to PUBLIC by default) runs as the superuser
    pg_warehouse.sql("CREATE FUNCTION public.purge_features() RETURNS void LANGUAGE sql SECURITY DEFINER "
                     "AS 'DELETE FROM features WHERE false'")
    with pytest.raises(InvalidInput, match="can execute SECURITY DEFINER functions public.purge_features"):
        add(factory, settings, "pg", pg_warehouse.role(*READ_ONLY))
    pg_warehouse.sql("REVOKE EXECUTE ON FUNCTION public.purge_features() FROM PUBLIC")
    reader = pg_warehouse.role(*READ_ONLY)
    assert add(factory, settings, "pg", reader).name == "pg"
    assert query(factory, settings, "SELECT id FROM features WHERE id <= 10", source="pg").version.rows == 10
    # Every query checks the role again: a write privilege granted later stops the source.
    role = make_url(reader).username
    pg_warehouse.sql(f"GRANT DELETE ON features TO {role}")
    with pytest.raises(InvalidInput, match=f"source 'pg': the database role '{role}' can INSERT, UPDATE, DELETE"):
        query(factory, settings, "SELECT id FROM features", source="pg", name="again")


def test_a_postgresql_query_that_runs_too_long_is_stopped(settings, pg_source: str) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidInput, match="the query on source 'pg' ran longer than 1 s and was stopped"):
        sources.run_query(settings, url=pg_source, sql="SELECT pg_sleep(10), 1 AS a", label="source 'pg'", timeout_s=1)
    assert time.monotonic() - started < 5


# -- SQLite: only reads, a deadline, never the workspace -------------------------------------------

@pytest.mark.parametrize("sql, refused", [
    ("ATTACH '{dir}/attached.db' AS other", "ATTACH {dir}/attached.db"),
    ("VACUUM INTO '{dir}/copy.db'", "ATTACH {dir}/copy.db"),
    ("PRAGMA writable_schema = 1", "PRAGMA writable_schema"),
    ("PRAGMA query_only = 0", "PRAGMA query_only"),
    ("WITH x AS (SELECT 0, 0, 'x') INSERT INTO features SELECT * FROM x", "INSERT features"),
    ("CREATE TEMP TABLE scratch AS SELECT * FROM features", "sqlite_temp_master"),
    ("SELECT load_extension('/tmp/evil')", "FUNCTION load_extension"),
])
def test_a_sqlite_source_allows_only_reads(factory, settings, warehouse: Path, sql: str, refused: str) -> None:
    add(factory, settings, "wh", f"sqlite:///{warehouse}")
    folder = warehouse.parent
    before = sorted(folder.iterdir())
    with pytest.raises(InvalidInput) as err:
        query(factory, settings, sql.format(dir=folder))
    assert str(err.value).startswith("the query failed on source 'wh': only reads are allowed on a SQLite source "
                                     "(refused: ")
    assert refused.format(dir=folder) in str(err.value)
    assert sorted(folder.iterdir()) == before  # no file was created
    with sqlite3.connect(warehouse) as conn:
        assert conn.execute("SELECT count(*) FROM features").fetchone() == (300,)
    assert versions(factory) == 0


def test_a_sqlite_query_that_runs_too_long_is_stopped(settings, warehouse: Path) -> None:
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 20000000) SELECT count(*) FROM c"
    started = time.monotonic()
    with pytest.raises(InvalidInput, match="the query on source 'wh' ran longer than 1 s and was stopped"):
        sources.run_query(settings, url=f"sqlite:///{warehouse}", sql=endless, label="source 'wh'", timeout_s=1)
    assert time.monotonic() - started < 4


def test_a_sqlite_query_is_capped_at_max_rows(settings, warehouse: Path) -> None:
    with pytest.raises(InvalidInput, match="the query returned more than 100 rows; narrow it"):
        sources.run_query(settings, url=f"sqlite:///{warehouse}", sql="SELECT * FROM features", max_rows=100)


def test_a_sqlite_source_inside_the_workspace_is_refused(factory, settings, tmp_path: Path) -> None:
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    inside = home / "leanops-copy.db"
    sqlite3.connect(inside).close()
    (tmp_path / "link.db").symlink_to(inside)
    for path in [inside, tmp_path / "link.db", home / "sub" / ".." / "x.db"]:
        with pytest.raises(InvalidInput, match=f"the SQLite file {inside.parent}.* is inside the LeanOps workspace"):
            add(factory, settings, "own", f"sqlite:///{path}")
    # LeanOps' own database files are refused wherever the settings put them (here outside the workspace).
    meta = tmp_path / "meta"
    own = settings.model_copy(update={"db_url": f"sqlite:///{meta / 'leanops.db'}",
                                      "mlflow_uri": f"sqlite:///{meta / 'mlflow.db'}"})
    with pytest.raises(InvalidInput, match="is inside the LeanOps workspace"):
        add(factory, own, "own", f"sqlite:///{inside}")
    for own_file in ("leanops.db", "mlflow.db"):
        with pytest.raises(InvalidInput, match=f"{own_file} is one of LeanOps' own databases"):
            add(factory, own, "own", f"sqlite:///{meta / own_file}")
    with factory() as s:
        assert sources.list_sources(s, keys=secrets.load_keys(settings)) == []


def test_a_source_configured_inside_the_workspace_earlier_is_refused_at_query_time(
        factory, settings, warehouse: Path) -> None:
    add(factory, settings, "wh", f"sqlite:///{warehouse}")
    moved = settings.model_copy(update={"home": warehouse.parent.resolve()})  # the workspace now holds the file
    with pytest.raises(InvalidInput, match="source 'wh': the SQLite file .*warehouse.db is inside the LeanOps"):
        query(factory, moved, "SELECT * FROM features")
    assert versions(factory) == 0


def test_source_urls_are_sealed_at_rest_and_query_passwords_masked(factory, settings, warehouse: Path) -> None:
    from sqlalchemy import text

    from db.models import AuditEvent

    url = f"sqlite:///{warehouse}?password=hunter2-hunter2"  # libpq-style: the password as a query parameter
    shown = add(factory, settings, "wh", url)
    assert shown.url == f"sqlite:///{warehouse}?password=***"
    with factory() as s:
        [stored] = s.execute(text("SELECT url FROM source_databases")).scalars().all()
        audit_text = " ".join(e.details_json for e in s.query(AuditEvent))
    assert stored.startswith(secrets.PREFIX) and "hunter2" not in stored and "hunter2" not in audit_text
    assert secrets.unseal(stored, keys=secrets.load_keys(settings)) == url
    assert query(factory, settings, "select id from features").version.rows == 300  # opened to query
    with transaction(factory) as s:
        sources.remove_source(s, actor=ADMIN, name="wh", keys=secrets.load_keys(settings))
    with factory() as s:
        assert "hunter2" not in " ".join(e.details_json for e in s.query(AuditEvent))


def test_a_source_the_key_cannot_open_is_listed_and_removable_but_not_queried(factory, settings,
                                                                              warehouse: Path) -> None:
    from db.models import AuditEvent

    add(factory, settings, "wh", f"sqlite:///{warehouse}")
    other = settings.model_copy(update={"secret_key": SecretStr(secrets.generate_key())})  # not the sealing key
    with factory() as s:
        assert [v.url for v in sources.list_sources(s, keys=secrets.load_keys(other))] == \
            ["(sealed: the secret key cannot open it)"]
        assert [v.url for v in sources.list_sources(s, keys=None)] == ["(sealed: the secret key cannot open it)"]
    with pytest.raises(secrets.SecretKeyError, match="the URL of source 'wh' cannot be unsealed"):
        query(factory, other, "select id from features")
    with transaction(factory) as s:
        sources.remove_source(s, actor=ADMIN, name="wh", keys=secrets.load_keys(other))
    with factory() as s:
        removed = s.scalar(select(AuditEvent).where(AuditEvent.action == "source.removed"))
        assert removed.details == {"url": "(sealed: the secret key cannot open it)"}
