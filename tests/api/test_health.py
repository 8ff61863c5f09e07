"""Liveness and readiness, and serving while the model registry is down (issue 17 item 5).

``/health`` answers as soon as the process does; ``/health/ready`` only once every champion is loaded
and warm. A request for a model not loaded yet is answered 503 within ``LOAD_DEADLINE`` when the MLflow
store cannot be reached (MLflow itself retries an unreachable SQL store for over a minute), and a
champion already loaded keeps serving while the registry is down.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import httpx

from api.app import create_app
from core.serving.cache import LOAD_DEADLINE
from tests.support.api import Model, bearer, live_server, serving_settings
from tests.support.mlflow_models import Store

RECORD = {"customer_age": 40, "tenure_months": 12, "monthly_charges": 70.0, "total_charges": 840.0,
          "support_calls": 1, "contract": "month-to-month", "payment_method": "card", "region": "north",
          "gender": "female", "senior": False}
UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:9/mlflow"  # nothing listens on port 9: refused at once


def _wait_ready(url: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"{url}/health/ready", timeout=5)
        if answer.status_code == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_ready_only_once_every_champion_is_loaded_and_warm(app, tokens: dict, model: Model) -> None:
    rt = app.state.runtime
    with live_server(app) as url:
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        ready = _wait_ready(url)
        assert ready.status_code == 200, ready.text
        doc = ready.json()
        assert doc["status"] == "ready"
        assert doc["models"][model.name] == {"version": model.versions["lr"], "state": "loaded", "reason": None} \
            or doc["models"][model.name] == {"version": model.versions["lr"], "state": "loaded"}
        # Loaded before any request asked for it: the first prediction finds it in memory.
        assert rt.cache.served()[(model.name, "champion")] == model.versions["lr"]
        first = httpx.post(f"{url}/v1/models/{model.name}/predict", json={"records": [RECORD]},
                           headers=bearer(tokens["scientist"]), timeout=30)
        assert first.status_code == 200, first.text


def test_an_unreachable_registry_gets_503_within_seconds_and_ready_says_not_ready(
        tmp_path: Path, metadata_url: str, mlflow_test_store: Store, api_factory, tokens: dict) -> None:
    settings = serving_settings(tmp_path / "ws", metadata_url, mlflow_test_store, mlflow_uri=UNREACHABLE)
    app = create_app(settings, factory=api_factory)
    with live_server(app) as url:
        assert httpx.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
        not_ready = httpx.get(f"{url}/health/ready", timeout=5)
        assert not_ready.status_code == 503 and not_ready.json()["status"] == "starting"
        started = time.monotonic()
        answer = httpx.post(f"{url}/v1/models/churn/predict", json={"records": [RECORD]},
                            headers=bearer(tokens["scientist"]), timeout=120)
        took = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        assert "model registry (MLflow) is unavailable" in answer.json()["detail"]
        assert answer.json()["correlation_id"] and answer.headers["retry-after"]
        assert took < LOAD_DEADLINE + 3, f"answered after {took:.1f} s"
        assert "127.0.0.1:9" not in answer.text and "nobody" not in answer.text
        assert httpx.get(f"{url}/health/ready", timeout=5).status_code == 503
        # The second request shares the load still in flight: it waits no longer than the first did.
        again = time.monotonic()
        assert httpx.post(f"{url}/v1/models/churn/predict", json={"records": [RECORD]},
                          headers=bearer(tokens["scientist"]), timeout=120).status_code == 503
        assert time.monotonic() - again < LOAD_DEADLINE + 3


def test_a_loaded_champion_keeps_serving_while_the_registry_is_down(
        tmp_path: Path, metadata_url: str, mlflow_test_store: Store, api_factory, tokens: dict,
        model: Model) -> None:
    # A registry of this test's own (a copy of the shared one), so breaking it harms no other test.
    db = Path(mlflow_test_store.uri.removeprefix("sqlite:///"))
    copy = tmp_path / "mlflow-copy.db"
    shutil.copyfile(db, copy)
    own = Store(f"sqlite:///{copy}", mlflow_test_store.artifacts, mlflow_test_store.logged)
    app = create_app(serving_settings(tmp_path / "ws", metadata_url, own), factory=api_factory)
    predict = f"/v1/models/{model.name}/predict"
    with live_server(app) as url:
        assert _wait_ready(url).status_code == 200
        headers = bearer(tokens["scientist"])
        assert httpx.post(url + predict, json={"records": [RECORD]}, headers=headers).status_code == 200
        copy.write_bytes(b"\0" * copy.stat().st_size)  # the registry's database is gone (unreadable)
        time.sleep(1.5)  # the alias follower has failed to reach it meanwhile (every 0.5 s)
        for _ in range(5):
            served = httpx.post(url + predict, json={"records": [RECORD]}, headers=headers, timeout=30)
            assert served.status_code == 200, served.text
            assert served.json()["version"] == model.versions["lr"]
        started = time.monotonic()  # an alias not loaded needs the registry: a quick 503
        other = httpx.post(url + predict, params={"alias": "challenger"}, json={"records": [RECORD]},
                           headers=headers, timeout=60)
        assert other.status_code == 503 and time.monotonic() - started < LOAD_DEADLINE + 3, other.text
