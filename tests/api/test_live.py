"""Against a real uvicorn server: hot reload under traffic, 1,000 concurrent requests, SIGTERM mid-load."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from core.platform.prediction_log import reads
from db.session import make_engine, make_session_factory
from tests.support.api import Model, bearer
from tests.support.mlflow_models import records
from tests.support.net import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_promotion_is_picked_up_under_traffic_without_a_failed_request(server: str, model: Model, tokens: dict,
                                                                       store) -> None:
    rows = records(1)
    seen: list[tuple[float, int, int, float]] = []  # (answered at, status, version, sent at)
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=server, headers=bearer(tokens["viewer"]), timeout=30) as client:
            while not stop.is_set():
                sent = time.monotonic()
                answer = client.post(f"/v1/models/{model.name}/predict", json={"records": rows})
                version = answer.json().get("version", -1) if answer.status_code == 200 else -1
                seen.append((time.monotonic(), answer.status_code, version, sent))

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(seen) >= 20)
        assert {v for _, _, v, _ in seen} == {model.versions["lr"]}
        store.move(model.name, model.versions["rf20"])  # promote v2
        # how soon the swap lands is bench/serving_reload.py's figure; here it only has to land
        switched = wait_until(lambda: next((ts for ts, _, v, _ in seen if v == model.versions["rf20"]), None),
                              timeout=30, what="the promoted version to answer")
        wait_until(lambda: sum(sent > switched for _, _, _, sent in list(seen)) >= 20, timeout=30,
                   what="20 requests sent after the swap to be answered")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert {status for _, status, _, _ in seen} == {200}, "a request failed during the swap"
    after = [v for _, _, v, sent in seen if sent > switched]  # requests sent once v2 had answered
    assert after and set(after) == {model.versions["rf20"]}, "the old version served after the swap"


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(server: str, model: Model, tokens: dict,
                                                                 store, api_factory, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from core import audit
    from tests.support.mlflow_models import log_model

    broken_uri = log_model(store.uri, store.artifacts, "lr")
    broken = store.register_uri(broken_uri, model.name)
    location = Path(MlflowClient(store.uri, store.uri).get_model_version_download_uri(model.name, str(broken)))
    (location / "model.skops").write_bytes(b"not a model")
    with httpx.Client(base_url=server, headers=bearer(tokens["viewer"]), timeout=30) as client:
        first = client.post(f"/v1/models/{model.name}/predict", json={"records": records(1)})
        assert first.json()["version"] == model.versions["lr"]
        store.move(model.name, broken)
        with api_factory() as session:
            event = wait_until(lambda: next((e for e in audit.recent(session, limit=20)
                                             if e.action == "serving.reload_failed"), None), timeout=5)
        assert event.details["version"] == broken and event.details["serving"] == model.versions["lr"]
        for _ in range(5):
            answer = client.post(f"/v1/models/{model.name}/predict", json={"records": records(1)})
            assert answer.status_code == 200 and answer.json()["version"] == model.versions["lr"]
        metrics = client.get("/metrics").text
        assert f'leanops_model_reload_failures_total{{alias="champion",model="{model.name}"}} 1.0' in metrics
        store.move(model.name, model.versions["rf20"])  # a later good version is still picked up
        wait_until(lambda: client.post(f"/v1/models/{model.name}/predict",
                                       json={"records": records(1)}).json()["version"] == model.versions["rf20"],
                   timeout=5)


def test_1000_requests_at_concurrency_16_give_1000_log_rows(tmp_path: Path, db_url: str, store, model: Model) -> None:
    """On SQLite and on PostgreSQL."""
    from api.app import create_app
    from core.accounts import auth
    from core.platform.database import transaction
    from tests.support.api import live_server, serving_settings
    from tests.support.factories import admin_actor

    settings = serving_settings(tmp_path / "ws", db_url, store)
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        token, _ = auth.create_token(session, actor=admin_actor(), role="viewer")
    app = create_app(settings, factory=factory)
    rows = records(50)
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    try:
        with live_server(app) as server, ThreadPoolExecutor(16) as pool, \
                httpx.Client(base_url=server, headers=bearer(token), timeout=60, limits=limits) as client:

            def one(i: int) -> tuple[int, str]:
                answer = client.post(f"/v1/models/{model.name}/predict", json={"records": [rows[i % 50]]})
                return answer.status_code, answer.json().get("request_id", "")

            results = list(pool.map(one, range(1000)))
            assert app.state.runtime.writer.drain(30)
        assert [s for s, _ in results if s != 200] == []
        assert len({rid for _, rid in results}) == 1000
        with factory() as session:
            assert reads.count(session, store=settings.data_store, model=model.name) == 1000
    finally:
        engine.dispose()


def _serve(settings_env: dict[str, str], port: int) -> subprocess.Popen:
    env = os.environ | settings_env | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    return subprocess.Popen([sys.executable, "cli.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_sigterm_mid_load_loses_no_acknowledged_prediction(api_settings, model: Model, tokens: dict,
                                                           api_factory) -> None:
    port = free_port()
    env = {"LEANOPS_HOME": str(api_settings.home), "LEANOPS_DB_URL": api_settings.db_url,
           "LEANOPS_MLFLOW_URI": api_settings.mlflow_uri, "LEANOPS_ARTIFACTS": api_settings.artifacts,
           "LEANOPS_SCHEDULER": "off"}
    proc = _serve(env, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(url), timeout=60, every=0.2)
        acknowledged: list[str] = []
        lock = threading.Lock()
        batch = records(200)

        def load(worker: int) -> None:
            with httpx.Client(base_url=url, headers=bearer(tokens["viewer"]), timeout=30) as client:
                for i in range(10_000):
                    body = batch if i % 3 == 0 else batch[worker: worker + 1]
                    try:
                        answer = client.post(f"/v1/models/{model.name}/predict", json={"records": body})
                    except httpx.HTTPError:
                        return  # the server went away: nothing more can be acknowledged
                    if answer.status_code != 200:
                        return
                    with lock:
                        acknowledged.append(answer.json()["request_id"])

        threads = [threading.Thread(target=load, args=(w,)) for w in range(12)]
        for t in threads:
            t.start()
        wait_until(lambda: len(acknowledged) >= 150, timeout=60)
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=60)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
    # uvicorn shuts down cleanly, then re-raises the signal so the exit status says SIGTERM
    assert proc.returncode in (0, -signal.SIGTERM), output[-3000:]
    assert "Application shutdown complete" in output
    engine = make_engine(api_settings.db_url)
    try:
        with make_session_factory(engine)() as session:
            data = api_settings.data_store
            missing = [rid for rid in acknowledged if not reads.by_request(session, request_id=rid, store=data)]
    finally:
        engine.dispose()
    assert len(acknowledged) >= 150
    assert missing == [], f"{len(missing)} acknowledged predictions have no log rows"


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
def test_openapi_is_served_to_a_token(client, tokens: dict, path: str) -> None:
    assert client.get(path, headers=bearer(tokens["viewer"])).status_code == 200
    assert client.get(path).status_code == 401
