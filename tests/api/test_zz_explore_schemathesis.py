from __future__ import annotations
import collections, pytest, schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from tests.support.api import Model, bearer, live_server

@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_explore(app, tokens, model: Model, mode) -> None:
    found = collections.Counter()
    with live_server(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=bearer(tokens["viewer"]))
        schema.config.generation.update(allow_x00=True)
        for operation in [r.ok() for r in schema.get_all_operations()]:
            variants = [None] + ([{"name": model.name}] if "/models/{name}" in operation.path else [])
            for pp in variants:
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=pp)
                @given(case=strategy)
                @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
                def fuzz(case) -> None:
                    response = case.call(base_url=url, headers=bearer(tokens["scientist"]), timeout=30)
                    try:
                        case.validate_response(response, headers=bearer(tokens["scientist"]))
                    except BaseException as exc:
                        key = f"{operation.method.upper()} {operation.path} {pp and 'real'}: {str(exc)[:600]}"
                        if key not in found:
                            print("\n=== ", key, "\n  body:", repr(case.body)[:200], "query:", case.query, "ct:", case.media_type, "->", response.status_code, response.text[:200])
                        found[key] += 1
                try:
                    fuzz()
                except Unsatisfiable:
                    pass
    print("\nTOTAL distinct:", len(found))
