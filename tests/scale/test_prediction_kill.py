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
import pytest
from sqlalchemy import select

from core.platform.prediction_log import parquet
from core.platform.prediction_log.writer import Served, rows_of
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
        return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _load(url: str, token: str, name: str, acknowledged: dict[str, int], lock: threading.Lock,
          stop: threading.Event, worker: int) -> None:
    """Single records, and now and then 20 at once, until the server goes away or ``stop`` is set."""
    batch = records(20)
    with httpx.Client(base_url=url, headers=bearer(token), timeout=30) as client:
        i = 0
        while not stop.is_set():
            body = batch if i % 10 == 0 else batch[(worker + i) % 20: (worker + i) % 20 + 1]
            i += 1
            try:
                answer = client.post(f"/v1/models/{name}/predict", json={"records": body})
            except httpx.HTTPError:
                return  # killed: nothing more can be acknowledged
            if answer.status_code != 200:  # not acknowledged (e.g. 503 while the champion loads): go on
                stop.wait(0.05)
                continue
            with lock:
                acknowledged[answer.json()["request_id"]] = len(body)


def test_sigkill_under_load_loses_and_duplicates_no_acknowledged_prediction(
        db_url: str, api_settings, model: Model, tokens: dict, tmp_path: Path) -> None:  # noqa: F811 - fixtures
    env = {"LEANOPS_HOME": str(api_settings.home), "LEANOPS_DB_URL": api_settings.db_url,
           "LEANOPS_MLFLOW_URI": api_settings.mlflow_uri, "LEANOPS_ARTIFACTS": api_settings.artifacts,
           "LEANOPS_SCHEDULER": "off"}
    acknowledged: dict[str, int] = {}
    lock = threading.Lock()
    log = tmp_path / "serve.log"
    kills = []
    # Compaction runs all along, treating the current hour as closed: rows leave the table while the API
    # writes and replays them (a replay must skip what a partition already holds).
    compacting = threading.Event()
    compactions: list[dict] = []
    worker = threading.Thread(target=_compact_all_along, args=(api_settings, compacting, compactions))
    worker.start()
    for kill_after in (300, 500, 200):  # several instants: early, deep into the load, soon after a restart
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _serve(env, port, log)
        try:
            wait_until(lambda: _up(url), timeout=90, every=0.2, what="the API to start")  # noqa: B023 - called now
            stop = threading.Event()
            before = len(acknowledged)
            threads = [threading.Thread(target=_load, args=(url, tokens["viewer"], model.name, acknowledged, lock,
                                                            stop, w)) for w in range(16)]
            for t in threads:
                t.start()
            wait_until(lambda: len(acknowledged) - before >= kill_after,  # noqa: B023 - called now
                       timeout=120, what="answers")
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            stop.set()
            for t in threads:
                t.join(60)
            kills.append(len(acknowledged) - before)
        finally:
            if proc.poll() is None:
                proc.kill()
    compacting.set()
    worker.join(120)
    (tmp_path / "acked.json").write_text(__import__("json").dumps(acknowledged))
    # The next start replays the killed processes' segments; SIGTERM then stops it cleanly.
    port = free_port()
    proc = _serve(env, port, log)
    engine = make_engine(api_settings.db_url)
    factory = make_session_factory(engine)
    try:
        wait_until(lambda: _up(f"http://127.0.0.1:{port}"), timeout=90, every=0.2, what="the API to restart")

        def logged() -> Counter[tuple[str, int]]:
            with factory() as session:
                hot = [(rid, i) for rid, i in session.execute(
                    select(PredictionLog.request_id, PredictionLog.record_index)
                    .where(PredictionLog.model == model.name))]
            cold = [(rid, i) for key in parquet.list_files(api_settings.data_store, parquet.ROOT)
                    for rid, i in zip(*parquet.read_file(api_settings.data_store, key,
                                                         columns=["request_id", "record_index"])
                                      .to_pydict().values(), strict=True)]
            return Counter(hot + cold)

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
    assert len(acknowledged) >= 1000 and all(k >= 200 for k in kills), kills
    assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged requests lost (kills after {kills})"
    assert twice == [], f"{len(twice)} logged records stored twice"
    assert list((api_settings.home / "prediction-log" / "segments").glob("*.seg")) == []
    assert sum(c["rows"] for c in compactions) > 0, "compaction never ran during the load"


