"""Source databases: admin-configured by URL, queried read-only; a query result becomes a version."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

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


def add(factory, name: str, url: str, actor: Actor = ADMIN) -> sources.SourceView:
    with transaction(factory) as s:
        return sources.add_source(s, actor=actor, name=name, url=url)


def query(factory, settings, sql: str, *, source: str = "wh", name: str = "features") -> datasets.Registration:
    with transaction(factory) as s:
        return sources.register_query(s, actor=ALICE, source=source, sql=sql, name=name, store_root=settings.home)


def versions(factory) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(DatasetVersion))


def test_a_query_on_a_sqlite_source_becomes_a_version(factory, settings, warehouse: Path) -> None:
    add(factory, "wh", f"sqlite:///{warehouse}")
    reg = query(factory, settings, "SELECT id, spend, segment FROM features WHERE id % 2 = 0;")
    assert reg.created and reg.certificate.passed
    assert (reg.version.rows, reg.version.source) == (150, "sql:wh")
    assert reg.version.source_query == "SELECT id, spend, segment FROM features WHERE id % 2 = 0;"
    assert reg.version.dtypes == {"id": "int64", "spend": "float64", "segment": "object"}
    again = query(factory, settings, "select id, spend, segment from features where id % 2 = 0")
    assert not again.created and again.version.version == 1


def test_queries_cannot_write_to_the_source(factory, settings, warehouse: Path) -> None:
    add(factory, "wh", f"sqlite:///{warehouse}")
    for sql in ["DELETE FROM features", "DROP TABLE features", "INSERT INTO features VALUES (0, 0, 'x')"]:
        with pytest.raises(InvalidInput, match="the query failed on source 'wh': attempt to write a readonly database"):
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
    add(factory, "wh", f"sqlite:///{warehouse}")
    with pytest.raises(InvalidInput) as err:
        query(factory, settings, sql)
    assert str(err.value).startswith(reason) and "\n" not in str(err.value)
    assert versions(factory) == 0
    assert not (Path(settings.home) / "datasets").exists()


def test_only_admins_configure_sources_and_urls_are_checked(factory, settings, warehouse: Path) -> None:
    with pytest.raises(PermissionDenied, match="which may not sources.manage; it needs 'admin'"):
        add(factory, "wh", f"sqlite:///{warehouse}", actor=ALICE)
    with pytest.raises(InvalidInput, match="source backend 'mysql' is not supported"):
        add(factory, "wh", "mysql://u:p@host/db")
    with pytest.raises(InvalidInput, match="is not a database URL"):
        add(factory, "wh", "not a url")
    with pytest.raises(InvalidInput, match="source name|dataset name '../wh' is not allowed"):
        add(factory, "../wh", f"sqlite:///{warehouse}")
    shown = add(factory, "pg", "postgresql+psycopg://reader:s3cret@db.example/warehouse")
    assert shown.url == "postgresql+psycopg://reader:***@db.example/warehouse"
    with pytest.raises(InvalidInput, match="a source named 'pg' already exists"):
        add(factory, "pg", "postgresql+psycopg://reader@db.example/warehouse")
    with factory() as s:
        assert [v.name for v in sources.list_sources(s)] == ["pg"]
    with transaction(factory) as s:
        sources.remove_source(s, actor=ADMIN, name="pg")
    with pytest.raises(NotFound, match="no source database named 'pg'; no source is configured"):
        query(factory, settings, "select 1", source="pg")


def test_viewers_cannot_register_from_a_source(factory, settings, warehouse: Path) -> None:
    add(factory, "wh", f"sqlite:///{warehouse}")
    with pytest.raises(PermissionDenied), transaction(factory) as s:
        sources.register_query(s, actor=BOB, source="wh", sql="select 1 as a", name="x", store_root=settings.home)


def test_a_missing_sqlite_file_is_reported(factory, settings, tmp_path: Path) -> None:
    add(factory, "gone", f"sqlite:///{tmp_path / 'gone.db'}")
    with pytest.raises(InvalidInput, match="source 'gone': the SQLite file .*gone.db does not exist"):
        query(factory, settings, "select 1", source="gone")
    assert not (tmp_path / "gone.db").exists()


@pytest.fixture
def pg_source(pg_url: str):
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"leanops_src_{uuid.uuid4().hex[:10]}"
    admin = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = make_url(pg_url).set(database=name)
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        conn.execute("CREATE TABLE features AS SELECT g AS id, (g * 1.5)::numeric(10,2) AS spend, "
                     "now()::date - g AS day FROM generate_series(1, 200) g")
    yield url.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_postgresql_source_is_read_only_and_sql_reaches_it_as_typed(factory, settings, pg_source: str) -> None:
    add(factory, "pg", pg_source)
    reg = query(factory, settings, "SELECT id, spend, day, id % 7 AS bucket, 'x'::text AS tag FROM features",
                source="pg")
    assert reg.version.rows == 200
    assert reg.version.dtypes == {"id": "int64", "spend": "float64", "day": "datetime64[ns]", "bucket": "int64",
                                  "tag": "object"}
    with pytest.raises(InvalidInput, match="cannot execute DELETE in a read-only transaction"):
        query(factory, settings, "DELETE FROM features", source="pg")
    with pytest.raises(InvalidInput, match='relation "nope" does not exist'):
        query(factory, settings, "SELECT * FROM nope", source="pg")
