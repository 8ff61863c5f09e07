"""Dataset uploads over HTTP (api/datasets.py): the same core function as the Datasets page; roles; bad bodies."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core import audit
from core.data import datasets
from core.platform import job_queue
from tests.support.api import bearer, churn_csv, upload


def test_upload_registers_a_version_like_the_datasets_page(client: TestClient, tokens: dict, api_factory) -> None:
    answer = upload(client, tokens["scientist"], description="from the nightly export")
    assert answer.status_code == 201, answer.text
    doc = answer.json()
    assert (doc["name"], doc["version"], doc["rows"], doc["created"]) == ("churn", 1, 300, True)
    assert len(doc["sha256"]) == 64 and "churn" in doc["columns"] and "passed" in doc["quality"]
    again = upload(client, tokens["scientist"])
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["version"] == 1
    assert again.json()["retrain_jobs"] == []  # nothing new, nothing to consider
    assert upload(client, tokens["scientist"], data=churn_csv(seed=8)).json()["version"] == 2
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
