"""Helpers for the API tests: a registered model's handle, serving settings, a live uvicorn server, requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.settings import Settings, get_settings
from tests.support import mlflow_models
from tests.support.net import free_port


@dataclass(frozen=True)
class Model:
    name: str
    versions: dict[str, int]  # kind → version


def serving_settings(home: Path, db_url: str, store: mlflow_models.Store, **overrides: object) -> Settings:
    values = {"home": home, "db_url": db_url, "mlflow_uri": store.uri, "artifacts": store.artifacts,
              "scheduler": "off", "serving_reload_seconds": 0.5, "admin_password": "admin-pass-123"} | overrides
    return get_settings(**values)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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


def predict(client: httpx.Client | TestClient, name: str, token: str, records: list[dict], **params: object
            ) -> httpx.Response:
    return client.post(f"/v1/models/{name}/predict", json={"records": records}, headers=bearer(token),
                       params=params or None)
