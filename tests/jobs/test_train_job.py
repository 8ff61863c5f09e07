"""The ``train`` job end to end on a real MLflow store: registration, lineage, failures and clean-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from core.data import datasets, lineage
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.platform import job_queue, mlflow_store
from core.platform.database import transaction
from core.training import pipeline, runs
from core.training import workflow as train_job
from core.training.spec import parse_spec
from db.models import AuditEvent, TrainingRun
from jobs import runner
from tests.support.training import *  # noqa: F403
from tests.support.training import SCIENTIST, VIEWER, add_dataset, small_churn
from tests.support.worker import drain

ROOT = Path(__file__).resolve().parents[2]
FAST_FOREST = {"n_estimators": 20}


def launch(factory, actor=SCIENTIST, **raw) -> int:
    spec = parse_spec({"dataset": "churn", "target": "churn"} | raw)
    with transaction(factory) as s:
        return pipeline.launch(s, actor=actor, spec=spec).id


def run(factory, settings, job_id: int) -> job_queue.JobView:
    """Run queued jobs oldest first, as a worker does, until ``job_id`` ran (before it: the retrain.consider
    follow-up of each dataset version the test registered)."""
    while (ran := runner.run_next(factory, settings, "test-worker")) != job_id:
        assert ran is not None, f"job {job_id} was never run"
    with factory() as s:
        return job_queue.get(s, job_id)


def store(settings) -> mlflow_store.MlflowStore:
    return mlflow_store.store_for(settings)


def client(settings):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)


def versions(settings, name: str = "churn") -> list:
    return client(settings).search_model_versions(f"name = '{name}'")


def test_launched_job_registers_a_version_with_lineage_and_records_the_run(factory, workspace, tmp_path):
    version = add_dataset(factory, workspace, small_churn())
    job_id = launch(factory, sensitive="gender", params=FAST_FOREST)
    with factory() as s:
        assert job_queue.get(s, job_id).params["dataset"] == "churn:1"  # pinned at launch
    job = run(factory, workspace, job_id)
    assert job.status == "succeeded", job.log
    result = job.result
    assert (result["model_name"], result["model_version"]) == ("churn", 1)
    assert [c["name"] for c in result["gates"]["checks"]][0] == "metric f1"
    if result["gates"]["passed"]:  # a version that passes every gate at registration is the challenger
        assert client(workspace).get_model_version_by_alias("churn", "challenger").version in (1, "1")
    assert result["metrics"]["f1"] > 0.8 and "demographic_parity_ratio" in result["metrics"]
    assert "registered churn version 1" in job.log

    with factory() as s:
        row = runs.for_job(s, job_id)
        ref_stats = runs.reference_for(s, model="churn", version=1)
        trained = s.scalars(select(AuditEvent).where(AuditEvent.action == "model.trained")).one()
        links = lineage.runs_for(s, ref="churn:1")
    assert (row.status, row.model_version, row.mlflow_run_id, row.dataset_sha256) == (
        "succeeded", 1, result["run_id"], version.sha256)
    assert row.score == result["metrics"]["f1"] and row.baseline["f1"] < row.score
    assert row.fairness["gender"]["demographic_parity_ratio"] == result["metrics"]["demographic_parity_ratio"]
    assert {"confusion_matrix", "roc", "pr", "importance", "fairness"} <= set(row.plots)
    assert set(ref_stats["columns"]) == set(small_churn().columns) - {"churn"}
    assert trained.actor == "sam" and trained.subject == "model:churn" and trained.details["version"] == 1
    assert [(link.run_id, link.model_version) for link in links] == [(result["run_id"], 1)]

    mv = mlflow_store.version_info(store(workspace), name="churn", version=1)
    tags = mv["tags"]
    assert (tags["leanops.dataset"], tags["leanops.dataset_sha256"], tags["leanops.job_id"]) == (
        "churn:1", version.sha256, str(job_id))
    assert tags["leanops.code_version"] == pipeline.code_version() and mv["run_id"] == result["run_id"]
    logged = client(workspace).get_logged_model(mv["source"].removeprefix("models:/"))
    assert logged.artifact_location.removeprefix("file://").startswith(str(workspace.artifacts))
    run_info = mlflow_store.run_info(store(workspace), result["run_id"])
    assert run_info["status"] == "FINISHED" and run_info["metrics"]["f1"] == result["metrics"]["f1"]
    assert run_info["params"]["n_estimators"] == "20" and "baseline_f1" in run_info["metrics"]
    mlflow_run = client(workspace).get_run(result["run_id"])
    assert mlflow_run.inputs.dataset_inputs[0].dataset.digest == version.sha256[:36]
    artifacts = {a.path for a in client(workspace).list_artifacts(result["run_id"], "plots")}
    assert {"plots/confusion_matrix.png", "plots/plots.json"} <= artifacts
    reference = client(workspace).download_artifacts(result["run_id"], "reference/reference.json", str(tmp_path))
    assert json.loads(Path(reference).read_text())["rows"] == 480


def test_the_model_loads_in_a_plain_python_process_and_predicts_raw_records(factory, workspace, tmp_path):
    add_dataset(factory, workspace, small_churn())
    assert run(factory, workspace, launch(factory, params=FAST_FOREST)).status == "succeeded"
    script = textwrap.dedent("""
        import json, sys
        import mlflow, pandas as pd
        model = mlflow.pyfunc.load_model("models:/churn/1")
        records = [
            {"customer_age": 34.0, "tenure_months": 3.0, "monthly_charges": 99.5, "total_charges": 298.5,
             "support_calls": 4.0, "contract": "month-to-month", "payment_method": "electronic-check",
             "region": "north", "gender": "female", "senior": False},
            {"customer_age": None, "tenure_months": 60.0, "monthly_charges": None, "total_charges": 3000.0,
             "support_calls": None, "contract": "two-year", "payment_method": None, "region": "atlantis",
             "gender": None, "senior": None},
            {"tenure_months": 12.0, "contract": "one-year"},
        ]
        predictions = model.predict(pd.DataFrame(records))
        leanops = [m for m in sys.modules if m.split(".")[0] in ("core", "db", "jobs", "ui", "cli")]
        print(json.dumps({"predictions": [int(p) for p in predictions], "leanops_modules": leanops}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEANOPS_", "PYTHON"))}
    env["MLFLOW_TRACKING_URI"] = workspace.mlflow_uri
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(out["predictions"]) == 3 and set(out["predictions"]) <= {0, 1} and out["leanops_modules"] == []
    assert out["predictions"][0] == 1 and out["predictions"][1] == 0  # a new month-to-month caller churns


def test_reproduce_gives_the_same_metrics(factory, workspace):
    add_dataset(factory, workspace, small_churn())
    first = run(factory, workspace, launch(factory, params=FAST_FOREST, seed=7))
    add_dataset(factory, workspace, small_churn(seed=8))  # a newer version must not be picked up
    with factory() as s:
        original = runs.for_job(s, first.id)
    with transaction(factory) as s:
        again_id = runs.reproduce(s, actor=SCIENTIST, run_id=original.id).id
    again = run(factory, workspace, again_id)
    with factory() as s:
        repeat = runs.for_job(s, again.id)
    assert (repeat.dataset_version, repeat.params, repeat.seed) == (1, original.params, 7)
    assert repeat.spec["reproduces"] == original.id and repeat.model_version == 2
    assert repeat.metrics == pytest.approx(original.metrics, rel=1e-9)
    with transaction(factory) as s, pytest.raises(PermissionDenied):
        runs.reproduce(s, actor=VIEWER, run_id=original.id)


def test_search_registers_its_best_candidate(factory, workspace):
    add_dataset(factory, workspace, small_churn())
    job = run(factory, workspace, launch(factory, model="linear",
                                         search={"method": "grid", "candidates": 3, "folds": 3}))
    assert job.status == "succeeded", job.log
    with factory() as s:
        row = runs.for_job(s, job.id)
    table = row.search["candidates"]
    best = min(table, key=lambda r: r["rank"])
    assert len(table) == 3 and row.params == best["params"] == row.search["best"]
    assert best["mean"] == max(r["mean"] for r in table)
    assert "search: best of 3 candidates" in job.log and row.model_version == 1
    params = mlflow_store.run_info(store(workspace), row.mlflow_run_id)["params"]
    assert float(params["C"]) == best["params"]["C"]


def test_failed_certificate_stops_the_job_unless_the_spec_allows_it(factory, workspace):
    add_dataset(factory, workspace, small_churn())
    bad = small_churn(seed=9)
    bad.loc[:5, "contract"] = "lifetime"
    assert not add_dataset(factory, workspace, bad).certificate_passed
    # "churn" alone means churn:1, the newest certified version (issue 26); the failed one is named
    job = run(factory, workspace, launch(factory, dataset="churn:2", params=FAST_FOREST))
    assert job.status == "failed"
    assert job.error.startswith("dataset churn:2's certificate failed (allowed values contract: unexpected: "
                                "'lifetime' (6 rows)")
    assert versions(workspace) == []
    allowed = run(factory, workspace, launch(factory, dataset="churn:2", params=FAST_FOREST,
                                             allow_failed_certificate=True))
    assert allowed.status == "succeeded" and "failed its quality certificate" in allowed.log


@pytest.mark.parametrize(("change", "raw", "reason"), [
    ("one class", {}, "target 'churn' has one class (0) in all 600 rows"),
    ("text target", {"target": "region", "task": "regression"}, "regression needs a numeric target"),
    ("constant column", {}, "column(s) carry no signal in churn:1 (constant: plan)"),
    ("too few rows", {}, "too few rows: 12 with a target"),
])
def test_bad_data_fails_the_job_with_a_one_line_reason_and_registers_nothing(factory, workspace, change, raw,
                                                                           reason):
    frame = small_churn()
    if change == "one class":
        frame["churn"] = 0
    elif change == "constant column":
        frame["plan"] = "basic"
    elif change == "too few rows":
        frame = frame.groupby("churn").head(6).reset_index(drop=True)
    add_dataset(factory, workspace, frame)
    job = run(factory, workspace, launch(factory, **raw))
    assert job.status == "failed" and reason in job.error and "\n" not in job.error
    assert "Traceback" not in job.log and f"failed: {job.error}" in job.log  # the traceback is for admins only
    assert versions(workspace) == []


def test_bad_launches_are_refused_at_once(factory, workspace):
    add_dataset(factory, workspace, small_churn())
    with pytest.raises(InvalidInput, match="target 'chrun' is not a column of churn:1"):
        launch(factory, target="chrun")
    with pytest.raises(InvalidInput, match="n_estimators=5000 is out of range"):
        launch(factory, params={"n_estimators": 5000})
    with pytest.raises(NotFound, match="no dataset named 'nope'"):
        launch(factory, dataset="nope")
    with pytest.raises(PermissionDenied):
        launch(factory, actor=VIEWER)
    with factory() as s:
        assert job_queue.list_jobs(s, kind="train") == []


def test_cancel_during_the_fit_stops_the_job_and_leaves_no_version(factory, workspace):
    add_dataset(factory, workspace, small_churn(rows=3000))
    drain(factory, workspace)  # the version's retrain.consider follow-up: the thread below runs the train job
    job_id = launch(factory, params={"n_estimators": 1000, "max_depth": 0, "min_samples_leaf": 1})
    worker = threading.Thread(target=runner.run_next, args=(factory, workspace, "test-worker"))
    worker.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with factory() as s:
            if "trees" in job_queue.get(s, job_id).stage:
                break
        time.sleep(0.2)
    with transaction(factory) as s:
        job_queue.cancel(s, actor=SCIENTIST, job_id=job_id)
    worker.join(timeout=120)
    with factory() as s:
        job, row = job_queue.get(s, job_id), runs.for_job(s, job_id)
    assert job.status == "cancelled" and row.status == "cancelled" and row.model_version is None
    assert mlflow_store.run_info(store(workspace), row.mlflow_run_id)["status"] == "KILLED"
    assert versions(workspace) == []


def _refuse_success(factory) -> None:
    """Make the database refuse to record a successful run (as a full disk or a lost connection would)."""
    with transaction(factory) as s:
        if s.bind.dialect.name == "sqlite":
            s.execute(text("CREATE TRIGGER refuse_success BEFORE UPDATE OF status ON training_runs "
                           "WHEN NEW.status = 'succeeded' BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END"))
        else:
            s.execute(text("CREATE FUNCTION refuse_success() RETURNS trigger LANGUAGE plpgsql AS "
                           "$$ BEGIN RAISE EXCEPTION 'disk quota exceeded'; END $$"))
            s.execute(text("CREATE TRIGGER refuse_success BEFORE UPDATE ON training_runs FOR EACH ROW "
                           "WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION refuse_success()"))


def test_a_failure_after_registration_deletes_the_version_and_fails_the_mlflow_run(factory, workspace):
    add_dataset(factory, workspace, small_churn())
    _refuse_success(factory)
    job = run(factory, workspace, launch(factory, params=FAST_FOREST))
    assert job.status == "failed"
    assert job.error.startswith("training failed while recording the run: ") and "disk quota exceeded" in job.error
    assert "\n" not in job.error and "Traceback" not in job.log  # the traceback is for admins only
    with factory() as s:
        row = runs.for_job(s, job.id)
    assert row.status == "failed" and row.model_version is None and "disk quota exceeded" in row.error
    assert mlflow_store.run_info(store(workspace), row.mlflow_run_id)["status"] == "FAILED"
    assert versions(workspace) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_worker_killed_mid_fit_leaves_a_failed_job_run_and_no_version(factory, workspace):
    add_dataset(factory, workspace, small_churn(rows=4000))
    job_id = launch(factory, params={"n_estimators": 1000, "max_depth": 0, "min_samples_leaf": 1})
    env = {**os.environ, "LEANOPS_HOME": str(workspace.home), "LEANOPS_DB_URL": workspace.db_url,
           "LEANOPS_QUEUE_POLL_SECONDS": "0.5", "MLFLOW_DISABLE_TELEMETRY": "true"}
    worker = subprocess.Popen([sys.executable, "cli.py", "worker", "--jobs-only"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and worker.poll() is None:
            with factory() as s:
                if "trees" in job_queue.get(s, job_id).stage:
                    break
            time.sleep(0.3)
        else:
            pytest.fail("the worker never reached the fit")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    with factory() as s:
        mlflow_run = runs.for_job(s, job_id).mlflow_run_id
    assert mlflow_store.run_info(store(workspace), mlflow_run)["status"] == "RUNNING"
    time.sleep(1.5)
    assert runner.reap(factory, workspace.model_copy(update={"job_stale_seconds": 1.0})) == [job_id]
    with factory() as s:  # the reaper's pass cleaned up at once: row and MLflow run failed, said in the job's log
        row, job = runs.for_job(s, job_id), job_queue.get(s, job_id)
        recorded = s.get(TrainingRun, row.id).status
    assert job.status == "failed" and "stopped responding" in job.error
    assert recorded == "failed" and row.error == job.error
    assert mlflow_store.run_info(store(workspace), mlflow_run)["status"] == "FAILED"
    assert versions(workspace) == [] and f"MLflow run {mlflow_run} of job {job_id}: marked FAILED" in job.log
    logged: list[str] = []
    train_job.reconcile(factory, store(workspace), log=logged.append)
    assert logged == [], "nothing left for the next training to tidy"


def test_run_list_filters_and_pages_in_sql(factory, workspace):
    add_dataset(factory, workspace, small_churn())
    ok = run(factory, workspace, launch(factory, model="dummy"))
    bad = small_churn()
    bad["churn"] = 1
    add_dataset(factory, workspace, bad, name="flat")
    failed = run(factory, workspace, launch(factory, dataset="flat"))
    assert (ok.status, failed.status) == ("succeeded", "failed")
    with factory() as s:
        assert [r.status for r in runs.list_runs(s)] == ["succeeded"]  # bad data fails before a row
        assert runs.count_runs(s, status="succeeded", dataset="churn", kind="dummy") == 1
        assert runs.count_runs(s, model="other") == 0
        assert runs.list_runs(s, limit=1, offset=1) == []
        assert runs.filter_values(s) == {"dataset": ["churn"], "model": ["churn"], "kind": ["dummy"]}
        with pytest.raises(InvalidInput, match="status 'done' is unknown"):
            runs.list_runs(s, status="done")
        assert datasets.resolve(s, ref="flat").version == 1
