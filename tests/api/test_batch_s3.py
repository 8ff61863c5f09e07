"""Batch scoring of Parquet on S3, partition by partition: on a local Dask cluster and in this process, against
the S3 stand-in (issue 25 item 4). The cluster's scores equal the model's in-process predictions row for row,
every row reaches the prediction log under the batch id, the run's folder appears with its ``_SUCCESS``
manifest last, and a bad row anywhere leaves nothing but the refusal."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.actors import cli_actor
from core.data.tables import TableLimits
from core.errors import InvalidInput, NotFound
from core.platform.database import reading
from core.platform.prediction_log import batches, reads
from core.serving import batch, batch_parts, batch_runs
from core.settings import Settings
from tests.support import mlflow_models
from tests.support.api import Model
from tests.support.dask_cluster import local_cluster
from tests.support.paths import ROOT
from tests.support.s3 import S3_KEY, S3_REGION, S3_SECRET, S3Server, s3_bucket, s3_server  # noqa: F401


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with local_cluster() as address:
        yield address


def _with_s3(settings: Settings, server: S3Server, **more: object) -> Settings:
    from pydantic import SecretStr

    return settings.model_copy(update={"s3_endpoint_url": server.endpoint, "s3_access_key_id": S3_KEY,
                                       "s3_secret_access_key": SecretStr(S3_SECRET), "s3_region": S3_REGION} | more)


def _upload(server: S3Server, bucket: str, key: str, frame: pd.DataFrame, *, row_group_size: int) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, row_group_size=row_group_size)
    server.client().put_object(Bucket=bucket, Key=key, Body=sink.getvalue().to_pybytes())


def _frame(rows: int, seed: int, first_id: int) -> pd.DataFrame:
    X, _ = mlflow_models.churn_data()
    frame = X.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    frame.insert(0, "customer_id", [f"c{i:05d}" for i in range(first_id, first_id + rows)])
    return frame


@pytest.mark.parametrize("where", ["dask", "here"])
def test_an_s3_prefix_is_scored_partition_by_partition_into_a_run_folder(
        where: str, request: pytest.FixtureRequest, s3_server: S3Server, s3_bucket: str, model: Model,  # noqa: F811
        api_settings: Settings, api_factory: sessionmaker[Session]) -> None:
    address = request.getfixturevalue("cluster") if where == "dask" else ""
    settings = _with_s3(api_settings, s3_server, dask_address=address)
    inputs = [_frame(300, 1, 0), _frame(250, 2, 300)]
    _upload(s3_server, s3_bucket, "in/week-49/part-0.parquet", inputs[0], row_group_size=100)
    _upload(s3_server, s3_bucket, "in/week-49/part-1.parquet", inputs[1], row_group_size=100)
    _upload(s3_server, s3_bucket, "in/week-49/_ignored.parquet", inputs[1].head(5), row_group_size=100)
    stages: list[str] = []

    parts = batch_parts.plan(batch_parts.S3Access.of(settings), f"s3://{s3_bucket}/in/week-49/",
                             limits=TableLimits(), part_rows=200)
    assert [(p.rows, p.offset, p.start) for p in parts] == [(200, 0, 0), (100, 200, 200), (200, 300, 0),
                                                           (50, 500, 200)]
    scored = batch_parts.score_s3(api_factory, settings, actor=cli_actor(), model=model.name,
                                  source=f"s3://{s3_bucket}/in/week-49/", out=f"s3://{s3_bucket}/scores/",
                                  id_column="customer_id", chunk_rows=64,
                                  progress=lambda share, stage: stages.append(stage))
    assert scored.rows == 550 and scored.version == model.versions["lr"]
    assert ("on the Dask cluster" if address else "in this process") in stages[0]

    folder = scored.out.removeprefix(f"s3://{s3_bucket}/")
    keys = [k for k in s3_server.keys(s3_bucket) if not k.endswith("/")]  # pyarrow leaves folder markers
    assert sorted(k for k in keys if k.startswith("scores/")) == [
        f"{folder}_SUCCESS", f"{folder}part-00000.parquet", f"{folder}part-00001.parquet"]  # no staging left
    manifest_bytes = s3_server.client().get_object(Bucket=s3_bucket, Key=f"{folder}_SUCCESS")["Body"].read()
    manifest = json.loads(manifest_bytes)
    assert (manifest["rows"], manifest["batch_id"]) == (550, scored.batch_id)
    assert scored.output_sha256 == hashlib.sha256(manifest_bytes).hexdigest()

    frames = []
    for part in manifest["parts"]:
        body = s3_server.client().get_object(Bucket=s3_bucket, Key=f"{folder}{part['file']}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == part["sha256"]
        frames.append(pq.read_table(pa.BufferReader(body)).to_pandas())
    result = pd.concat(frames, ignore_index=True)
    everything = pd.concat(inputs, ignore_index=True)
    assert result["customer_id"].tolist() == everything["customer_id"].tolist()
    loaded = batch.load_model(api_factory, settings, model=model.name)
    X = everything.drop(columns="customer_id")
    for name in X.select_dtypes(object).columns:  # a missing text value of a file is NaN, as training read files
        X[name] = X[name].where(X[name].notna(), np.nan)
    np.testing.assert_array_equal(result["prediction"].to_numpy(), loaded.model.predict(X))
    np.testing.assert_allclose(result[[f"probability_{c}" for c in loaded.classes]].to_numpy(),
                               loaded.model.predict_proba(X))

    logged = batches.batch_records(settings.data_store, model=model.name, batch_id=scored.batch_id)
    assert sorted(i for i, _, _ in logged) == list(range(550))
    assert {rid for _, rid, _ in logged} == set(everything["customer_id"])
    with reading(api_factory) as session:
        run = batch_runs.get(session, batch_id=scored.batch_id)
    assert (run.status, run.rows, run.out) == ("succeeded", 550, scored.out)


def test_a_bad_row_in_any_partition_leaves_nothing_and_names_the_object_and_row(
        cluster: str, s3_server: S3Server, s3_bucket: str, model: Model,  # noqa: F811
        api_settings: Settings, api_factory: sessionmaker[Session]) -> None:
    from dask.distributed import Client

    settings = _with_s3(api_settings, s3_server, dask_address=cluster)
    good, bad = _frame(3_000, 3, 0), _frame(120, 4, 3_000)  # the good part is still scoring when the bad one fails
    bad["tenure_months"] = bad["tenure_months"].astype(str)
    bad.loc[77, "tenure_months"] = "eleven"
    _upload(s3_server, s3_bucket, "in/a.parquet", good, row_group_size=500)
    _upload(s3_server, s3_bucket, "in/b.parquet", bad, row_group_size=60)

    with pytest.raises(InvalidInput, match=r"s3://.*/in/b\.parquet.*row 78.*tenure_months"):
        batch_parts.score_s3(api_factory, settings, actor=cli_actor(), model=model.name,
                             source=f"s3://{s3_bucket}/in/", out=f"s3://{s3_bucket}/scores/", chunk_rows=25)
    with Client(cluster, set_as_default=False) as client:  # a running task cannot be cancelled: let it end
        deadline = time.monotonic() + 60
        while any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert [k for k in s3_server.keys(s3_bucket) if not k.startswith("in/") and not k.endswith("/")] == []
    with reading(api_factory) as session:
        runs = batch_runs.of_model(session, model=model.name)
    assert [r.status for r in runs] == ["failed"]
    assert not batches.batch_exists(settings.data_store, model=model.name, batch_id=runs[0].id)

    with pytest.raises(NotFound, match="no Parquet object"):
        batch_parts.score_s3(api_factory, settings, actor=cli_actor(), model=model.name,
                             source=f"s3://{s3_bucket}/nothing-here/", out=f"s3://{s3_bucket}/scores/")
    with pytest.raises(InvalidInput, match="must be an S3 prefix ending in '/'"):
        batch_parts.score_s3(api_factory, settings, actor=cli_actor(), model=model.name,
                             source=f"s3://{s3_bucket}/in/", out=f"s3://{s3_bucket}/scores.parquet")


def test_the_score_command_on_the_cluster_and_a_sigkill_mid_run_leaves_no_output(
        cluster: str, s3_server: S3Server, s3_bucket: str, model: Model,  # noqa: F811
        api_settings: Settings, api_factory: sessionmaker[Session]) -> None:
    """``cli.py score MODEL --input s3://… --out s3://…/`` with LEANOPS_DASK_ADDRESS, as a user runs it: killed
    while the cluster scores, nothing appears outside the hidden staging folder and the log has no row; run again,
    it writes the whole run folder."""
    for i in range(6):
        _upload(s3_server, s3_bucket, f"in/part-{i}.parquet", _frame(4_000, 10 + i, 4_000 * i), row_group_size=500)
    env = os.environ | {"LEANOPS_HOME": str(api_settings.home), "LEANOPS_DB_URL": api_settings.db_url,
                        "LEANOPS_MLFLOW_URI": api_settings.mlflow_uri,
                        "LEANOPS_ARTIFACTS": str(api_settings.artifacts), "LEANOPS_SCHEDULER": "off",
                        "LEANOPS_DASK_ADDRESS": cluster, "LEANOPS_S3_ENDPOINT_URL": s3_server.endpoint,
                        "LEANOPS_S3_ACCESS_KEY_ID": S3_KEY, "LEANOPS_S3_SECRET_ACCESS_KEY": S3_SECRET,
                        "LEANOPS_S3_REGION": S3_REGION}
    args = [sys.executable, "cli.py", "score", model.name, "--input", f"s3://{s3_bucket}/in/",
            "--out", f"s3://{s3_bucket}/scores/", "--id-column", "customer_id", "--json"]

    def published() -> list[str]:
        return [k for k in s3_server.keys(s3_bucket) if k.startswith("scores/") and not k.endswith("/")
                and not k.startswith("scores/.tmp-")]

    proc = subprocess.Popen([*args, "--chunk-rows", "40"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # mid-run: a part is staged
            if any(k.startswith("scores/.tmp-") for k in s3_server.keys(s3_bucket)):
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1.0)  # tasks already running on the cluster finish into the staging folder, nowhere else
    assert published() == []
    assert reads.count(api_factory, store=api_settings.data_store, model=model.name) == 0

    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(done.stdout)
    assert doc["rows"] == 24_000 and doc["out"].startswith(f"s3://{s3_bucket}/scores/{model.name}-")
    parts = [f"part-{i:05d}.parquet" for i in range(6)]
    assert sorted(k.rsplit("/", 1)[1] for k in published()) == ["_SUCCESS", *parts]
    assert reads.count(api_factory, store=api_settings.data_store, model=model.name) == 24_000
    assert S3_SECRET not in done.stdout + done.stderr


def test_a_scheduled_run_of_an_s3_policy_writes_its_folder_and_is_audited(
        s3_server: S3Server, s3_bucket: str, model: Model,  # noqa: F811
        api_settings: Settings, api_factory: sessionmaker[Session]) -> None:
    from core import audit
    from core.actors import system_actor
    from core.platform import job_queue, schedules
    from core.platform.database import transaction
    from core.retraining import model_schedules
    from jobs.runner import run_next

    settings = _with_s3(api_settings, s3_server)
    _upload(s3_server, s3_bucket, "crm/latest/customers.parquet", _frame(90, 5, 0), row_group_size=50)
    settings.policies.path.write_text(
        f"models:\n  {model.name}:\n    batch:\n      schedule: '0 3 * * *'\n"
        f"      source: 's3://{s3_bucket}/crm/latest/'\n      destination: 's3://{s3_bucket}/scores/'\n"
        "      id_column: customer_id\n")
    with transaction(api_factory) as session:
        model_schedules.sync_model_schedules(session, settings)
        row = next(s for s in schedules.list_schedules(session) if s.name == f"batch:{model.name}")
        job = job_queue.enqueue(session, actor=system_actor(f"schedule:{row.name}"), kind=row.kind, params=row.params)
    while run_next(api_factory, settings, "test-worker") is not None:
        pass
    with reading(api_factory) as session:
        view = job_queue.get(session, job.id)
        scored = [e for e in audit.of_subject(session, subject=f"model:{model.name}") if e.action == "batch.scored"]
    assert view.status == "succeeded", view.error
    assert view.result["rows"] == 90 and view.result["out"].startswith(f"s3://{s3_bucket}/scores/{model.name}-")
    assert [e.details["out"] for e in scored] == [view.result["out"]]
    folder = view.result["out"].removeprefix(f"s3://{s3_bucket}/")
    assert f"{folder}_SUCCESS" in s3_server.keys(s3_bucket)
