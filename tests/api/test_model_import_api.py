"""POST /v1/models/{name}/versions: the role it needs, refusals as 4xx naming what was wrong, nothing registered."""

from __future__ import annotations

import pickle

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from db.models import ModelImport, TrainingRun
from tests.support.api import bearer


def _post(client: TestClient, token: str, data: bytes, *, name: str = "byom_api", **fields: str):
    form = {"dataset": "churn", "target": "churn"} | fields
    return client.post(f"/v1/models/{name}/versions", headers=bearer(token), data=form,
                       files={"file": ("model.bin", data, "application/octet-stream")})


def test_import_needs_the_scientist_role_and_refuses_pickles_naming_them(client: TestClient, tokens: dict,
                                                                         api_factory) -> None:
    assert _post(client, tokens["viewer"], b"PK\x03\x04").status_code == 403
    refused = _post(client, tokens["scientist"], pickle.dumps({"weights": [1, 2]}))
    assert refused.status_code == 422 and "a pickle" in refused.text and "skops.io.dump" in refused.text
    assert _post(client, tokens["scientist"], b"{}", claimed_metrics="not json").status_code == 422
    assert _post(client, tokens["scientist"], b"x", name="bad name!").status_code == 422
    with api_factory() as session:
        assert session.scalar(select(func.count()).select_from(TrainingRun)) == 0
        assert session.scalar(select(func.count()).select_from(ModelImport)) == 0
