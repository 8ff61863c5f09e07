"""``cli.py serve --workers N`` (issue 18 item 4): N processes on one port, each with its own model cache,
log writer and journal segment; every acknowledged prediction of every process lands in the log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from core.platform.prediction_log import reads
from db.session import make_engine, make_session_factory
from tests.support.api import Model, bearer
from tests.support.mlflow_models import records
from tests.support.net import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _predict_count(url: str, token: str, model: str) -> int:
    """This process's count of predicted records (a fresh connection: either process may answer)."""
    with httpx.Client(headers=bearer(token) | {"Connection": "close"}, timeout=10) as client:
        text = client.get(f"{url}/metrics").text
    found = re.search(rf'^leanops_predicted_records_total\{{model="{re.escape(model)}",version="\d+"\}} (\S+)$',
                      text, re.M)
    return int(float(found.group(1))) if found else 0


def test_two_worker_processes_share_the_port_and_both_log_their_predictions(api_settings, model: Model,
                                                                             tokens: dict) -> None:
    port = free_port()
    env = os.environ | {"LEANOPS_HOME": str(api_settings.home), "LEANOPS_DB_URL": api_settings.db_url,
                        "LEANOPS_MLFLOW_URI": api_settings.mlflow_uri, "LEANOPS_ARTIFACTS": api_settings.artifacts,
                        "LEANOPS_SCHEDULER": "off", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    proc = subprocess.Popen([sys.executable, "cli.py", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    token = tokens["viewer"]
    rows = records(20)
    try:
        wait_until(lambda: _status(f"{url}/health/ready") == 200, timeout=120, every=0.25)

        def one(i: int) -> str:  # a connection per request, so the kernel hands them to either process
            with httpx.Client(headers=bearer(token) | {"Connection": "close"}, timeout=30) as client:
                answer = client.post(f"{url}/v1/models/{model.name}/predict", json={"records": [rows[i % 20]]})
            assert answer.status_code == 200, answer.text
            assert answer.json()["version"] == model.versions["lr"]
            return str(answer.json()["request_id"])

        with ThreadPoolExecutor(8) as pool:
            acknowledged = list(pool.map(one, range(200)))
        # Each process counts only what it answered: two counts that add up to 200 mean both served.
        seen: set[int] = set()
        deadline = time.monotonic() + 60
        while not any(a + b == 200 and a and b for a in seen for b in seen) and time.monotonic() < deadline:
            seen.add(_predict_count(url, token, model.name))
        assert any(a + b == 200 and a and b for a in seen for b in seen), seen
        assert _status(f"{url}/health/ready") == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output = proc.communicate(timeout=90)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0].decode(errors="replace")
    assert len(set(re.findall(r"Started server process \[(\d+)\]", output))) == 2, output[-3000:]
    engine = make_engine(api_settings.db_url)
    try:
        with make_session_factory(engine)() as session:
            data = api_settings.data_store
            missing = [rid for rid in acknowledged if not reads.by_request(session, request_id=rid, store=data)]
    finally:
        engine.dispose()
    assert missing == [], f"{len(missing)} acknowledged predictions have no log rows"
    assert not list((api_settings.home).rglob("*.seg")), "journal segments left behind after a clean stop"


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _workers_of(parent: int) -> list[int]:
    """The worker processes uvicorn spawned for ``parent`` (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def test_a_killed_worker_loses_no_acknowledged_prediction(api_settings, model: Model, tokens: dict) -> None:
    """SIGKILL one of two workers mid-load: its journal segment is left behind, locked by nobody, and is
    replayed (by the worker uvicorn starts in its place, or by the survivor), never by both."""
    port = free_port()
    env = os.environ | {"LEANOPS_HOME": str(api_settings.home), "LEANOPS_DB_URL": api_settings.db_url,
                        "LEANOPS_MLFLOW_URI": api_settings.mlflow_uri, "LEANOPS_ARTIFACTS": api_settings.artifacts,
                        "LEANOPS_SCHEDULER": "off", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    proc = subprocess.Popen([sys.executable, "cli.py", "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "2"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    rows = records(20)
    acknowledged: list[str] = []
    try:
        wait_until(lambda: _status(f"{url}/health/ready") == 200 and len(_workers_of(proc.pid)) == 2,
                   timeout=120, every=0.25)
        first = _workers_of(proc.pid)

        def one(i: int) -> None:
            try:
                with httpx.Client(headers=bearer(tokens["viewer"]) | {"Connection": "close"}, timeout=30) as c:
                    answer = c.post(f"{url}/v1/models/{model.name}/predict", json={"records": [rows[i % 20]]})
            except httpx.HTTPError:
                return  # the worker died with this request: it was never acknowledged
            if answer.status_code == 200:
                acknowledged.append(answer.json()["request_id"])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(150)))
            os.kill(first[0], signal.SIGKILL)
            list(pool.map(one, range(150, 300)))
        wait_until(lambda: len(_workers_of(proc.pid)) == 2 and first[0] not in _workers_of(proc.pid), timeout=60)
        wait_until(lambda: _status(f"{url}/health/ready") == 200, timeout=60)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(300, 340)))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert len(acknowledged) >= 250
    engine = make_engine(api_settings.db_url)
    try:
        with make_session_factory(engine)() as session:
            data = api_settings.data_store
            missing = [rid for rid in acknowledged if not reads.by_request(session, request_id=rid, store=data)]
            doubled = [rid for rid in acknowledged[:50]
                       if len(reads.by_request(session, request_id=rid, store=data)) != 1]
    finally:
        engine.dispose()
    assert missing == [], f"{len(missing)} acknowledged predictions have no log rows"
    assert doubled == []
