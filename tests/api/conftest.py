"""API fixtures: a workspace with a real registered model, tokens per role, the app in-process or on a port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from core import auth
from core.actors import ROLES
from core.settings import Settings, get_settings
from db.session import make_engine, make_session_factory, transaction
from tests import mlflow_models
from tests.factories import admin_actor


@pytest.fixture(scope="session")
def store() -> mlflow_models.Store:
    return mlflow_models.store()


@dataclass(frozen=True)
class Model:
    name: str
    versions: dict[str, int]  # kind → version


@pytest.fixture
def model(store: mlflow_models.Store) -> Model:
    """A fresh registered model: v1 logistic regression (champion), v2 a small random forest."""
    name = store.fresh_name()
    versions = {"lr": store.register("lr", name), "rf20": store.register("rf20", name)}
    store.move(name, versions["lr"])
    return Model(name, versions)


def serving_settings(home: Path, db_url: str, store: mlflow_models.Store, **overrides: object) -> Settings:
    values = {"home": home, "db_url": db_url, "mlflow_uri": store.uri, "artifacts": store.artifacts,
              "scheduler": "off", "serving_reload_seconds": 0.5, "admin_password": "admin-pass-123"} | overrides
    return get_settings(**values)


@pytest.fixture
def api_settings(tmp_path: Path, sqlite_url: str, store: mlflow_models.Store) -> Settings:
    return serving_settings(tmp_path / "ws", sqlite_url, store)


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


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def app(api_settings: Settings, api_factory: sessionmaker[Session]) -> FastAPI:
    return create_app(api_settings, factory=api_factory)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """The app under a real uvicorn server on a free port of 127.0.0.1; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def server(app: FastAPI) -> Iterator[str]:
    with live_server(app) as url:
        yield url


def wait_until(check, timeout: float = 10.0, every: float = 0.05):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


def predict(client: httpx.Client | TestClient, name: str, token: str, records: list[dict], **params: object
            ) -> httpx.Response:
    return client.post(f"/v1/models/{name}/predict", json={"records": records}, headers=bearer(token),
                       params=params or None)
