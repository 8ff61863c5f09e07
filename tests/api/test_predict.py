"""POST /v1/models/{name}/predict: the contract, signature checks and every bad input as a 4xx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.platform.prediction_log import reads
from core.platform.prediction_log.writer import input_hash
from core.serving.feedback import feedback_for
from tests.support.api import Model, bearer, predict, set_serving_policy
from tests.support.mlflow_models import records
from tests.support.waiting import wait_until


def test_predicts_with_the_champion_and_logs_every_record(client: TestClient, model: Model, tokens: dict,
                                                          api_factory) -> None:
    rows = records(3)
    answer = predict(client, model.name, tokens["viewer"], rows)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["model"] == model.name and doc["version"] == model.versions["lr"] and doc["alias"] == "champion"
    assert len(doc["predictions"]) == 3 and set(doc["predictions"]) <= {0, 1}
    assert len(doc["request_id"]) >= 16
    client.app.state.runtime.writer.drain(10)
    with api_factory() as session:
        logged = reads.by_request(session, request_id=doc["request_id"],
                                   store=client.app.state.runtime.settings.data_store)
    assert [p.record_index for p in logged] == [0, 1, 2]
    assert [p.output for p in logged] == doc["predictions"]
    assert {p.version for p in logged} == {model.versions["lr"]}
    assert logged[0].inputs["contract"] == rows[0]["contract"]
    assert logged[0].input_hash == input_hash(logged[0].inputs)
    assert all(p.latency_ms > 0 for p in logged)


def test_class_probabilities_when_asked(client: TestClient, model: Model, tokens: dict) -> None:
    doc = predict(client, model.name, tokens["viewer"], records(2), probabilities="true").json()
    assert len(doc["probabilities"]) == 2
    for label, proba in zip(doc["predictions"], doc["probabilities"], strict=True):
        assert set(proba) == {"0", "1"} and sum(proba.values()) == pytest.approx(1.0)
        assert max(proba, key=proba.get) == str(label)
    assert "probabilities" not in predict(client, model.name, tokens["viewer"], records(1)).json()


def test_challenger_alias_serves_its_own_version(client: TestClient, model: Model, tokens: dict, store) -> None:
    store.move(model.name, model.versions["rf20"], alias="challenger")
    doc = predict(client, model.name, tokens["viewer"], records(1), alias="challenger").json()
    assert doc["version"] == model.versions["rf20"] and doc["alias"] == "challenger"
    assert predict(client, model.name, tokens["viewer"], records(1)).json()["version"] == model.versions["lr"]


def test_extra_columns_are_ignored_and_reported_when_the_policy_opts_in(client: TestClient, model: Model, tokens: dict,
                                                                       api_settings, api_factory) -> None:
    rows = [dict(r, note="vip", zz=1) for r in records(2)]
    rows[1]["only_here"] = True
    assert predict(client, model.name, tokens["viewer"], rows).status_code == 422  # the default: reject
    set_serving_policy(api_settings, api_factory, model.name, unknown_columns="ignore")
    answer = predict(client, model.name, tokens["viewer"], rows)
    assert answer.status_code == 200
    assert answer.json()["ignored_columns"] == ["note", "only_here", "zz"]


def test_castable_strings_and_nulls_are_accepted(client: TestClient, model: Model, tokens: dict) -> None:
    row = records(1)[0] | {"tenure_months": "12", "monthly_charges": None, "senior": "false"}
    assert predict(client, model.name, tokens["viewer"], [row]).status_code == 200


@pytest.mark.parametrize(("change", "field", "words"), [
    (lambda r: r.pop("region"), "records[1].region", ["record 1", "region"]),
    (lambda r: r.update(tenure_months="twelve"), "records[1].tenure_months", ["record 1", "tenure_months", "twelve"]),
    (lambda r: r.update(tenure_months=12.5), "records[1].tenure_months", ["whole number"]),
    (lambda r: r.update(contract={"a": 1}), "records[1].contract", ["contract", "string"]),
    (lambda r: r.update(senior="maybe"), "records[1].senior", ["senior", "true or false"]),
    (lambda r: r.update(customer_age=[1, 2]), "records[1].customer_age", ["customer_age"]),
])
def test_bad_record_is_a_422_naming_record_and_column(client: TestClient, model: Model, tokens: dict, change,
                                                      field: str, words: list[str]) -> None:
    rows = records(3)
    change(rows[1])
    answer = predict(client, model.name, tokens["viewer"], rows)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    for word in words:
        assert word in answer.json()["detail"]


@pytest.mark.parametrize(("body", "status", "words"), [
    (b"{", 422, ["not valid JSON"]),
    (b"", 422, ["not valid JSON"]),
    (b"[1, 2]", 422, ["JSON object", "records"]),
    (b'{"rows": []}', 422, ["records"]),
    (b'{"records": {}}', 422, ["records must be a list"]),
    (b'{"records": []}', 422, ["records is empty"]),
    (b'{"records": [1]}', 422, ["records[0]"]),
    (b'{"records": [{}, "x"]}', 422, ["records[1]"]),
    (b'{"records": [{}]}', 422, ["record 0 has no column"]),
])
def test_malformed_bodies_are_4xx_with_a_reason(client: TestClient, model: Model, tokens: dict, body: bytes,
                                                status: int, words: list[str]) -> None:
    answer = client.post(f"/v1/models/{model.name}/predict", content=body,
                         headers=bearer(tokens["viewer"]) | {"content-type": "application/json"})
    assert answer.status_code == status, answer.text
    for word in words:
        assert word in answer.json()["detail"]


def test_batch_limit(tmp_path, sqlite_url, store, model: Model) -> None:
    from api.app import create_app
    from db.session import make_engine, make_session_factory
    from tests.support.api import serving_settings

    settings = serving_settings(tmp_path / "ws", sqlite_url, store, serving_batch_limit=5)
    factory = make_session_factory(make_engine(settings.db_url))
    from core.accounts import auth
    from core.platform.database import transaction
    from tests.support.factories import admin_actor

    with transaction(factory) as session:
        token, _ = auth.create_token(session, actor=admin_actor(), role="viewer")
    with TestClient(create_app(settings, factory=factory)) as client:
        assert predict(client, model.name, token, records(5)).status_code == 200
        answer = predict(client, model.name, token, records(6))
    assert answer.status_code == 422
    assert "6 entries" in answer.json()["detail"] and "limit is 5" in answer.json()["detail"]


def test_unknown_model_and_missing_alias_are_404(client: TestClient, model: Model, tokens: dict, store) -> None:
    answer = predict(client, "no-such-model", tokens["viewer"], records(1))
    assert answer.status_code == 404 and "no registered model named 'no-such-model'" in answer.json()["detail"]
    answer = predict(client, model.name, tokens["viewer"], records(1), alias="challenger")
    assert answer.status_code == 404 and "no version with alias 'challenger'" in answer.json()["detail"]
    answer = predict(client, model.name, tokens["viewer"], records(1), alias="bad alias!")
    assert answer.status_code == 422 and answer.json()["field"] == "query.alias"
    unpromoted = store.fresh_name()
    store.register("lr", unpromoted)
    answer = predict(client, unpromoted, tokens["viewer"], records(1))
    assert answer.status_code == 404 and "promote a version first" in answer.json()["detail"]


def test_oversize_body_is_413(tmp_path, sqlite_url, store, model: Model) -> None:
    from api.app import create_app
    from core.accounts import auth
    from core.platform.database import transaction
    from db.session import make_engine, make_session_factory
    from tests.support.api import serving_settings
    from tests.support.factories import admin_actor

    settings = serving_settings(tmp_path / "ws", sqlite_url, store, max_upload_mb=1)
    factory = make_session_factory(make_engine(settings.db_url))
    with transaction(factory) as session:
        token, _ = auth.create_token(session, actor=admin_actor(), role="viewer")
    with TestClient(create_app(settings, factory=factory)) as client:
        answer = predict(client, model.name, token, records(1) * 6000)
    assert answer.status_code == 413 and "over 1 MB" in answer.json()["detail"]


def test_refused_requests_are_counted_for_the_error_rate(client: TestClient, model: Model, tokens: dict,
                                                         api_factory) -> None:
    from core.serving import traffic as serving_panel

    predict(client, model.name, tokens["viewer"], records(2))
    predict(client, model.name, tokens["viewer"], [{"x": 1}])
    client.app.state.runtime.writer.drain(10)
    with api_factory() as session:
        data_store = client.app.state.runtime.settings.data_store
        traffic = {t.model: t for t in serving_panel.traffic(session, store=data_store)}
        recent = serving_panel.recent_predictions(session, store=data_store, limit=5)
    row = traffic[model.name]
    assert (row.requests, row.records, row.errors, row.error_rate) == (1, 2, 0, 0.0)  # the model failed nothing
    assert (row.client_errors, row.client_error_rate) == (1, 0.5)  # the 422 was the client's
    assert row.served_version == model.versions["lr"] and row.p50_ms is not None and row.p95_ms >= row.p50_ms
    assert recent[0].model == model.name


def test_feedback_is_stored_by_request_id(client: TestClient, model: Model, tokens: dict, api_factory) -> None:
    doc = predict(client, model.name, tokens["scientist"], records(3)).json()  # labelled by the token that asked
    url = f"/v1/models/{model.name}/feedback"
    answer = client.post(url, json={"request_id": doc["request_id"], "labels": [1, 0, 1]},
                         headers=bearer(tokens["scientist"]))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"request_id": doc["request_id"], "stored": 3}
    with api_factory() as session:
        assert feedback_for(session, request_id=doc["request_id"]) == [1, 0, 1]
    wrong = client.post(url, json={"request_id": doc["request_id"], "labels": [1]},
                        headers=bearer(tokens["scientist"]))
    assert wrong.status_code == 422 and "1 value(s)" in wrong.json()["detail"]
    unknown = client.post(url, json={"request_id": "nope", "labels": [1]}, headers=bearer(tokens["scientist"]))
    assert unknown.status_code == 404
    missing = client.post(url, json={"labels": [1]}, headers=bearer(tokens["scientist"]))
    # request_id or batch_id (issue 25): neither is a 422 on the body naming both
    assert missing.status_code == 422 and missing.json()["field"] == "body", missing.text
    assert "request_id" in missing.json()["detail"] and "batch_id" in missing.json()["detail"]
    viewer = client.post(url, json={"request_id": doc["request_id"], "labels": [1, 0, 1]},
                         headers=bearer(tokens["viewer"]))
    assert viewer.status_code == 403


def test_metrics_cover_requests_stages_values_versions_and_queue(client: TestClient, model: Model,
                                                                 tokens: dict) -> None:
    predict(client, model.name, tokens["viewer"], records(4))
    predict(client, model.name, tokens["viewer"], [{"bad": 1}])
    text = wait_until(lambda: client.get("/metrics", headers=bearer(tokens["viewer"])).text)
    route = 'route="/v1/models/{name}/predict"'
    assert f'leanops_http_requests_total{{method="POST",{route},status="200"}} 1.0' in text
    assert f'leanops_http_requests_total{{method="POST",{route},status="422"}} 1.0' in text
    assert f"leanops_http_request_duration_seconds_count{{{route}}} 2.0" in text
    for stage in ("parse", "predict", "log"):
        assert f'leanops_predict_stage_seconds_count{{model="{model.name}",stage="{stage}"}} 1.0' in text
    assert f'leanops_prediction_value_count{{model="{model.name}"}} 4.0' in text
    assert (f'leanops_model_version_served{{alias="champion",model="{model.name}"}} '
            f'{float(model.versions["lr"])}') in text
    assert "leanops_prediction_log_queue_depth " in text
    assert client.get("/metrics").status_code == 401


def test_a_422_names_every_bad_field_of_a_record(client: TestClient, model: Model, tokens: dict) -> None:
    rows = records(3)
    rows[1].update(tenure_months="twelve", senior="maybe")
    rows[1].pop("region")
    answer = predict(client, model.name, tokens["viewer"], rows)
    assert answer.status_code == 422, answer.text
    doc = answer.json()
    fields = [e["field"] for e in doc["errors"]]
    assert sorted(fields) == sorted(["records[1].tenure_months", "records[1].senior", "records[1].region"])
    assert doc["field"] in fields
    assert doc["detail"].startswith("3 fields cannot be used: ")
    for word in ("'twelve'", "true or false", "has no column 'region'"):
        assert word in doc["detail"]
