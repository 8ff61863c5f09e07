"""The serving contract (issue: a client refactor silently ruined predictions): a typo'd or a missing column is a
422 naming ``records[i].column`` unless the model's policy opts in; unseen categories are counted; client errors are
counted apart from the model's, and a name no model has is never listed as a model."""

from __future__ import annotations

from fastapi.testclient import TestClient

from core.serving import traffic
from tests.support.api import Model, bearer, predict, set_serving_policy
from tests.support.mlflow_models import records


def test_a_misspelled_column_is_a_422_naming_it_and_the_column_it_meant(client: TestClient, model: Model,
                                                                        tokens: dict) -> None:
    rows = records(3)
    rows[2]["tenure_month"] = rows[2].pop("tenure_months")
    answer = predict(client, model.name, tokens["viewer"], rows)
    assert answer.status_code == 422, answer.text
    doc = answer.json()
    # the typo is refused, and so is the column it leaves missing: both fields named at once
    assert doc["field"] == "records[2].tenure_month"
    assert "did you mean 'tenure_months'?" in doc["detail"]
    assert "record 2 has no column 'tenure_months'" in doc["detail"]


def test_a_missing_column_is_a_422_even_where_the_signature_calls_it_optional(client: TestClient, model: Model,
                                                                              tokens: dict) -> None:
    rows = records(2)
    del rows[1]["monthly_charges"]
    answer = predict(client, model.name, tokens["viewer"], rows)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "records[1].monthly_charges"
    assert "send null for an unknown value" in answer.json()["detail"]
    # a null is not a missing column: the client said "unknown" on purpose
    rows[1]["monthly_charges"] = None
    assert predict(client, model.name, tokens["viewer"], rows).status_code == 200


def test_impute_and_ignore_when_the_policy_opts_in_and_the_answer_lists_them(client: TestClient, model: Model,
                                                                             tokens: dict, api_settings,
                                                                             api_factory) -> None:
    rows = records(2)
    del rows[0]["monthly_charges"]
    rows[1]["credit_scor"] = 700
    assert predict(client, model.name, tokens["viewer"], rows).status_code == 422
    set_serving_policy(api_settings, api_factory, model.name, missing_columns="impute", unknown_columns="ignore")
    answer = predict(client, model.name, tokens["viewer"], rows)
    assert answer.status_code == 200, answer.text
    assert answer.json()["imputed_columns"] == ["monthly_charges"]
    assert answer.json()["ignored_columns"] == ["credit_scor"]


def test_unseen_categories_are_counted_in_the_answer_and_the_metrics(client: TestClient, model: Model,
                                                                     tokens: dict) -> None:
    rows = records(3)
    rows[0]["region"] = rows[2]["region"] = "atlantis"
    answer = predict(client, model.name, tokens["viewer"], rows)
    assert answer.status_code == 200, answer.text
    [warning] = answer.json()["warnings"]
    assert (warning["warning"], warning["column"], warning["records"], warning["values"]) == \
        ("unseen_category", "region", 2, ["atlantis"])
    assert "warnings" not in predict(client, model.name, tokens["viewer"], records(2)).json()
    metrics = client.get("/metrics", headers=bearer(tokens["viewer"])).text
    assert f'leanops_unseen_categories_total{{column="region",model="{model.name}"}} 2.0' in metrics


def test_client_errors_apart_and_unknown_names_never_listed(client: TestClient, model: Model, tokens: dict,
                                                            api_factory, api_settings) -> None:
    assert predict(client, model.name, tokens["viewer"], records(2)).status_code == 200
    bad = records(1)
    bad[0]["credit_scor"] = 1
    assert predict(client, model.name, tokens["viewer"], bad).status_code == 422
    assert predict(client, "loanz", tokens["viewer"], records(1)).status_code == 404
    client.app.state.runtime.writer.drain(10)
    with api_factory() as session:
        rows = {t.model: t for t in traffic.traffic(session, store=api_settings.data_store)}
    assert "loanz" not in rows
    served = rows[model.name]
    assert (served.errors, served.error_rate, served.client_errors, served.client_error_rate) == (0, 0.0, 1, 0.5)
    metrics = client.get("/metrics", headers=bearer(tokens["viewer"])).text
    assert f'leanops_predict_refused_total{{kind="client",model="{model.name}"}} 1.0' in metrics
    assert 'leanops_predict_refused_total{kind="client",model="(not found)"} 1.0' in metrics
    assert 'model="loanz"' not in metrics
