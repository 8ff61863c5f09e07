"""Webhooks: dataset upload (same core function as the Datasets page), training jobs, job status; roles."""

from __future__ import annotations

import io
from contextlib import contextmanager

import httpx
import pytest
from fastapi.testclient import TestClient

from core import audit
from core.data import datasets
from core.platform import job_queue
from core.workspace.demo import churn_frame
from tests.support.api import bearer


def _csv(rows: int = 300, seed: int = 7) -> bytes:
    return churn_frame(rows=rows, seed=seed).to_csv(index=False).encode()


def upload(client: TestClient, token: str, name: str = "churn", data: bytes | None = None,
           **form: str) -> httpx.Response:
    return client.post(f"/v1/datasets/{name}/versions", headers=bearer(token), data=form or None,
                       files={"file": ("churn.csv", io.BytesIO(data if data is not None else _csv()), "text/csv")})


def test_upload_registers_a_version_like_the_datasets_page(client: TestClient, tokens: dict, api_factory) -> None:
    answer = upload(client, tokens["scientist"], description="from the nightly export")
    assert answer.status_code == 201, answer.text
    doc = answer.json()
    assert (doc["name"], doc["version"], doc["rows"], doc["created"]) == ("churn", 1, 300, True)
    assert len(doc["sha256"]) == 64 and "churn" in doc["columns"] and "passed" in doc["quality"]
    again = upload(client, tokens["scientist"])
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["version"] == 1
    assert again.json()["retrain_jobs"] == []  # nothing new, nothing to consider
    assert upload(client, tokens["scientist"], data=_csv(seed=8)).json()["version"] == 2
    with api_factory() as session:
        versions = datasets.list_versions(session, name="churn")
        events = [e for e in audit.recent(session, limit=20) if e.action == "dataset.version_registered"]
        follow_ups = job_queue.list_jobs(session, kind="retrain.consider")
    assert [(j.id, j.params) for j in reversed(follow_ups)] == [  # the API's answer names the job
        (doc["retrain_jobs"][0], {"dataset": "churn", "version": 1, "via_api": True}),
        (follow_ups[0].id, {"dataset": "churn", "version": 2, "via_api": True})]
    assert [v.version for v in versions] == [2, 1]
    assert versions[-1].description == "from the nightly export" and versions[-1].source == "api:churn.csv"
    assert events[0].actor == "token:test-scientist"


def test_a_viewer_uploading_data_gets_403_and_the_refusal_is_audited(client: TestClient, tokens: dict,
                                                                     api_factory) -> None:
    answer = upload(client, tokens["viewer"])
    assert answer.status_code == 403, answer.text
    assert "viewer" in answer.json()["detail"] and "datasets.write" in answer.json()["detail"]
    with api_factory() as session:
        assert datasets.list_datasets(session) == []
        denied = [e for e in audit.recent(session, limit=10) if e.action == "permission.denied"]
    assert denied and denied[0].actor == "token:test-viewer"


@pytest.mark.parametrize(("name", "data", "field"), [
    ("bad name!", None, "dataset name"),
    ("churn", b"", "empty"),
    ("churn", b"\x00\x01\x02binary", "churn.csv"),
])
def test_bad_uploads_are_4xx_with_a_reason(client: TestClient, tokens: dict, name: str, data, field: str) -> None:
    answer = upload(client, tokens["scientist"], name=name, data=data)
    assert 400 <= answer.status_code < 500, answer.text
    assert field in answer.json()["detail"]


def test_upload_without_a_file_names_the_field(client: TestClient, tokens: dict) -> None:
    answer = client.post("/v1/datasets/churn/versions", headers=bearer(tokens["scientist"]))
    assert answer.status_code == 422 and answer.json()["field"] == "file"


