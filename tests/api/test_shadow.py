"""Shadow scoring end to end (issue 18): the challenger scores the champion's live records off the response
path, the comparison is checked against a hand computation, and the policy promotes a better challenger
(audited ``system:shadow``, MLflow's champion alias moved) or discards a worse one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from scipy.stats import binomtest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.monitoring import shadow_comparison
from core.platform.prediction_log import reads
from core.platform.registry_port import SHADOW
from core.settings import Settings
from db.models import Alert, AliasMove, AuditEvent, PredictionLog
from tests.support import aliases
from tests.support.api import LeanOpsStore, Model, bearer, predict
from tests.support.mlflow_models import records

REQUESTS = 400
ROOT = Path(__file__).resolve().parents[2]


def shadow_policy(settings: Settings, name: str, decide: str = "promote") -> None:
    """Shadowing on for ``name``; the test versions' training runs recorded no metrics and no certificate,
    so those gates are off (the decision still goes through the gates)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "policies.yaml").write_text(
        "default:\n  metrics: {classification: {}, regression: {}}\n"
        "  certificate: {require_passed: false, max_age_days: null}\n"
        f"models:\n  {name}:\n    shadow: {{enabled: true, min_labelled: 200, decide: {decide}}}\n")


def serve_and_label(client: TestClient, app: FastAPI, factory: sessionmaker[Session], model: Model, token: str,
                    *, truth: str) -> dict[str, list]:
    """400 single-record requests, then feedback labels from a hidden rule: the ``truth`` model's answer
    (``champion`` or ``shadow``), one label in 20 flipped. Returns the paired rows by hand."""
    ids = []
    for i, record in enumerate(records(REQUESTS)):
        answer = predict(client, model.name, token, [record])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["predictions"]) == 1 and body["alias"] == "champion"  # the shadow is never returned
        ids.append(body["request_id"])
        del i
    rt = app.state.runtime
    assert rt.predictor.shadow.drain(30) and rt.writer.drain(30)
    with factory() as session:
        rows = session.execute(select(PredictionLog.request_id, PredictionLog.alias, PredictionLog.version,
                                      PredictionLog.output)).all()
    champion = {r.request_id: r.output for r in rows if r.alias == "champion"}
    challenger = {r.request_id: r.output for r in rows if r.alias == SHADOW}
    assert set(challenger) == set(champion) == set(ids)  # every request shadowed, under its own request id
    assert {r.version for r in rows if r.alias == SHADOW} == {model.versions["rf20"]}
    source = champion if truth == "champion" else challenger
    labels = {}
    for i, rid in enumerate(ids):
        label = source[rid] if i % 20 else 1 - source[rid]
        answer = client.post(f"/v1/models/{model.name}/feedback", json={"request_id": rid, "labels": [label]},
                             headers=bearer(token))
        assert answer.json() == {"request_id": rid, "stored": 1}  # the shadow row is not a second record
        labels[rid] = label
    return {"ids": ids, "champion": [champion[r] for r in ids], "challenger": [challenger[r] for r in ids],
            "labels": [labels[r] for r in ids]}


