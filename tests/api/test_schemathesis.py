"""Fuzz every operation of the OpenAPI spec with schemathesis (valid and invalid inputs): never a 5xx.

The cases are drawn from schemathesis' Hypothesis strategies and sent to a real uvicorn server.
(schemathesis' lazy pytest fixture loader does not run under pytest 9, so the strategies are driven
directly.) Operations with a model name run twice: with random names and with the real model, so
bodies also reach the signature checks.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.support.api import Model, bearer, live_server

EXAMPLES = 30


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_5xx(app, tokens: dict, model: Model, mode: GenerationMode) -> None:
    with live_server(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=bearer(tokens["viewer"]))
        schema.config.generation.update(allow_x00=True)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
            "GET /health", "GET /metrics", "POST /v1/models/{name}/predict", "POST /v1/models/{name}/feedback",
            "POST /v1/datasets/{name}/versions", "POST /v1/training-jobs", "GET /v1/jobs/{job_id}"}
        calls = []
        for operation in operations:
            variants = [None]
            if "/models/{name}" in operation.path:
                variants.append({"name": model.name})
            for path_parameters in variants:
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

                @given(case=strategy)
                @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                          derandomize=True, database=None)
                def fuzz(case) -> None:
                    response = case.call(base_url=url, headers=bearer(tokens["scientist"]), timeout=30)
                    calls.append(response.status_code)
                    case.validate_response(response, checks=[not_a_server_error])

                try:
                    fuzz()
                except Unsatisfiable:  # nothing invalid to send (e.g. GET /health has no inputs)
                    assert mode is GenerationMode.NEGATIVE
    assert len(calls) >= 100
    assert all(code < 500 for code in calls)


def test_no_token_gets_401_everywhere_but_health(app) -> None:
    with live_server(app) as url:
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        for method, path in (("GET", "/metrics"), ("POST", "/v1/models/x/predict"), ("POST", "/v1/training-jobs"),
                             ("GET", "/v1/jobs/1"), ("POST", "/v1/datasets/x/versions"),
                             ("POST", "/v1/models/x/feedback")):
            answer = httpx.request(method, url + path, json={})
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
            wrong = httpx.request(method, url + path, json={}, headers=bearer("lo_not-a-token"))
            assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["detail"]
