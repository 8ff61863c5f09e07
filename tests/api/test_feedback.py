"""POST /v1/models/{name}/feedback is bound to the token that predicted (issue 14 item 8): another scientist
token gets a 403 and stores nothing; the requester and admins may label; an overwrite is audited."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from core.accounts import auth
from core.platform.database import transaction
from core.serving.feedback import feedback_for
from db.models import AuditEvent, PredictionLog
from tests.support.api import Model, bearer, predict
from tests.support.factories import admin_actor
from tests.support.mlflow_models import records


def test_feedback_is_bound_to_the_token_that_predicted(client: TestClient, model: Model, tokens: dict,
                                                      api_factory) -> None:
    with transaction(api_factory) as session:
        team_a, _ = auth.create_token(session, actor=admin_actor(), role="scientist", name="team-a")
        team_b, _ = auth.create_token(session, actor=admin_actor(), role="scientist", name="team-b")
    request_id = predict(client, model.name, team_a, records(2)).json()["request_id"]
    url = f"/v1/models/{model.name}/feedback"

    def send(token: str, labels: list) -> tuple[int, dict]:
        answer = client.post(url, json={"request_id": request_id, "labels": labels}, headers=bearer(token))
        return answer.status_code, answer.json()

    status, body = send(team_b, [0, 0])  # (the route waits for the log writer if the request is not written yet)
    assert status == 403 and "token:team-b may not label request" in body["detail"]
    assert "team-a" not in body["detail"]  # the refusal does not say whose request it is
    with api_factory() as session:
        assert feedback_for(session, request_id=request_id) == []
        assert set(session.scalars(select(PredictionLog.requested_by)
                                   .where(PredictionLog.request_id == request_id))) == {"token:team-a"}
    assert send(team_a, [1, 0]) == (200, {"request_id": request_id, "stored": 2})
    assert send(tokens["admin"], [1, 1]) == (200, {"request_id": request_id, "stored": 2})
    assert send(tokens["approver"], [0, 0])[0] == 403
    with api_factory() as session:
        assert feedback_for(session, request_id=request_id) == [1, 1]
        overwritten = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "prediction.feedback_overwritten")).all()
        denied = session.scalars(select(AuditEvent).where(AuditEvent.action == "permission.denied")).all()
    assert [(e.actor, e.details["changed"]) for e in overwritten] == [
        ("token:test-admin", [{"record": 1, "old": 0, "new": 1}])]
    assert [e.actor for e in denied] == ["token:team-b", "token:test-approver"]
