"""API fixtures: a workspace with a real registered model, tokens per role, the app in-process or on a port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from core.accounts import auth
from core.actors import ROLES
from core.platform.database import transaction
from core.settings import Settings
from db.session import make_engine, make_session_factory
from tests.support import mlflow_models
from tests.support.api import LeanOpsStore, Model, live_server, serving_settings
from tests.support.factories import admin_actor


@pytest.fixture(scope="session")
def mlflow_test_store() -> mlflow_models.Store:
    return mlflow_models.store()


@pytest.fixture
def store(mlflow_test_store: mlflow_models.Store, api_settings: Settings,
          api_factory: sessionmaker[Session]) -> LeanOpsStore:
    """The MLflow store, its alias moves recorded the LeanOps way in this test's metadata DB (served only so)."""
    base = mlflow_test_store
    return LeanOpsStore(base.uri, base.artifacts, base.logged, factory=api_factory, settings=api_settings)


@pytest.fixture
def model(store: LeanOpsStore) -> Model:
    """A fresh registered model: v1 logistic regression (champion, promoted through LeanOps), v2 a small
    random forest (registered only: no LeanOps training run until a test moves an alias to it)."""
    name = store.fresh_name()
    versions = {"lr": store.register("lr", name), "rf20": store.register("rf20", name)}
    store.move(name, versions["lr"])
    return Model(name, versions)


@pytest.fixture
def metadata_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """The metadata DB of this test's app: ``db_url``'s when the test runs on both databases, else its SQLite."""
    return str(request.getfixturevalue("db_url")) if "db_url" in request.fixturenames else sqlite_url


@pytest.fixture
def api_settings(tmp_path: Path, metadata_url: str, mlflow_test_store: mlflow_models.Store) -> Settings:
    return serving_settings(tmp_path / "ws", metadata_url, mlflow_test_store)


@pytest.fixture
def api_factory(api_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(api_settings.db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def tokens(api_factory: sessionmaker[Session]) -> dict[str, str]:
    """One API token per role: tokens["viewer"] … tokens["admin"]."""
    out = {}
    with transaction(api_factory) as session:
        for role in ROLES:
            out[role], _ = auth.create_token(session, actor=admin_actor(), role=role, name=f"test-{role}")
    return out


@pytest.fixture
def app(api_settings: Settings, api_factory: sessionmaker[Session]) -> FastAPI:
    return create_app(api_settings, factory=api_factory)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def server(app: FastAPI) -> Iterator[str]:
    with live_server(app) as url:
        yield url

