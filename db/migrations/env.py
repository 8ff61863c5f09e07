"""Alembic environment: migrates the URL it is given, with LeanOps' engine settings."""

from typing import Any

from alembic import context

from db.models import Base
from db.session import make_engine

config = context.config
target_metadata = Base.metadata
IGNORED_TABLES = {"apscheduler_jobs"}  # APScheduler owns its job-store table


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "table" and name in IGNORED_TABLES)


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None, "db.session.alembic_config sets sqlalchemy.url"
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
