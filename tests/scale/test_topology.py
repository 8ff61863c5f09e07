"""The grown-up topology, for real: PostgreSQL (metadata + MLflow), S3 (moto's server), a dashboard with
LEANOPS_SCHEDULER=external, the API, one scheduler worker and two job-only workers, each its own process.

Twenty tiny training jobs queued through the API must each run exactly once (one job row, one
training run, one model version each), spread over the workers, with every artifact in the bucket;
a second scheduler must refuse to start and say who holds the lease; the API must serve the promoted
model from S3 (its files checked against the sha256 taken before upload) and refuse a champion moved
directly in MLflow; the promoted model must load with plain ``mlflow.pyfunc.load_model("models:/NAME@champion")``
from S3.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from db.models import AuditEvent, Job, TrainingRun
from db.session import make_engine, make_session_factory
from tests.support.net import free_port
from tests.support.s3 import S3Server

ROOT = Path(__file__).resolve().parents[2]
JOBS = 20
MODEL = "tiny"


# -- PostgreSQL: CI's server, or a throwaway cluster when the binaries are here ---------------------

def _pg_bin() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "initdb").exists():
        return Path(found).resolve().parent
    dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((d for d in dirs if (d / "initdb").exists()), None)


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server URL: LEANOPS_TEST_PG_URL, else a cluster of our own; skipped if neither."""
    if url := os.environ.get("LEANOPS_TEST_PG_URL"):
        yield url
        return
    bin_dir = _pg_bin()
    if bin_dir is None or os.geteuid() != 0:
        pytest.skip("no LEANOPS_TEST_PG_URL and no PostgreSQL binaries to start a server with")
    folder = Path(tempfile.mkdtemp(prefix="leanops-topo-pg-"))
    shutil.chown(folder, "postgres")
    port = free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(bin_dir / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    subprocess.run([*as_pg, str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"), "-w",
                    "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_pg, str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _admin(url: str) -> Any:  # a psycopg connection (imported lazily)
    import psycopg

    return psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                           autocommit=True)


@pytest.fixture
def databases(pg_server: str) -> Iterator[tuple[str, str]]:
    """Fresh metadata and MLflow databases on the server, dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = (f"leanops_topo_{tag}", f"mlflow_topo_{tag}")
    with _admin(pg_server) as conn:
        for name in names:
            conn.execute(f"CREATE DATABASE {name}")
    yield tuple(make_url(pg_server).set(database=n).render_as_string(hide_password=False) for n in names)
    with _admin(pg_server) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- processes -----------------------------------------------------------------------------------

class Deployment:
    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, {}

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=180)
        if check and done.returncode != 0:
            raise AssertionError(f"cli.py {' '.join(args)} exited {done.returncode}: {done.stderr[-3000:]}")
        return done

    def start(self, name: str, *cmd: str) -> subprocess.Popen:
        out = (self.logs / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(list(cmd), cwd=ROOT, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, text=True)
        return self.procs[name]

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 90) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode} before answering")
        try:
            answer = httpx.get(url, timeout=5)
            if answer.status_code == 200:
                return answer
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} did not answer {url} within {timeout} s")


def tiny_csv(path: Path) -> Path:
    rng = np.random.default_rng(3)
    x = rng.normal(size=120)
    pd.DataFrame({"x": x, "z": rng.normal(size=120), "label": np.where(x > 0, "yes", "no")}).to_csv(path, index=False)
    return path


@pytest.fixture
def deployment(tmp_path: Path, databases: tuple[str, str], s3_server: S3Server, s3_bucket: str
               ) -> Iterator[Deployment]:
    meta_url, mlflow_url = databases
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEANOPS_", "AWS_", "MLFLOW_S3"))}
    env |= s3_server.settings_env(s3_bucket, "prod") | {
        "LEANOPS_HOME": str(tmp_path / "ws"), "LEANOPS_DB_URL": meta_url, "LEANOPS_MLFLOW_URI": mlflow_url,
        "LEANOPS_SCHEDULER": "external", "LEANOPS_QUEUE_POLL_SECONDS": "0.5",
        "LEANOPS_ADMIN_PASSWORD": "admin-pass-123",
        "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "PYTHONPATH": str(ROOT)}
    logs = tmp_path / "logs"
    logs.mkdir()
    dep = Deployment(env, logs)
    try:
        yield dep
    finally:
        dep.stop()


@pytest.mark.timeout(900)  # twenty real trainings through three worker processes on two cores
def test_grown_up_topology_runs_each_job_once_with_artifacts_on_s3(deployment: Deployment, tmp_path: Path,
                                                                     s3_server: S3Server, s3_bucket: str) -> None:
    dep = deployment
    dep.cli("init", "--json")
    added = json.loads(dep.cli("dataset", "add", "tiny", str(tiny_csv(tmp_path / "tiny.csv")), "--json").stdout)
    token = json.loads(dep.cli("token", "create", "--role", "scientist", "--owner", "admin", "--json").stdout)["token"]

    api_port, ui_port = free_port(), free_port()
    api = dep.start("api", sys.executable, "cli.py", "serve", "--port", str(api_port))
    ui = dep.start("dashboard", sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                   "--server.port", str(ui_port), "--server.address", "127.0.0.1",
                   "--browser.gatherUsageStats", "false")
    scheduler = dep.start("scheduler", sys.executable, "cli.py", "worker")
    runners = [dep.start(f"runner{i}", sys.executable, "cli.py", "worker", "--jobs-only") for i in (1, 2)]
    base = f"http://127.0.0.1:{api_port}"
    wait_http(f"{base}/health/ready", api, "the API")

    engine = make_engine(dep.env["LEANOPS_DB_URL"])
    factory = make_session_factory(engine)
    try:
        # the scheduler holds the lease (not the dashboard, whose scheduler is external); a second one refuses
        deadline = time.monotonic() + 60
        while "running (schedules: True)" not in dep.log("scheduler"):
            assert scheduler.poll() is None and time.monotonic() < deadline, dep.log("scheduler")
            time.sleep(0.3)
        second = dep.cli("worker", check=False)
        assert second.returncode == 2
        assert "another scheduler is already running" in second.stderr
        assert f":{scheduler.pid}:" in second.stderr  # names the host:pid holding the lease

        auth = {"Authorization": f"Bearer {token}"}
        ids = []
        for i in range(JOBS):
            answer = httpx.post(f"{base}/v1/training-jobs", headers=auth, timeout=30, json={
                "dataset": "tiny", "target": "label", "model": "linear", "seed": i, "model_name": MODEL})
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])
        deadline = time.monotonic() + 540
        while True:
            with factory() as s:
                states = dict(s.execute(select(Job.id, Job.status).where(Job.id.in_(ids))).all())
            if all(v in ("succeeded", "failed", "cancelled") for v in states.values()):
                break
            assert time.monotonic() < deadline, f"jobs still going after 540 s: {states}"
            for name, proc in dep.procs.items():
                assert proc.poll() is None, f"{name} exited: {dep.log(name)[-3000:]}"
            time.sleep(1)

        with factory() as s:
            rows = s.execute(select(Job.id, Job.status, Job.worker, Job.error).where(Job.id.in_(ids))).all()
            runs = s.execute(select(TrainingRun.job_id, func.count()).where(TrainingRun.job_id.in_(ids))
                             .group_by(TrainingRun.job_id)).all()
            versions = list(s.scalars(select(TrainingRun.model_version).where(TrainingRun.job_id.in_(ids))))
        assert [r.status for r in rows] == ["succeeded"] * JOBS, [(r.id, r.error) for r in rows if r.error]
        versions = sorted(versions)  # (after the status check: a failed job's run has no version)
        assert sorted(job for job, n in runs if n == 1) == sorted(ids)  # one training run per job, no more
        assert versions == list(range(1, JOBS + 1))  # one model version per job, none twice
        pids = {int(r.worker.split(":")[1]) for r in rows}
        assert pids <= {scheduler.pid, *(p.pid for p in runners)}
        assert {p.pid for p in runners} <= pids, f"both job runners should have worked: {pids}"

        keys = s3_server.keys(s3_bucket)
        assert f"prod/datasets/{added['sha256']}.parquet" in keys
        assert sum(k.startswith("prod/mlflow/") and k.endswith("/MLmodel") for k in keys) >= JOBS
        workspace = Path(dep.env["LEANOPS_HOME"])
        assert not (workspace / "datasets").exists() and not (workspace / "artifacts").exists()

        promoted = dep.cli("promote", MODEL, "3", "--reason", "topology test", "--json", check=False)
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        assert json.loads(promoted.stdout)["promoted"] is True

        # the API serves the champion from S3, its files checked against the sha256 its training recorded
        def predict() -> httpx.Response:
            return httpx.post(f"{base}/v1/models/{MODEL}/predict", headers=auth, timeout=60,
                              json={"records": [{"x": 2.0, "z": 0.0}, {"x": -2.0, "z": 0.0}]})

        answer = predict()
        assert answer.status_code == 200 and answer.json()["version"] == 3, answer.text
        # a champion moved directly in MLflow (no gates, no audit) is never served: serving follows LeanOps'
        # record, and one run of the aliases.sync job on a worker puts MLflow's alias back, audited
        from mlflow import MlflowClient

        from core.actors import cli_actor
        from core.platform import job_queue
        from core.platform.database import transaction

        mlflow_client = MlflowClient(dep.env["LEANOPS_MLFLOW_URI"], dep.env["LEANOPS_MLFLOW_URI"])
        mlflow_client.set_registered_model_alias(MODEL, "champion", "5")
        for _ in range(3):  # across the API's reload rounds (LEANOPS_SERVING_RELOAD_SECONDS)
            answer = predict()
            assert answer.status_code == 200 and answer.json()["version"] == 3, answer.text
            time.sleep(1)
        with transaction(factory) as s:
            job_queue.enqueue(s, actor=cli_actor(), kind="aliases.sync", params={"model": MODEL})
        deadline = time.monotonic() + 60
        while True:
            with factory() as s:
                restored = s.scalars(select(AuditEvent).where(AuditEvent.action == "model.alias_restored")).all()
            if restored or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        worker_logs = (dep.log("scheduler") + dep.log("runner1") + dep.log("runner2"))[-3000:]
        assert [(e.details["found"], e.details["restored"]) for e in restored] == [(5, 3)], worker_logs
        assert mlflow_client.get_model_version_by_alias(MODEL, "champion").version in (3, "3")
        assert predict().json()["version"] == 3

        # dashboard: its server is up and the app script runs (no scheduler of its own: external)
        wait_http(f"http://127.0.0.1:{ui_port}/_stcore/health", ui, "the dashboard")
        assert "Traceback" not in dep.log("dashboard")
    finally:
        engine.dispose()

    # plain MLflow, no LeanOps code: the tracking server's URI and the usual S3 variables
    plain = {k: v for k, v in os.environ.items() if not k.startswith(("LEANOPS_", "AWS_", "MLFLOW_"))}
    plain |= {"MLFLOW_TRACKING_URI": dep.env["LEANOPS_MLFLOW_URI"],
              "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint, "AWS_ACCESS_KEY_ID": dep.env["LEANOPS_S3_ACCESS_KEY_ID"],
              "AWS_SECRET_ACCESS_KEY": dep.env["LEANOPS_S3_SECRET_ACCESS_KEY"], "AWS_DEFAULT_REGION": "us-east-1",
              "MLFLOW_DISABLE_TELEMETRY": "true"}
    script = ("import mlflow, pandas as pd; m = mlflow.pyfunc.load_model('models:/tiny@champion'); "
              "print(list(m.predict(pd.DataFrame({'x': [2.0, -2.0], 'z': [0.0, 0.0]}))))")
    loaded = subprocess.run([sys.executable, "-c", script], cwd=tempfile.gettempdir(), env=plain, capture_output=True,
                            text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip() == "['yes', 'no']"
