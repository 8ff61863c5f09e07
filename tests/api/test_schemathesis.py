"""Fuzz every operation of the OpenAPI spec with schemathesis (valid and invalid inputs), every check on.

The cases are drawn from schemathesis' Hypothesis strategies and sent to a real uvicorn server.
(schemathesis' lazy pytest fixture loader does not run under pytest 9, so the strategies are driven
directly.) Operations with a model name run twice: with random names and with the real model, so
bodies also reach the signature checks.

Every check runs (status codes and headers as documented, response schemas, negative data refused,
positive data accepted, no 5xx). One allowance: a schema-valid request may still be refused with 422
for what no static schema can know — the columns of the model being served, the contents of an
uploaded file, the columns of the dataset being trained on — and only with those messages
(``RUNTIME_ONLY``); anything the schema could say (a name's pattern, an alias, a kind) must be in it.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.api import Model, bearer, live_server

EXAMPLES = 30
# operation → the 422 messages a schema-valid request may still get (facts known only at run time).
RUNTIME_ONLY = {
    "POST /v1/models/{name}/predict": re.compile(r"^(\d+ fields cannot be used: )?record \d+ (has (no )?column|column) "
                                                 r"|could not predict"),
    "POST /v1/datasets/{name}/versions": re.compile(r"^(file\b|the file|could not read)|\b(CSV|Parquet|header|"
                                                    r"columns?|rows?)\b", re.I),
    "POST /v1/training-jobs": re.compile(r"column|target|rows|parameter|sensitive|exclude|search|"
                                         r"dataset .* (failed|has)", re.I),
    "PUT /v1/models/{name}/profile": re.compile(r"is not an active user account"),  # the workspace's accounts
    # the file's content and the dataset's columns (as for an upload)
    "POST /v1/models/{name}/versions": re.compile(r"^model file |\b(dataset|target|columns?|sensitive|rows?)\b|"
                                                  r"^claimed[_ ]metrics ", re.I),
    # one input of several kinds (JSON names a dataset, multipart uploads a file), read at run time
    "POST /v1/models/{name}/batch-jobs": re.compile(r"\b(dataset|file|columns?|rows?|version|alias|id.column|"
                                                    r"source|explain)\b|Extra inputs are not permitted", re.I),
    # rules across fields (request_id or batch_id with ids; as many labels as ids, each id once: 1, 1.0 and true
    # are one id to the prediction log): the schema states them in words, the validator enforces them
    "POST /v1/models/{name}/feedback": re.compile(r"or batch_id with ids \(a batch run's\), not both|"
                                                  r"batch_id needs ids|must be non-empty lists of the same length|"
                                                  r"^ids repeat"),
}


def _accepts_positive(operation, response: httpx.Response) -> bool:
    """Whether a refused schema-valid request was refused only for a run-time fact (``RUNTIME_ONLY``)."""
    allowed = RUNTIME_ONLY.get(f"{operation.method.upper()} {operation.path}")
    return response.status_code == 422 and allowed is not None and bool(allowed.search(response.json()["detail"]))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_5xx(app, tokens: dict, model: Model, mode: GenerationMode) -> None:
    with live_server(app) as url:
        deadline = time.monotonic() + 120  # /health/ready answers 503 "starting" until the champions are warm
        while httpx.get(f"{url}/health/ready", timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the API never became ready"
            time.sleep(0.2)
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=bearer(tokens["viewer"]))
        schema.config.generation.update(allow_x00=True)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
            "GET /health", "GET /metrics", "POST /v1/models/{name}/predict", "POST /v1/models/{name}/feedback",
            "POST /v1/datasets/{name}/versions", "POST /v1/training-jobs", "GET /v1/jobs/{job_id}",
            "GET /health/ready"}
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
                    headers = bearer(tokens["scientist"])
                    response = case.call(base_url=url, headers=headers, timeout=30)
                    calls.append(response.status_code)
                    try:
                        case.validate_response(response, headers=headers)
                    except (FailureGroup, RejectedPositiveData) as found:
                        only = getattr(found, "exceptions", [found])
                        if not all(isinstance(e, RejectedPositiveData) for e in only) or \
                                not _accepts_positive(operation, response):  # noqa: B023 - run in this iteration
                            raise
                        case.validate_response(response, headers=headers, excluded_checks=[positive_data_acceptance])

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
            assert wrong.status_code == 401 and "revoked" in wrong.json()["detail"]


def test_a_body_that_is_not_json_is_a_422_naming_the_body(app, tokens: dict, model: Model) -> None:
    """Not UTF-8, not JSON, not multipart: 422 with ``field: body``, never FastAPI's bare 400."""
    with live_server(app) as url:
        headers = bearer(tokens["scientist"]) | {"Content-Type": "application/json"}
        for path in (f"/v1/models/{model.name}/feedback", "/v1/training-jobs", f"/v1/models/{model.name}/promote",
                     f"/v1/models/{model.name}/predict"):
            for raw in (b"\xc5\xaa\xd6\xd0", b"{not json"):
                answer = httpx.post(url + path, content=raw, headers=headers)
                assert answer.status_code == 422, (path, raw, answer.text)
                assert answer.json().get("field") == "body" or answer.json()["detail"].startswith("the body is not"), \
                    (path, answer.text)
        multipart = httpx.post(f"{url}/v1/datasets/x/versions", content=b"--b\r\nFalse--b--\r\n",
                               headers=bearer(tokens["admin"]) | {"Content-Type": "multipart/form-data; boundary=b"})
        assert multipart.status_code == 422 and multipart.json()["field"] == "body", multipart.text


def test_predict_refuses_unknown_top_level_keys_and_aliases_outside_its_pattern(app, tokens: dict,
                                                                               model: Model) -> None:
    with live_server(app) as url:
        headers = bearer(tokens["scientist"])
        extra = httpx.post(f"{url}/v1/models/{model.name}/predict", json={"records": [{"a": 1}], "recrods": []},
                           headers=headers)
        assert extra.status_code == 422 and "unknown top-level key(s) 'recrods'" in extra.json()["detail"]
        schema = httpx.get(f"{url}/openapi.json", headers=headers).json()
        params = schema["paths"]["/v1/models/{name}/predict"]["post"]["parameters"]
        pattern = next(p["schema"]["pattern"] for p in params if p["name"] == "alias")
        for alias in ("0", "9lives", "-x", "ä"):  # what the schema refuses, the code refuses: 422 either way
            assert not re.match(pattern, alias)
            refused = httpx.post(f"{url}/v1/models/{model.name}/predict", params={"alias": alias},
                                 json={"records": [{"a": 1}]}, headers=headers)
            assert refused.status_code == 422, (alias, refused.text)
        assert re.match(pattern, "challenger") and re.match(pattern, "_canary-2")
