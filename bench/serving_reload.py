"""Hot reload under traffic: how long after a promotion the API answers with the new champion.

The scenario of tests/api/test_live.py::test_promotion_is_picked_up_under_traffic_without_a_failed_request,
timed: LeanOps' API under a real uvicorn server on 127.0.0.1 (alias polling every 0.5 s, as in the
tests), four client threads sending single-record predictions without pause, and the champion
alias moved back and forth between a logistic regression and a small random forest ``--rounds``
times. For each move it records the time from the move to the first answer from the new version,
failed requests, and answers from the old version to requests sent after the new one had answered.
Prints the median and worst pickup beside the goal the test used to assert (under 5 s).

    PYTHONPATH=. .venv/bin/python bench/serving_reload.py [--rounds 10]

Each move is a forced promotion through LeanOps (what the API serves), so a move costs a little more
than setting MLflow's alias: the pickup is still timed from the move's return.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLIENTS = 4
GOAL_SECONDS = 5.0


def wait(check, timeout: float, what: str) -> Any:  # check's first truthy value
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)
    return value


def first_answer(seen: list[tuple[float, int, int, float]], version: int, after: float) -> float | None:
    """When ``version`` first answered after ``after`` (None: not yet)."""
    return next((ts for ts, _, v, _ in list(seen) if v == version and ts > after), None)


def sent_after(seen: list[tuple[float, int, int, float]], moment: float, count: int) -> bool:
    """Have ``count`` requests sent after ``moment`` been answered?"""
    return sum(sent > moment for _, _, _, sent in list(seen)) >= count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    for name in [n for n in os.environ if n.startswith("LEANOPS_")]:
        del os.environ[name]

    import httpx

    from api.app import create_app
    from core.accounts import auth
    from core.actors import Actor
    from core.platform.database import transaction
    from db.session import make_engine, make_session_factory, migrate
    from tests.support import mlflow_models
    from tests.support.api import LeanOpsStore, bearer, live_server, serving_settings

    started = time.perf_counter()
    mlflow_store = mlflow_models.store()
    model = mlflow_store.fresh_name()
    versions = [mlflow_store.register("lr", model), mlflow_store.register("rf20", model)]
    work = Path(tempfile.mkdtemp(prefix="leanops-bench-reload-"))
    engine = None
    try:
        db_url = f"sqlite:///{work / 'leanops.db'}"
        migrate(db_url)
        settings = serving_settings(work / "ws", db_url, mlflow_store)
        engine = make_engine(db_url)
        factory = make_session_factory(engine)
        # The API serves only moves LeanOps recorded: each move is a (forced) promotion through LeanOps, of
        # versions with a LeanOps training run recording their files' sha256.
        store = LeanOpsStore(mlflow_store.uri, mlflow_store.artifacts, mlflow_store.logged, factory=factory,
                             settings=settings)
        store.move(model, versions[0])
        with transaction(factory) as session:
            token, _ = auth.create_token(session, actor=Actor("bench-admin", "admin"), role="viewer")
        app = create_app(settings, factory=factory)
        print(f"model {model}: v{versions[0]} logistic regression, v{versions[1]} random forest; alias polling "
              f"every {settings.serving_reload_seconds:g} s (set up in {time.perf_counter() - started:.1f} s)")

        rows = mlflow_models.records(1)
        seen: list[tuple[float, int, int, float]] = []  # (answered at, status, version, sent at)
        stop = threading.Event()

        with live_server(app) as url:
            def traffic() -> None:
                with httpx.Client(base_url=url, headers=bearer(token), timeout=30) as client:
                    while not stop.is_set():
                        sent = time.monotonic()
                        answer = client.post(f"/v1/models/{model}/predict", json={"records": rows})
                        version = answer.json().get("version", -1) if answer.status_code == 200 else -1
                        seen.append((time.monotonic(), answer.status_code, version, sent))

            threads = [threading.Thread(target=traffic, daemon=True) for _ in range(CLIENTS)]
            for t in threads:
                t.start()
            pickups: list[float] = []
            stale = 0
            try:
                wait(lambda: len(seen) >= 20, 60, "the first answers")
                for r in range(args.rounds):
                    target = versions[(r + 1) % 2]
                    moved = time.monotonic()
                    store.move(model, target)
                    switched = wait(partial(first_answer, seen, target, moved), 60, f"v{target} to answer")
                    wait(partial(sent_after, seen, switched, 20), 60, "20 requests sent after the swap")
                    late = sum(v != target for _, _, v, sent in list(seen) if sent > switched)
                    stale += late
                    pickups.append(switched - moved)
                    print(f"round {r + 1}: champion -> v{target} answered after {pickups[-1]:.2f} s"
                          + (f", {late} later request(s) still got the old version" if late else ""))
            finally:
                stop.set()
                for t in threads:
                    t.join()
        failed = sum(status != 200 for _, status, _, _ in seen)
        worst = max(pickups)
        print(f"{len(seen):,} requests, {failed} failed, {stale} answered by the old version after the swap")
        print(f"pickup after a promotion: median {statistics.median(pickups):.2f} s, worst {worst:.2f} s "
              f"(goal < {GOAL_SECONDS:g} s): {'OK' if worst < GOAL_SECONDS else 'TOO SLOW'}")
    finally:
        if engine is not None:
            engine.dispose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
