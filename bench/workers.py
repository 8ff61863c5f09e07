"""Scaling out, measured side by side in one run.

1. Job runners: 20 queued training jobs drained by 1, then by 2 ``cli.py worker --jobs-only``
   processes (PostgreSQL metadata + MLflow, claims with FOR UPDATE SKIP LOCKED). Throughput is jobs per
   second from the first claim to the last finish (process start-up excluded: the workers are up before
   the jobs are queued). Goal: 2 workers ≥ 1.7× one worker on this 2-core machine.
2. Search: a 40-candidate random-forest search run locally (candidates in turn, folds across the cores)
   and on a 2-worker ``dask.distributed.LocalCluster``, after one warm-up each.

Needs a PostgreSQL server: ``LEANOPS_BENCH_PG_URL`` (or ``LEANOPS_TEST_PG_URL``), e.g.
``postgresql+psycopg://postgres@127.0.0.1:55439/postgres``; fresh databases are created and dropped.
Run: ``PYTHONPATH=. .venv/bin/python bench/workers.py [--jobs 20] [--candidates 40]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
ROOT = Path(__file__).resolve().parents[1]


def _admin(url: str) -> Any:  # a psycopg connection (imported lazily)
    import psycopg
    from sqlalchemy.engine import make_url

    return psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                           autocommit=True)


def drain(server: str, workers: int, jobs: int) -> float:
    """Jobs per second for ``workers`` job-runner processes draining ``jobs`` queued training jobs."""
    import numpy as np
    import pandas as pd
    from sqlalchemy import func, select
    from sqlalchemy.engine import make_url

    from core.actors import Actor
    from core.platform.database import transaction
    from core.training import pipeline
    from core.training.spec import parse_spec
    from db.models import Job
    from db.session import make_engine, make_session_factory

    tag = uuid.uuid4().hex[:8]
    names = [f"bench_meta_{tag}", f"bench_mlflow_{tag}"]
    with _admin(server) as conn:
        for name in names:
            conn.execute(f"CREATE DATABASE {name}")
    meta, mlflow_db = (make_url(server).set(database=n).render_as_string(hide_password=False) for n in names)
    home = Path(tempfile.mkdtemp(prefix="leanops-bench-workers-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")} | {
        "LEANOPS_HOME": str(home), "LEANOPS_DB_URL": meta, "LEANOPS_MLFLOW_URI": mlflow_db,
        "LEANOPS_QUEUE_POLL_SECONDS": "0.2", "LEANOPS_ADMIN_PASSWORD": "bench-pass-123", "PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen] = []
    engine = make_engine(meta)
    try:
        def cli(*args: str) -> None:
            subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)

        cli("init")
        rng = np.random.default_rng(3)
        x = rng.normal(size=300)
        csv = home / "tiny.csv"
        frame = pd.DataFrame({"x": x, "z": rng.normal(size=300), "label": np.where(x > 0, "yes", "no")})
        frame.to_csv(csv, index=False)
        cli("dataset", "add", "tiny", str(csv))
        logs = [(home / f"worker{i}.log").open("w+") for i in range(workers)]
        procs = [subprocess.Popen([sys.executable, "cli.py", "worker", "--jobs-only"], cwd=ROOT, env=env, stdout=log,
                                  stderr=subprocess.STDOUT) for log in logs]
        deadline = time.monotonic() + 120
        while not all("running (schedules: False)" in (home / f"worker{i}.log").read_text() for i in range(workers)):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("workers did not start: " + (home / "worker0.log").read_text()[-2000:])
            time.sleep(0.2)
        factory = make_session_factory(engine)
        with transaction(factory) as session:
            for i in range(jobs):
                spec = parse_spec({"dataset": "tiny", "target": "label", "model": "linear", "seed": i})
                pipeline.launch(session, actor=Actor("bench", "admin"), spec=spec)
        while True:
            with factory() as s:
                left = s.scalar(select(func.count()).select_from(Job).where(Job.status.in_(("queued", "running"))))
            if not left:
                break
            time.sleep(0.5)
        with factory() as s:
            first, last = s.execute(select(func.min(Job.started_at), func.max(Job.finished_at))).one()
            ok = s.scalar(select(func.count()).select_from(Job).where(Job.status == "succeeded"))
        if ok != jobs:
            raise RuntimeError(f"only {ok} of {jobs} jobs succeeded")
        return jobs / (last - first).total_seconds()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        engine.dispose()
        with _admin(server) as conn:
            for name in names:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def search_seconds(candidates: int, address: str) -> float:
    from core.training import pipeline
    from core.training.spec import parse_spec
    from core.workspace.demo import churn_frame

    spec = parse_spec({"dataset": "churn", "target": "churn", "model": "random_forest",
                                "search": {"method": "random", "candidates": candidates, "folds": 3}})
    data = pipeline.prepare(churn_frame(rows=1500), spec, ref="churn:1")
    split = pipeline.split(data, spec)
    started = time.perf_counter()
    pipeline.search(data, split, spec, dask_address=address)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=40)
    args = parser.parse_args()
    server = os.environ.get("LEANOPS_BENCH_PG_URL") or os.environ.get("LEANOPS_TEST_PG_URL")
    if not server:
        sys.exit("set LEANOPS_BENCH_PG_URL (or LEANOPS_TEST_PG_URL) to a PostgreSQL server")

    one = drain(server, 1, args.jobs)
    two = drain(server, 2, args.jobs)
    print(f"job runners, {args.jobs} training jobs: 1 worker {one:.2f} jobs/s, 2 workers {two:.2f} jobs/s, "
          f"ratio {two / one:.2f}× (goal ≥ 1.7×)")

    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        search_seconds(4, "")  # warm-ups: imports, loky pool, Dask workers' imports
        search_seconds(4, cluster.scheduler_address)
        local = search_seconds(args.candidates, "")
        dask = search_seconds(args.candidates, cluster.scheduler_address)
    print(f"search, {args.candidates} random-forest candidates × 3 folds: local {local:.1f} s, "
          f"2-worker LocalCluster {dask:.1f} s, ratio local/dask {local / dask:.2f}×")


if __name__ == "__main__":
    main()