@pytest.mark.parametrize("truth", ["shadow", "champion"])
def test_shadow_comparison_and_policy_decision(truth: str, store: LeanOpsStore, model: Model, api_settings: Settings,
                                               api_factory: sessionmaker[Session], app: FastAPI,
                                               tokens: dict[str, str]) -> None:
    lr, rf = model.versions["lr"], model.versions["rf20"]
    store.move(model.name, rf, aliases.CHALLENGER)
    shadow_policy(api_settings, model.name)
    with TestClient(app) as client:
        pairs = serve_and_label(client, app, api_factory, model, tokens["admin"], truth=truth)
        got = client.get(f"/v1/models/{model.name}/shadow", headers=bearer(tokens["viewer"])).json()
        with api_factory() as session:  # the client never sees shadow rows: the request holds one record
            assert len(reads.by_request(session, request_id=pairs["ids"][0], store=api_settings.data_store)) == 1

    # the hand computation
    ch_right = [c == y for c, y in zip(pairs["champion"], pairs["labels"], strict=True)]
    cl_right = [c == y for c, y in zip(pairs["challenger"], pairs["labels"], strict=True)]
    b = sum(1 for c, h in zip(ch_right, cl_right, strict=True) if c and not h)
    c = sum(1 for x, h in zip(ch_right, cl_right, strict=True) if h and not x)
    agree = sum(1 for x, y in zip(pairs["champion"], pairs["challenger"], strict=True) if x == y) / REQUESTS
    expected_p = binomtest(c, b + c, 0.5).pvalue
    assert {k: got[k] for k in ("champion", "challenger", "compared", "labelled", "metric")} == {
        "champion": lr, "challenger": rf, "compared": REQUESTS, "labelled": REQUESTS, "metric": "accuracy"}
    assert got["agreement"] == pytest.approx(agree, abs=1e-4)
    assert got["champion_score"] == pytest.approx(sum(ch_right) / REQUESTS, abs=1e-4)
    assert got["challenger_score"] == pytest.approx(sum(cl_right) / REQUESTS, abs=1e-4)
    assert got["p_value"] == pytest.approx(expected_p, rel=1e-3, abs=1e-6)
    assert agree < 0.95, "the two test models must disagree for the test to mean anything"
    better = truth == "shadow"
    assert got["decision"] == ("promote" if better else "discard")
    assert got["days"] and got["days"][0]["compared"] == REQUESTS  # the panel's chart over time

    # `cli.py shadow MODEL --json` says the same as the route
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")} | {
        "LEANOPS_HOME": str(api_settings.home), "LEANOPS_DB_URL": api_settings.db_url,
        "LEANOPS_MLFLOW_URI": api_settings.mlflow_uri, "LEANOPS_ARTIFACTS": str(api_settings.artifacts)}
    ran = subprocess.run([sys.executable, "cli.py", "shadow", model.name, "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    printed = json.loads(ran.stdout)
    assert list(printed)[:10] == ["champion", "challenger", "compared", "labelled", "agreement", "metric",
                                  "champion_score", "challenger_score", "p_value", "decision"]
    assert {k: v for k, v in printed.items() if k != "days"} == {k: v for k, v in got.items() if k != "days"}

    # the challenger's compliance report carries the same comparison (its section still validates)
    import jsonschema

    from core.compliance import reports

    content = reports.build(api_factory, api_settings, model=model.name, version=rf)
    jsonschema.validate(content["monitoring"], reports.schema()["properties"]["monitoring"])
    assert {k: content["monitoring"]["shadow"][k] for k in ("compared", "labelled", "p_value", "decision")} == {
        k: got[k] for k in ("compared", "labelled", "p_value", "decision")}
    assert reports.build(api_factory, api_settings, model=model.name, version=lr)["monitoring"]["shadow"] is None

    done = shadow_comparison.run(api_factory, api_settings, model=model.name)
    assert done["acted"] == ("promoted" if better else "discarded")
    now = aliases.all_for(api_settings, model=model.name)
    assert now.get("champion") == (rf if better else lr)
    assert "challenger" not in now  # cleared either way; the version stays registered
    assert api_settings.registry.version(model.name, rf).version == rf  # still registered
    with api_factory() as session:
        decided = session.scalars(select(AuditEvent).where(AuditEvent.action == shadow_comparison.DECIDED)).all()
        cleared = session.scalars(select(AliasMove).where(AliasMove.model == model.name,
                                                          AliasMove.alias == "challenger")
                                  .order_by(AliasMove.id.desc())).first()
        alerts = session.scalars(select(Alert).where(Alert.model == model.name)).all()
    assert [(e.actor, e.details["decision"], e.details["labelled"]) for e in decided] == [
        ("system:shadow", got["decision"], REQUESTS)]
    assert cleared is not None and cleared.to_version is None and cleared.actor == "system:shadow"
    assert any("shadow challenger" in a.title for a in alerts)
    # decided once per challenger version: a second round does nothing
    assert shadow_comparison.run(api_factory, api_settings, model=model.name)["decision"] == "none"


def test_shadow_route_without_a_challenger_says_none(client: TestClient, model: Model, tokens: dict) -> None:
    got = client.get(f"/v1/models/{model.name}/shadow", headers=bearer(tokens["viewer"]))
    assert got.status_code == 200
    assert got.json()["decision"] == "none" and got.json()["compared"] == 0
    assert client.get("/v1/models/no-such-model/shadow", headers=bearer(tokens["viewer"])).status_code == 404


def test_a_challenger_cleared_by_promotion_and_re_pointed_in_mlflow_is_not_served(
        store: LeanOpsStore, model: Model, api_settings: Settings, api_factory: sessionmaker[Session]) -> None:
    """Regression: promotion cleared the challenger alias without a history row, so LeanOps' record still said
    @challenger → v2 and a challenger re-pointed at v2 directly in MLflow was served as if LeanOps moved it."""
    from mlflow import MlflowClient

    from core.errors import NotFound
    from core.serving.cache import ModelCache

    rf = model.versions["rf20"]
    store.move(model.name, rf, aliases.CHALLENGER)
    store.move(model.name, rf)  # promoted through LeanOps: the challenger alias is cleared, and recorded
    with api_factory() as session:
        last = session.scalars(select(AliasMove).where(AliasMove.model == model.name, AliasMove.alias == "challenger")
                               .order_by(AliasMove.id.desc())).first()
    assert last is not None and (last.from_version, last.to_version, last.action) == (rf, None, "challenger_cleared")
    MlflowClient(api_settings.mlflow_uri, api_settings.mlflow_uri).set_registered_model_alias(
        model.name, "challenger", str(rf))  # no LeanOps move
    cache = ModelCache(registry=api_settings.registry, reload_seconds=3600, factory=api_factory,
                       settings=api_settings)
    with pytest.raises(NotFound, match="has no version with alias 'challenger'"):  # LeanOps' record has none
        cache.get(model.name, "challenger")


def test_the_route_shares_one_comparison_per_window_computed_off_the_request_path(
        store: LeanOpsStore, model: Model, api_settings: Settings, app: FastAPI, tokens: dict[str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27: each viewer call re-read every paired record. Within a window the route answers the comparison
    it has; a stale one is answered while the next is computed; an alias move starts afresh."""
    store.move(model.name, model.versions["rf20"], aliases.CHALLENGER)
    shadow_policy(api_settings, model.name)

    def serve(n: int) -> None:
        for record in records(n):
            assert predict(client, model.name, tokens["admin"], [record]).status_code == 200
        assert app.state.runtime.predictor.shadow.drain(30) and app.state.runtime.writer.drain(30)

    def compared() -> int:
        answer = client.get(f"/v1/models/{model.name}/shadow", headers=bearer(tokens["viewer"]))
        assert answer.status_code == 200, answer.text
        return answer.json()["compared"]

    with TestClient(app) as client:
        serve(10)
        assert compared() == 10
        serve(5)
        assert [compared() for _ in range(20)] == [10] * 20  # one comparison for the window, however many reads
        monkeypatch.setattr(shadow_comparison, "SHARED_SECONDS", 0.0)  # every answer now stale
        assert compared() == 10  # the stale one, answered at once; the next is computed meanwhile
        key = next(k for k in shadow_comparison._shared if k[1] == model.name)
        shadow_comparison._shared[key].future.result(timeout=60)
        assert compared() == 15
        assert client.get("/v1/models/no-such-model/shadow", headers=bearer(tokens["viewer"])).status_code == 404
