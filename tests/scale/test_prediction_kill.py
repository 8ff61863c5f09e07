"""SIGKILL the real API under load, several times: every acknowledged prediction is in the log exactly once.

The API (``cli.py serve``) answers a predict only once the request's records are durable in its journal
segment; the process that starts next replays what the killed one left. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import select

from db.models import PredictionLog
from db.session import make_engine, make_session_factory
from tests.api.conftest import (  # noqa: F401 - fixtures: a registered model served the LeanOps way, tokens
    api_factory,
    api_settings,
    metadata_url,
    mlflow_test_store,
    model,
    store,
    tokens,
)
from tests.support.api import Model, bearer
from tests.support.mlflow_models import records
from tests.support.net import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    env = os.environ | env | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "cli.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _load(url: str, token: str, model: str, acknowledged: dict[str, int], lock: threading.Lock,
          stop: threading.Event, worker: int) -> None:
    """Single records, and now and then 20 at once, until the server goes away or ``stop`` is set."""
    batch = records(20)
    with httpx.Client(base_url=url, headers=bearer(token), timeout=30) as client:
        i = 0
        while not stop.is_set():
            body = batch if i % 10 == 0 else batch[(worker + i) % 20: (worker + i) % 20 + 1]
            i += 1
            try:
                answer = client.post(f"/v1/models/{model}/predict", json={"records": body})
            except httpx.HTTPError:
                return  # killed: nothing more can be acknowledged
            if answer.status_code != 200:
                return
            with lock:
                acknowledged[answer.json()["request_id"]] = len(body)


def test_sigkill_under_load_loses_and_duplicates_no_acknowledged_prediction(db_url: str, api_settings, model: Model,
                                                                            tokens: dict, tmp_path: Path) -> None:
    env = {"LEANOPS_HOME": str(api_settings.home), "LEANOPS_DB_URL": api_settings.db_url,
           "LEANOPS_MLFLOW_URI": api_settings.mlflow_uri, "LEANOPS_ARTIFACTS": api_settings.artifacts,
           "LEANOPS_SCHEDULER": "off"}
    acknowledged: dict[str, int] = {}
    lock = threading.Lock()
    log = tmp_path / "serve.log"
    kills = []
    for kill_after in (60, 300, 30):  # several instants: early, deep into the load, right after a restart
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _serve(env, port, log)
        try:
            wait_until(lambda: _up(url), timeout=90, every=0.2, what="the API to start")
            stop = threading.Event()
            before = len(acknowledged)
            threads = [threading.Thread(target=_load, args=(url, tokens["viewer"], model.name, acknowledged, lock,
                                                            stop, w)) for w in range(16)]
            for t in threads:
                t.start()
            wait_until(lambda: len(acknowledged) - before >= kill_after, timeout=120, what="answers")
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            stop.set()
            for t in threads:
                t.join(60)
            kills.append(len(acknowledged) - before)
        finally:
            if proc.poll() is None:
                proc.kill()
    # The next start replays the killed processes' segments; SIGTERM then stops it cleanly.
    port = free_port()
    proc = _serve(env, port, log)
    engine = make_engine(api_settings.db_url)
    factory = make_session_factory(engine)
    try:
        wait_until(lambda: _up(f"http://127.0.0.1:{port}"), timeout=90, every=0.2, what="the API to restart")

        def logged() -> Counter[tuple[str, int]]:
            with factory() as session:
                return Counter((rid, i) for rid, i in session.execute(
                    select(PredictionLog.request_id, PredictionLog.record_index).where(PredictionLog.model == model.name)))

        def replayed() -> bool:
            rows = logged()
            return all((rid, 0) in rows for rid in acknowledged)

        wait_until(replayed, timeout=60, every=0.5, what="the replay of the killed processes' segments")
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        rows = logged()
    finally:
        if proc.poll() is None:
            proc.kill()
        engine.dispose()
    output = log.read_text(errors="replace")
    assert "replayed prediction segment" in output, output[-3000:]
    missing = [rid for rid, n in acknowledged.items() if any((rid, i) not in rows for i in range(n))]
    twice = [key for key, n in rows.items() if n > 1]
    assert len(acknowledged) >= 390 and all(k >= 30 for k in kills), kills
    assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged requests lost (kills after {kills})"
    assert twice == [], f"{len(twice)} logged records stored twice"
    assert list((api_settings.home / "prediction-log" / "segments").glob("*.seg")) == []
