"""Columnar predict bodies (issue 18 item 5): an Arrow IPC stream and MLflow's ``dataframe_split`` JSON, checked
against the signature as records are, answered in Arrow on request, logged like any prediction."""

from __future__ import annotations

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from core.platform.prediction_log import reads
from tests.support.api import Model, bearer, predict
from tests.support.mlflow_models import records

ARROW = "application/vnd.apache.arrow.stream"


def arrow_body(rows: list[dict], schema: pa.Schema | None = None) -> bytes:
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def read_arrow(raw: bytes) -> pa.Table:
    return pa.ipc.open_stream(raw).read_all()


def post(client: TestClient, name: str, token: str, content: bytes, *, accept: str = "application/json",
         content_type: str = ARROW, **params: str):
    return client.post(f"/v1/models/{name}/predict", content=content, params=params,
                       headers=bearer(token) | {"Content-Type": content_type, "Accept": accept})


def split(rows: list[dict]) -> dict:
    columns = list(rows[0])
    return {"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}}


def test_arrow_and_dataframe_split_answer_as_records_do_and_are_logged(client: TestClient, model: Model,
                                                                       tokens: dict, api_factory) -> None:
    rows = records(40)
    expected = predict(client, model.name, tokens["viewer"], rows, probabilities="true").json()
    by_arrow = post(client, model.name, tokens["viewer"], arrow_body(rows), probabilities="true")
    assert by_arrow.status_code == 200, by_arrow.text
    by_split = client.post(f"/v1/models/{model.name}/predict", json=split(rows), params={"probabilities": "true"},
                           headers=bearer(tokens["viewer"]))
    assert by_split.status_code == 200, by_split.text
    for doc in (by_arrow.json(), by_split.json()):
        assert doc["predictions"] == expected["predictions"] and doc["version"] == model.versions["lr"]
        assert [p["1"] for p in doc["probabilities"]] == pytest.approx([p["1"] for p in expected["probabilities"]])
    client.app.state.runtime.writer.drain(10)
    with api_factory() as session:
        logged = reads.by_request(session, request_id=by_arrow.json()["request_id"],
                                   store=client.app.state.runtime.settings.data_store)
    assert [p.output for p in logged] == expected["predictions"]
    assert logged[3].inputs["contract"] == rows[3]["contract"]


def test_arrow_nulls_and_types_are_read_as_json_ones_are(client: TestClient, model: Model, tokens: dict) -> None:
    rows = records(6)
    rows[0] |= {"monthly_charges": None, "tenure_months": None, "contract": None}
    rows[1] |= {"tenure_months": 7.0}  # a whole float for a whole-number column
    expected = predict(client, model.name, tokens["viewer"], rows, probabilities="true").json()
    got = post(client, model.name, tokens["viewer"], arrow_body(rows), probabilities="true")
    assert got.status_code == 200, got.text
    assert got.json()["predictions"] == expected["predictions"]
    assert [p["1"] for p in got.json()["probabilities"]] == pytest.approx([p["1"] for p in expected["probabilities"]])
    rows[2] |= {"tenure_months": 7.5}  # not a whole number: refused, naming the row, as in JSON
    refused = post(client, model.name, tokens["viewer"], arrow_body(rows))
    assert refused.status_code == 422 and refused.json()["field"] == "records[2].tenure_months", refused.text
    assert refused.json()["detail"] == predict(client, model.name, tokens["viewer"], rows).json()["detail"]


def test_arrow_answer_carries_predictions_probabilities_and_the_request_id(client: TestClient, model: Model,
                                                                           tokens: dict, api_factory) -> None:
    rows = records(25)
    expected = predict(client, model.name, tokens["viewer"], rows, probabilities="true").json()
    answer = post(client, model.name, tokens["viewer"], arrow_body(rows), accept=ARROW, probabilities="true")
    assert answer.status_code == 200 and answer.headers["content-type"] == ARROW
    table = read_arrow(answer.content)
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta["model"] == model.name and meta["version"] == str(model.versions["lr"])
    assert table.column("prediction").to_pylist() == expected["predictions"]
    assert table.column("probability_1").to_pylist() == pytest.approx([p["1"] for p in expected["probabilities"]])
    client.app.state.runtime.writer.drain(10)
    with api_factory() as session:
        assert len(reads.by_request(session, request_id=meta["request_id"],
                                     store=client.app.state.runtime.settings.data_store)) == 25
    # a JSON body can be answered in Arrow too, without probabilities when not asked
    plain = client.post(f"/v1/models/{model.name}/predict", json={"records": rows[:2]},
                        headers=bearer(tokens["viewer"]) | {"Accept": ARROW})
    assert read_arrow(plain.content).column_names == ["prediction"]


def test_bad_columnar_bodies_are_clear_422s(client: TestClient, model: Model, tokens: dict) -> None:
    rows = records(5)
    token = tokens["viewer"]
    missing = post(client, model.name, token, arrow_body([{k: v for k, v in r.items() if k != "contract"}
                                                         for r in rows]))
    assert missing.status_code == 422 and "no column 'contract'" in missing.json()["detail"]
    assert missing.json()["field"] == "records[0].contract"
    bad = [dict(r, tenure_months=str(r["tenure_months"])) for r in rows]  # strings are cast, as in JSON …
    assert post(client, model.name, token, arrow_body(bad)).status_code == 200
    bad[3]["tenure_months"] = "soon"  # … unless one cannot be
    uncastable = post(client, model.name, token, arrow_body(bad))
    assert uncastable.status_code == 422
    assert uncastable.json()["field"] == "records[3].tenure_months", uncastable.text
    garbage = post(client, model.name, token, b"not an arrow stream at all")
    assert garbage.status_code == 422 and "not an Arrow IPC stream" in garbage.json()["detail"]
    empty = post(client, model.name, token, arrow_body([], pa.Table.from_pylist(rows).schema))
    assert empty.status_code == 422 and "no rows" in empty.json()["detail"]
    short = split(rows)
    short["dataframe_split"]["data"][2] = short["dataframe_split"]["data"][2][:-1]
    answer = client.post(f"/v1/models/{model.name}/predict", json=short, headers=bearer(token))
    assert answer.status_code == 422 and answer.json()["field"].startswith("records[2].")
    both = client.post(f"/v1/models/{model.name}/predict", json=split(rows) | {"records": rows},
                       headers=bearer(token))
    assert both.status_code == 422


def test_columnar_bodies_keep_the_batch_and_body_limits(tmp_path, sqlite_url, store, model: Model) -> None:
    from api.app import create_app
    from core.accounts import auth
    from core.platform.database import transaction
    from db.session import make_engine, make_session_factory
    from tests.support.api import serving_settings
    from tests.support.factories import admin_actor

    settings = serving_settings(tmp_path / "ws", sqlite_url, store, max_upload_mb=1, serving_batch_limit=100)
    factory = make_session_factory(make_engine(settings.db_url))
    with transaction(factory) as session:
        token, _ = auth.create_token(session, actor=admin_actor(), role="viewer")
    with TestClient(create_app(settings, factory=factory)) as client:
        over_batch = post(client, model.name, token, arrow_body(records(101)))
        assert over_batch.status_code == 422 and "limit is 100" in over_batch.json()["detail"]
        too_big = post(client, model.name, token, arrow_body(records(1)) + b"\0" * (2 * 2**20))
        assert too_big.status_code == 413, too_big.text


def test_openapi_documents_the_columnar_content_types(client: TestClient, tokens: dict) -> None:
    op = client.get("/openapi.json", headers=bearer(tokens["viewer"])).json()["paths"][
        "/v1/models/{name}/predict"]["post"]
    assert set(op["requestBody"]["content"]) == {"application/json", ARROW}
    assert len(op["requestBody"]["content"]["application/json"]["schema"]["oneOf"]) == 2
    assert set(op["responses"]["200"]["content"]) >= {"application/json", ARROW}
