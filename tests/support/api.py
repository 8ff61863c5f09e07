"""Helpers for the API tests: a registered model's handle, serving settings, a live uvicorn server, requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings, get_settings
from tests.support import mlflow_models
from tests.support.net import free_port


@dataclass(frozen=True)
class Model:
    name: str
    versions: dict[str, int]  # kind → version


@dataclass(frozen=True)
class LeanOpsStore(mlflow_models.Store):
    """The test MLflow store whose alias moves are LeanOps' own, recorded in one metadata DB.

    The API serves a version only if LeanOps recorded the alias's move to it and trained it (its training
    run records its files' sha256). ``move`` therefore records, in ``factory``'s DB, a training run for the
    version (through ``core.training.runs``, the sha256 taken from the tag registration gave it) and moves
    the alias the LeanOps way: a forced promotion for ``champion``, ``set_challenger`` for ``challenger``.
    A version never moved to has no training run (a version registered outside LeanOps).
    """

    factory: sessionmaker[Session] | None = None
    settings: Settings | None = None

    def move(self, name: str, version: int | None, alias: str = "champion") -> None:
        from core.actors import cli_actor
        from core.promotion import moves
        from tests.support import aliases

        if self.factory is None or self.settings is None or version is None or alias not in (
                aliases.CHAMPION, aliases.CHALLENGER):
            return super().move(name, version, alias)
        factory, settings = self.factory, self.settings
        self.record_training(name, version)
        if alias == aliases.CHAMPION:
            moves.promote(factory, settings, actor=cli_actor(), model=name, version=version, reason="test",
                          force=True)
        else:
            moves.run_move(factory, settings, lambda session: moves.set_challenger(
                session, settings, actor=cli_actor(), model=name, version=version, reason="test"))

    def record_training(self, name: str, version: int) -> None:
        """A finished LeanOps training run that registered ``name`` v``version`` (unless it has one)."""
        from core.platform import mlflow_store
        from core.platform.database import transaction
        from core.training import runs
        from core.training.spec import parse_spec
        from tests.support.versions import TRAINER

        assert self.factory is not None
        with self.factory() as session:
            if runs.row_for_version(session, model=name, version=version) is not None:
                return
        client = mlflow_store.client(mlflow_store.MlflowStore(self.uri, ""))
        tags = client.get_model_version(name, str(version)).tags or {}
        sha256 = tags.get(mlflow_store.MODEL_SHA256_TAG)
        spec = parse_spec({"dataset": "churn", "target": mlflow_models.TARGET, "model": "linear", "model_name": name})
        with transaction(self.factory) as session:
            # The test models were fitted on the demo churn frame, not on a registered dataset version.
            run_id = runs.start(session, job_id=None, spec=spec, dataset_version_id=None,  # type: ignore[arg-type]
                                dataset_name="churn", dataset_version=1, sha256="", task="classification",
                                params={}, code_version="test", created_by=TRAINER.name)
            runs.complete(session, run_id=run_id, actor=TRAINER, params={}, metrics={}, baseline={}, fairness={},
                          plots={}, reference={mlflow_store.MODEL_SHA256: sha256} if sha256 else {}, search=None,
                          model_version=version, model_uri=f"models:/{name}/{version}")


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


def churn_csv(rows: int = 300, seed: int = 7) -> bytes:
    from core.workspace.demo import churn_frame

    return churn_frame(rows=rows, seed=seed).to_csv(index=False).encode()


def upload(client: TestClient, token: str, name: str = "churn", data: bytes | None = None,
           **form: str) -> httpx.Response:
    """``POST /v1/datasets/{name}/versions`` with ``data`` (default: 300 rows of the demo churn data) as churn.csv."""
    import io

    return client.post(f"/v1/datasets/{name}/versions", headers=bearer(token), data=form or None,
                       files={"file": ("churn.csv", io.BytesIO(data if data is not None else churn_csv()), "text/csv")})


def set_serving_policy(settings: Settings, factory: Any, model: str, **serving: str) -> None:
    """Save the workspace's policies.yaml with ``models.<model>.serving`` set (through core, audited)."""
    from core.actors import cli_actor
    from core.platform.database import transaction
    from core.policy import with_override

    policies = settings.policies
    text = with_override(policies.text(), model, "serving", dict(serving))
    with transaction(factory) as session:
        policies.save(session, actor=cli_actor(), text=text)