def _compact_all_along(settings, stop: threading.Event, results: list[dict]) -> None:
    from datetime import timedelta

    from core.actors import system_actor
    from core.platform.leases import LeaseHeld
    from db.models import utcnow

    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    try:
        while not stop.wait(0.3):
            try:
                results.append(parquet.compact(
                    factory, settings.data_store, actor=system_actor("kill-test"), holder="kill-test",
                    scratch=settings.home / "tmp", now=utcnow() + timedelta(hours=2)))
            except LeaseHeld:
                pass
    finally:
        engine.dispose()


# -- the compactor, killed at several points ----------------------------------------------------

COMPACT_NOW = "2026-11-30T12:40:00+00:00"
COMPACTOR = """
import os, sys
from datetime import datetime
from core.actors import system_actor
from core.platform.prediction_log import parquet
from core.settings import get_settings
from db.session import make_engine, make_session_factory
settings = get_settings()
factory = make_session_factory(make_engine(settings.db_url))
print(parquet.compact(factory, settings.data_store, actor=system_actor("kill-test"),
      holder=f"kill-{os.getpid()}", scratch=settings.home / "tmp", now=datetime.fromisoformat(sys.argv[1]),
      chunk=150, lease_seconds=1))
"""


def _partition_rows(where) -> list[str]:
    return [rid for key in parquet.list_files(where, parquet.ROOT)
            for rid in parquet.read_file(where, key, columns=["request_id"]).column("request_id").to_pylist()]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_compactor_killed_at_several_points_loses_and_duplicates_nothing(db_url: str, tmp_path: Path, where: str,
                                                                         request: pytest.FixtureRequest,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime, timedelta
    from typing import cast

    import numpy as np
    from sqlalchemy import Table, func, insert

    from core.actors import system_actor
    from core.platform.database import transaction
    from core.settings import get_settings

    env = {"LEANOPS_HOME": str(tmp_path / "ws"), "LEANOPS_DB_URL": db_url, "LEANOPS_SCHEDULER": "off"}
    if where == "s3":
        server = request.getfixturevalue("s3_server")
        env |= server.settings_env(server.new_bucket())
        for name in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            monkeypatch.setenv(name, "")  # get_settings exports these; restored after the test
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = get_settings()
    artifacts = settings.data_store
    now = datetime.fromisoformat(COMPACT_NOW)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    try:
        items = []
        for h in range(12):  # twelve closed hours, two models, 1,200 records; and 30 records in the open hour
            at = now - timedelta(hours=13 - h)
            for i in range(50):
                for model in ("churn", "fraud"):
                    ts = at + timedelta(seconds=i)
                    items.append(Served(parquet.new_request_id(ts), ts, model, "champion", 1,
                                        {"x": np.array([float(i)]), "k": np.array(["a"], dtype=object)},
                                        [i % 2], 1.0, "token:ci"))
        items += [Served(parquet.new_request_id(now), now - timedelta(minutes=1), "churn",
                         "champion", 1, {"x": np.array([1.0])}, [0], 1.0) for _ in range(30)]
        with transaction(factory) as session:
            session.execute(insert(cast(Table, PredictionLog.__table__)), rows_of(items))
        closed = {item.request_id for item in items[:1200]}

        kills = []
        for files_before_kill, extra in ((1, 0.0), (4, 0.05), (9, 0.12), (15, 0.02)):
            proc = subprocess.Popen([sys.executable, "-c", COMPACTOR, COMPACT_NOW], cwd=ROOT, env=os.environ | env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            try:
                wait_until(lambda: proc.poll() is not None or len(  # noqa: B023 - called now
                    parquet.list_files(artifacts, parquet.ROOT)) >= files_before_kill,  # noqa: B023
                    timeout=120, every=0.02 if where == "local" else 0.2, what="the compactor to write files")
                threading.Event().wait(extra)
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
                kills.append(proc.returncode)
            finally:
                if proc.poll() is None:
                    proc.kill()
            threading.Event().wait(1.1)  # the killed compactor's lease runs out
        result = parquet.compact(factory, artifacts, actor=system_actor("kill-test"), holder="final",
                                 scratch=tmp_path / "scratch", now=now)
        with factory() as session:
            left = session.scalar(select(func.count()).select_from(PredictionLog)) or 0
        stored = _partition_rows(artifacts)
    finally:
        engine.dispose()
    assert -signal.SIGKILL in kills, f"no compactor was killed mid-way ({kills}); the test proves nothing"
    assert left == 30, "the open hour stays hot; every closed hour left the table"
    assert len(stored) == len(set(stored)) == 1200, (f"{len(stored) - len(set(stored))} duplicated, "
                                                    f"{len(closed - set(stored))} lost; final run {result}")
    assert set(stored) == closed
