"""Liveness and readiness, and serving while the model registry is down (issue 17 item 5).

``/health`` answers as soon as the process does; ``/health/ready`` only once every champion is loaded
and warm. A request for a model not loaded yet is answered 503 within ``LOAD_DEADLINE`` when the MLflow
store cannot be reached (MLflow itself retries an unreachable SQL store for over a minute), and a
champion already loaded keeps serving while the registry is down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from api.app import create_app
from core.serving.cache import LOAD_DEADLINE
from core.workspace.identity import workspace_id
from tests.support.api import Model, bearer, live_server, serving_settings
from tests.support.mlflow_models import Store
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]

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
        assert doc["models"][model.name] == {"version": model.versions["lr"], "state": "loaded"}
        # the workspace's id (`cli.py init` prints it): what `make run` checks its own API answers (issue 29)
        assert doc["workspace"] == workspace_id(rt.settings) != ""
        # Loaded before any request asked for it: the first prediction finds it in memory.
        assert rt.cache.served()[(model.name, "champion")] == model.versions["lr"]
        first = httpx.post(f"{url}/v1/models/{model.name}/predict", json={"records": [RECORD]},
                           headers=bearer(tokens["scientist"]), timeout=30)
        assert first.status_code == 200, first.text


def test_an_unreachable_registry_gets_503_within_seconds_and_ready_says_not_ready(
        tmp_path: Path, metadata_url: str, tokens: dict) -> None:
    # Its own process (``cli.py serve``, as an operator starts it): MLflow holds a process-wide lock while
    # it retries an unreachable store, which would stall every other test's registry in this process.
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")} | {
        "LEANOPS_HOME": str(tmp_path / "ws"), "LEANOPS_DB_URL": metadata_url, "LEANOPS_MLFLOW_URI": UNREACHABLE,
        "LEANOPS_SCHEDULER": "off", "MLFLOW_DISABLE_TELEMETRY": "true"}
    server = subprocess.Popen([sys.executable, "cli.py", "serve", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else "the API exited"
            try:
                assert httpx.get(f"{url}/health", timeout=5).json() == {"status": "ok"}
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.1)
        not_ready = httpx.get(f"{url}/health/ready", timeout=5)
        assert not_ready.status_code == 503 and not_ready.json()["status"] == "starting"
        for _ in range(2):  # the second request shares the load still in flight, and waits no longer
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
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


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
