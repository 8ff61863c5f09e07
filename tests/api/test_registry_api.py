"""Promotion over HTTP: the wrong roles are refused (403, audited) exactly as on the page and the CLI."""

from __future__ import annotations

from db.models import AuditEvent
from tests.support.api import bearer


def test_viewer_and_scientist_tokens_cannot_promote_and_are_audited(client, tokens, model, api_factory):
    for role in ("viewer", "scientist"):
        answer = client.post(f"/v1/models/{model.name}/promote", json={"version": model.versions["rf20"]},
                             headers=bearer(tokens[role]))
        assert answer.status_code == 403, answer.text
        assert "models.promote" in answer.json()["detail"]
    answer = client.post(f"/v1/models/{model.name}/promote", json={"version": 1, "force": True, "reason": "x"},
                         headers=bearer(tokens["approver"]))
    assert answer.status_code == 403
    with api_factory() as s:
        refused = s.query(AuditEvent).filter_by(action="permission.denied").all()
    assert sorted(e.actor for e in refused) == ["token:test-approver", "token:test-scientist", "token:test-viewer"]


def test_promotion_needs_gate_facts_and_a_valid_body(client, tokens, model):
    headers = bearer(tokens["approver"])
    outside = client.post(f"/v1/models/{model.name}/promote", json={"version": model.versions["rf20"]},
                          headers=headers)
    assert outside.status_code == 404 and "no LeanOps training run" in outside.json()["detail"]
    assert client.post(f"/v1/models/{model.name}/promote", json={"version": "two"}, headers=headers).status_code == 422
    assert client.post(f"/v1/models/{model.name}/promote", json={}, headers=headers).status_code == 422
    missing = client.post(f"/v1/models/{model.name}/promote", json={"version": 99}, headers=headers)
    assert missing.status_code == 404 and "no version 99" in missing.json()["detail"]
    no_previous = client.post(f"/v1/models/{model.name}/rollback", json={}, headers=headers)
    assert no_previous.status_code == 422 and "no previous champion" in no_previous.json()["detail"]
