"""Batch scoring: the output equals in-process predictions row for row, every row is in the prediction log under
its batch id, feedback by id joins, the queued job's upload → download, and what a kill mid-run leaves."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from core.actors import cli_actor
from core.errors import InvalidInput
from core.platform.database import reading
from core.platform.prediction_log import batches, reads
from core.serving import batch, batch_io, batch_runs
from core.settings import Settings
from jobs.runner import run_next
from tests.support import mlflow_models
from tests.support.api import Model, bearer
from tests.support.paths import ROOT


def _frame(rows: int) -> pd.DataFrame:
    X, _ = mlflow_models.churn_data()
    frame = X.sample(rows, replace=True, random_state=3).reset_index(drop=True)
    frame.insert(0, "customer_id", [f"c{i:05d}" for i in range(rows)])
    return frame


def test_scored_rows_equal_in_process_predictions_and_are_logged_with_the_batch_id(
        model: Model, api_settings: Settings, api_factory: sessionmaker[Session], tmp_path: Path) -> None:
    frame = _frame(700)
    frame.to_csv(tmp_path / "in.csv", index=False)
    source = batch.open_source(api_factory, api_settings, path=tmp_path / "in.csv", chunk_rows=128)  # 6 chunks
    out = tmp_path / "scored.parquet"
    scored = batch.score(api_factory, api_settings, actor=cli_actor(), model=model.name, source=source,
                         output=batch_io.FileOutput(out), id_column="customer_id")
    assert scored.rows == 700 and scored.version == model.versions["lr"]

    loaded = batch.load_model(api_factory, api_settings, model=model.name)
    expected = loaded.model.predict(pd.read_csv(tmp_path / "in.csv").drop(columns="customer_id"))
    result = pq.read_table(out).to_pandas()
    assert list(result.columns[:2]) == ["customer_id", "prediction"]
    assert result["customer_id"].tolist() == frame["customer_id"].tolist()
    np.testing.assert_array_equal(result["prediction"].to_numpy(), expected)
    proba = loaded.model.predict_proba(pd.read_csv(tmp_path / "in.csv").drop(columns="customer_id"))
    np.testing.assert_allclose(result[[f"probability_{c}" for c in loaded.classes]].to_numpy(), proba)

    store = api_settings.data_store
    logged = batches.batch_records(store, model=model.name, batch_id=scored.batch_id)
    assert sorted(i for i, _, _ in logged) == list(range(700))
    assert {rid for _, rid, _ in logged} == set(frame["customer_id"])
    with reading(api_factory) as session:
        assert reads.count(session, store=store, model=model.name) == 700  # every reader of the log sees them
        run = batch_runs.get(session, batch_id=scored.batch_id)
    assert (run.status, run.rows, run.output_sha256) == ("succeeded", 700, scored.output_sha256)
    window = reads.window(api_factory, store, model=model.name, since=run.started_at - pd.Timedelta(minutes=1),
                          features=["tenure_months"])
    assert len(window) == 700 and window["output"].tolist() == expected.tolist()


def test_feedback_by_batch_id_and_ids_joins_the_logged_predictions(
        client: TestClient, tokens: dict[str, str], model: Model, api_settings: Settings,
        api_factory: sessionmaker[Session], tmp_path: Path) -> None:
    frame = _frame(50)
    frame.to_parquet(tmp_path / "in.parquet")
    source = batch.open_source(api_factory, api_settings, path=tmp_path / "in.parquet")
    scored = batch.score(api_factory, api_settings, actor=cli_actor(), model=model.name, source=source,
                         output=batch_io.FileOutput(tmp_path / "out.csv"), id_column="customer_id")
    predictions = pd.read_csv(tmp_path / "out.csv").set_index("customer_id")["prediction"]
    ids = ["c00007", "c00003", "c00042"]
    labels = [int(1 - predictions[i]) for i in ids]  # all three wrong
    answer = client.post(f"/v1/models/{model.name}/feedback", headers=bearer(tokens["admin"]),
                         json={"batch_id": scored.batch_id, "ids": ids, "labels": labels})
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 3
    with reading(api_factory) as session:
        joined = reads.labelled(session, api_settings.data_store, model=model.name)
    assert sorted((int(p), int(lbl)) for _, _, p, lbl in joined) == sorted(
        (int(predictions[i]), lbl) for i, lbl in zip(ids, labels, strict=True))
    unknown = client.post(f"/v1/models/{model.name}/feedback", headers=bearer(tokens["admin"]),
                          json={"batch_id": scored.batch_id, "ids": ["nope"], "labels": [1]})
    assert unknown.status_code == 404 and "'nope'" in unknown.json()["detail"]
    both = client.post(f"/v1/models/{model.name}/feedback", headers=bearer(tokens["admin"]),
                       json={"batch_id": scored.batch_id, "request_id": "x", "ids": ["c00001"], "labels": [1]})
    assert both.status_code == 422


def test_a_bad_row_is_refused_naming_the_row_and_column_and_leaves_no_output(
        model: Model, api_settings: Settings, api_factory: sessionmaker[Session], tmp_path: Path) -> None:
    frame = _frame(300).astype({"tenure_months": object})
    frame.loc[257, "tenure_months"] = "twelve"
    (tmp_path / "io").mkdir()
    frame.to_csv(tmp_path / "io" / "in.csv", index=False)
    source = batch.open_source(api_factory, api_settings, path=tmp_path / "io" / "in.csv", chunk_rows=100)
    with pytest.raises(InvalidInput, match=r"row 258.*tenure_months"):
        batch.score(api_factory, api_settings, actor=cli_actor(), model=model.name, source=source,
                    output=batch_io.FileOutput(tmp_path / "io" / "out.parquet"))
    assert sorted(p.name for p in (tmp_path / "io").iterdir()) == ["in.csv"]  # no output, no temporary file
    assert reads.count(api_factory, store=api_settings.data_store, model=model.name) == 0


def test_queued_batch_job_upload_then_download(client: TestClient, tokens: dict[str, str], model: Model,
                                               api_settings: Settings, api_factory: sessionmaker[Session]) -> None:
    frame = _frame(120)
    data = frame.to_csv(index=False).encode()
    queued = client.post(f"/v1/models/{model.name}/batch-jobs", headers=bearer(tokens["scientist"]),
                         files={"file": ("customers.csv", io.BytesIO(data), "text/csv")},
                         data={"id_column": "customer_id"})
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["id"]
    early = client.get(f"/v1/models/{model.name}/batch-jobs/{job_id}/output", headers=bearer(tokens["viewer"]))
    assert early.status_code == 422 and "queued" in early.json()["detail"]
    ran = []
    while (done := run_next(api_factory, api_settings, "test-worker")) is not None:  # the promotion's follow-ups too
        ran.append(done)
    assert job_id in ran
    status = client.get(f"/v1/jobs/{job_id}", headers=bearer(tokens["viewer"])).json()
    assert status["status"] == "succeeded", status
    assert status["result"]["rows"] == 120
    got = client.get(f"/v1/models/{model.name}/batch-jobs/{job_id}/output", headers=bearer(tokens["viewer"]))
    assert got.status_code == 200
    table = pq.read_table(io.BytesIO(got.content)).to_pandas()
    assert table["customer_id"].tolist() == frame["customer_id"].tolist()
    assert not list((api_settings.home / "tmp" / "batch-inputs").iterdir())  # the staged upload went


def test_sigkill_mid_scoring_leaves_no_partial_output_and_a_rerun_works(
        model: Model, api_settings: Settings, api_factory: sessionmaker[Session], tmp_path: Path) -> None:
    frame = _frame(6_000)
    frame.to_parquet(tmp_path / "in.parquet", row_group_size=500)
    out = tmp_path / "out" / "scored.parquet"
    env = os.environ | {"LEANOPS_HOME": str(api_settings.home), "LEANOPS_DB_URL": api_settings.db_url,
                        "LEANOPS_MLFLOW_URI": api_settings.mlflow_uri, "LEANOPS_ARTIFACTS": str(api_settings.artifacts),
                        "LEANOPS_SCHEDULER": "off"}
    args = [sys.executable, "cli.py", "score", model.name, "--input", str(tmp_path / "in.parquet"), "--out", str(out),
            "--chunk-rows", "100", "--json"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # mid-run: its temporary output exists
            if out.parent.is_dir() and any(p.name.startswith(".tmp-") for p in out.parent.iterdir()):
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    store = api_settings.data_store
    assert reads.count(api_factory, store=store, model=model.name) == 0  # nothing in the log
    source = batch.open_source(api_factory, api_settings, path=tmp_path / "in.parquet")  # run again: all of it
    batch.score(api_factory, api_settings, actor=cli_actor(), model=model.name, source=source,
                output=batch_io.FileOutput(out))
    assert pq.read_metadata(out).num_rows == 6_000
    assert reads.count(api_factory, store=store, model=model.name) == 6_000


def test_predict_with_explain_true_adds_contributions_that_add_up(client: TestClient, tokens: dict[str, str],
                                                                   model: Model) -> None:
    records = mlflow_models.records(3)
    answer = client.post(f"/v1/models/{model.name}/predict?explain=true&probabilities=true",
                         headers=bearer(tokens["viewer"]), json={"records": records})
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["explained_output"] == "log-odds of class 1"
    columns = sorted(mlflow_models.FEATURES_NUM + mlflow_models.FEATURES_CAT)
    assert [sorted(e) for e in doc["explanations"]] == [columns] * 3
    for why, base, proba in zip(doc["explanations"], doc["base_values"], doc["probabilities"], strict=True):
        p = proba["1"]
        assert base + sum(why.values()) == pytest.approx(np.log(p / (1 - p)), rel=1e-6)


def test_a_scheduled_batch_job_writes_a_folder_and_a_postgresql_table(
        db_url: str, pg_url: str, model: Model, api_settings: Settings, api_factory: sessionmaker[Session],
        tmp_path: Path) -> None:
    """On SQLite and PostgreSQL metadata stores: the model's batch policy becomes a ``batch:<model>`` schedule with
    a next run; a fired run scores the newest file of the source folder into a folder, then into a table of a
    write-enabled PostgreSQL destination; each run is audited."""
    import json
    import uuid

    from pydantic import SecretStr
    from sqlalchemy import create_engine, text

    from core import audit
    from core.actors import system_actor
    from core.platform import job_queue, schedules
    from core.platform.database import transaction
    from core.retraining import model_schedules
    from tests.conftest import _pg_admin, _with_database

    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    inbox.mkdir()
    _frame(80).to_parquet(inbox / "week-49.parquet")
    dest_db = f"leanops_dest_{uuid.uuid4().hex[:10]}"
    with _pg_admin(pg_url) as conn:
        conn.execute(f"CREATE DATABASE {dest_db}")
    dest_url = _with_database(pg_url, dest_db)
    settings = api_settings.model_copy(update={"batch_destinations": SecretStr(json.dumps({"crm": dest_url}))})

    def policy(destination: str) -> None:
        settings.policies.path.write_text(
            f"models:\n  {model.name}:\n    batch:\n      schedule: '0 3 * * *'\n      source: 'folder:{inbox}'\n"
            f"      destination: '{destination}'\n      id_column: customer_id\n")

    def fire() -> dict:
        with transaction(api_factory) as session:
            done = model_schedules.sync_model_schedules(session, settings)
            row = next(s for s in schedules.list_schedules(session) if s.name == f"batch:{model.name}")
            job = job_queue.enqueue(session, actor=system_actor(f"schedule:{row.name}"), kind=row.kind,
                                    params=row.params)
        while run_next(api_factory, settings, "test-worker") is not None:
            pass
        with reading(api_factory) as session:
            view = job_queue.get(session, job.id)
        assert view.status == "succeeded", view.error
        return done | {"result": view.result, "row": row}

    try:
        policy(f"folder:{outbox}")
        first = fire()
        assert f"batch:{model.name}" in first["created"] and first["row"].kind == "batch.score"
        written = list(outbox.glob("*.parquet"))
        assert len(written) == 1 and pq.read_metadata(written[0]).num_rows == 80
        policy("table:crm/churn_scores")
        second = fire()
        assert second["result"]["out"] == "table:crm/churn_scores"
        engine = create_engine(dest_url)
        with engine.connect() as conn:
            counted = conn.execute(text("select count(*), count(distinct customer_id) from churn_scores")).one()
        assert counted == (80, 80)
        engine.dispose()
        with reading(api_factory) as session:
            scored = [e for e in audit.of_subject(session, subject=f"model:{model.name}")
                      if e.action == "batch.scored"]
        assert len(scored) == 2
    finally:
        with _pg_admin(pg_url) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {dest_db} WITH (FORCE)")
