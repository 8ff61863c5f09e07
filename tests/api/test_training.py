"""Training jobs and job status over HTTP (api/training.py, api/jobs.py): queued, readable, refused with reasons."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support.api import bearer, upload


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