def test_training_job_is_queued_and_its_status_readable(client: TestClient, tokens: dict) -> None:
    upload(client, tokens["scientist"])
    answer = client.post("/v1/training-jobs", headers=bearer(tokens["scientist"]),
                         json={"dataset": "churn", "target": "churn", "model": "linear", "sensitive": "gender"})
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert (job["kind"], job["status"]) == ("train", "queued")
    assert job["params"]["dataset"] == "churn:1" and job["params"]["target"] == "churn"  # pinned at launch
    status = client.get(job["url"], headers=bearer(tokens["viewer"]))
    assert status.status_code == 200 and status.json()["id"] == job["id"]
    assert status.json()["created_by"] == "token:test-scientist"


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"target": "churn"}, 422, ["dataset", "Field required"]),
    ({"dataset": "churn", "target": "churn", "colour": "red"}, 422, ["colour"]),
    ({"dataset": "churn", "target": "nope"}, 422, ["target 'nope' is not a column"]),
    ({"dataset": "churn", "target": "churn", "model": "quantum"}, 422, ["quantum"]),
    ({"dataset": "churn", "target": "churn", "holdout": 0.9}, 422, ["holdout"]),
    ({"dataset": "missing", "target": "churn"}, 404, ["missing"]),
])
def test_bad_training_requests_name_the_field(client: TestClient, tokens: dict, body: dict, status: int,
                                              words: list[str]) -> None:
    upload(client, tokens["scientist"])
    answer = client.post("/v1/training-jobs", headers=bearer(tokens["scientist"]), json=body)
    assert answer.status_code == status, answer.text
    for word in words:
        assert word in answer.json()["detail"]


def test_roles_for_training_and_jobs(client: TestClient, tokens: dict) -> None:
    body = {"dataset": "churn", "target": "churn"}
    assert client.post("/v1/training-jobs", headers=bearer(tokens["viewer"]), json=body).status_code == 403
    assert client.post("/v1/training-jobs", json=body).status_code == 401
    assert client.get("/v1/jobs/12345", headers=bearer(tokens["viewer"])).status_code == 404
    assert client.get("/v1/jobs/0", headers=bearer(tokens["viewer"])).json()["field"] == "path.job_id"


@contextmanager
def _viewer_revoked_after_one_answer(tmp_path, sqlite_url, store, model, *, cache_seconds: float):
    """A served app and a viewer token that worked once and has just been revoked: (client, token)."""
    from api.app import create_app
    from core.accounts import auth
    from core.platform.database import transaction
    from db.session import make_engine, make_session_factory
    from tests.support.api import predict, serving_settings
    from tests.support.factories import admin_actor
    from tests.support.mlflow_models import records

    settings = serving_settings(tmp_path / "ws", sqlite_url, store, api_token_cache_seconds=cache_seconds)
    factory = make_session_factory(make_engine(settings.db_url))
    with transaction(factory) as session:
        token, row = auth.create_token(session, actor=admin_actor(), role="viewer")
    with TestClient(create_app(settings, factory=factory)) as client:
        assert predict(client, model.name, token, records(1)).status_code == 200
        with transaction(factory) as session:
            auth.revoke_token(session, actor=admin_actor(), token_id=row.id)
        yield client, token


def test_revoked_token_stops_working(tmp_path, sqlite_url, store, model) -> None:
    from tests.support.api import predict
    from tests.support.mlflow_models import records

    with _viewer_revoked_after_one_answer(tmp_path, sqlite_url, store, model, cache_seconds=0) as (client, token):
        assert predict(client, model.name, token, records(1)).status_code == 401


def test_a_revoked_token_stops_working_once_the_token_cache_forgets_it(tmp_path, sqlite_url, store, model) -> None:
    """docs/security.md: a looked-up token is kept LEANOPS_API_TOKEN_CACHE_SECONDS, never longer."""
    import time

    from tests.support.api import predict
    from tests.support.mlflow_models import records

    with _viewer_revoked_after_one_answer(tmp_path, sqlite_url, store, model, cache_seconds=1.0) as (client, token):
        revoked = time.monotonic()  # the cache took the token before this: it forgets it within 1 s of now
        while True:
            sent = time.monotonic() - revoked
            status = predict(client, model.name, token, records(1)).status_code
            if status != 200:
                break
            assert sent < 1.0, f"a revoked token still worked {sent:.2f} s later, past the cache's TTL"
            time.sleep(0.05)
        assert status == 401
