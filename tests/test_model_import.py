"""Bring your own model, as a user does it: a notebook (its own process) saves a scikit-learn pipeline with skops and
a bare XGBoost booster; ``cli.py model import`` evaluates and registers them; they are promoted, served over HTTP
(predictions equal the notebook's own), drift-checked, reported on and retrained. Pickle, joblib and a skops file
naming an untrusted type are refused with exit 2, nothing registered, and nothing inside them ran.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

import cli
from core.accounts import auth
from core.actors import system_actor
from core.platform.database import transaction
from core.retraining import triggers
from db.models import Alert, Job, ModelImport, TrainingRun
from tests.support.api import bearer, live_server
from tests.support.factories import admin_actor
from tests.support.training import *  # noqa: F403  (the workspace fixtures)
from tests.support.worker import drain

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the DB is not the subject here


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    out = tmp_path / "notebook"
    out.mkdir()
    subprocess.run([sys.executable, str(ROOT / "tests/support/notebook_models.py"), str(out), str(out / "MARKER")],
                   check=True, timeout=120, cwd=tmp_path)
    return out


@pytest.fixture
def run_cli(workspace, monkeypatch, capsys):  # noqa: F405
    monkeypatch.setenv("LEANOPS_HOME", str(workspace.home))
    monkeypatch.setenv("LEANOPS_DB_URL", workspace.db_url)
    monkeypatch.setenv("LEANOPS_SCHEDULER", "off")

    def run(*args: str) -> tuple[int, dict]:
        code = cli.main([*args, "--json"])
        out = capsys.readouterr().out.strip().splitlines()
        return code, json.loads(out[-1])

    return run


def _versions(factory) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(TrainingRun))


def test_notebook_models_imported_promoted_served_checked_and_retrained(notebook, run_cli, workspace, factory):  # noqa: F405
    settings = workspace
    assert run_cli("dataset", "add", "byom", str(notebook / "churn.csv"))[0] == 0

    # refused before a byte is deserialised: nothing registered, nothing inside ran
    for bad, words in (("payload.pkl", "a pickle"), ("payload.joblib", "a pickle"),
                       ("payload.skops", "type(s) LeanOps does not trust: __main__.Payload")):
        code, doc = run_cli("model", "import", "byom_bad", str(notebook / bad), "--dataset", "byom",
                            "--target", "churn")
        assert code == 2 and words in doc["error"] and "skops.io.dump" in doc["error"], doc
    assert not (notebook / "MARKER").exists(), "code inside a refused model file ran"
    assert _versions(factory) == 0
    assert not settings.registry.has_model("byom_bad")

    code, pipe = run_cli("model", "import", "byom_pipe", str(notebook / "pipe.skops"), "--dataset", "byom",
                         "--target", "churn", "--claimed-metrics", '{"f1": 0.99}')
    assert code == 0, pipe
    assert pipe["format"] == "skops" and pipe["version"] == 1 and pipe["gates"]["passed"] is True
    assert pipe["sha256"] == hashlib.sha256((notebook / "pipe.skops").read_bytes()).hexdigest()
    assert "XGBClassifier" in pipe["estimator"] and pipe["metrics"]["f1"] >= 0.85
    assert pipe["provenance"].startswith("imported by cli:") and "training code not reproduced by LeanOps" in \
        pipe["provenance"] and "pipe.skops" in pipe["provenance"]
    code, booster = run_cli("model", "import", "byom_xgb", str(notebook / "xgb.json"), "--dataset", "byom",
                            "--target", "churn")
    assert code == 0 and booster["format"] == "xgboost-json" and booster["gates"]["passed"] is True, booster
    with factory() as session:
        claimed = session.scalar(select(ModelImport.claimed_metrics).where(ModelImport.model_name == "byom_pipe"))
        stored = session.scalar(select(TrainingRun.metrics).where(TrainingRun.model_name == "byom_pipe"))
    assert claimed == {"f1": 0.99} and stored["f1"] == pipe["metrics"]["f1"], "claims are kept apart, never gated"

    for name in ("byom_pipe", "byom_xgb"):
        code, doc = run_cli("promote", name, "1")
        assert code == 0 and doc["promoted"] is True, doc

    # served over HTTP: the notebook's own predictions, through the trust path (sha256 checked at load)
    from api.app import create_app

    with transaction(factory) as session:
        token, _ = auth.create_token(session, actor=admin_actor(), role="viewer", name="byom")
    rows = json.loads((notebook / "rows.json").read_text())
    with live_server(create_app(settings, factory=factory)) as url, httpx.Client(base_url=url, timeout=60) as http:
        numeric = [{k: row[k] for k in ("age", "income")} for row in rows]  # the booster's own columns
        for name, records, expected in (("byom_pipe", rows, "pipe_pred.json"), ("byom_xgb", numeric, "xgb_pred.json")):
            answer = http.post(f"/v1/models/{name}/predict", json={"records": records}, headers=bearer(token))
            assert answer.status_code == 200, answer.text
            assert answer.json()["predictions"] == json.loads((notebook / expected).read_text()), name

    code, drift = run_cli("drift", "byom_xgb", "--current", str(notebook / "churn_v2.csv"))
    assert code in (0, 1) and set(drift["columns"]) == {"age", "income"}, drift
    code, _ = run_cli("report", "byom_pipe", "1", "--format", "json", "--out", str(notebook / "report.json"))
    report = json.loads((notebook / "report.json").read_text())
    assert code == 0 and "training code not reproduced by LeanOps" in report["training_config"]["provenance"]

    # retrains: new data arrives; the bare booster needs a new import (an alert, no failed job), the
    # pipeline is refitted (a clone with the same hyperparameters) into a new version
    assert run_cli("dataset", "add", "byom", str(notebook / "churn_v2.csv"))[0] == 0
    for name in ("byom_xgb", "byom_pipe"):
        triggers.request_retrain(factory, settings, model=name, reason="new data", trigger="manual")
    drain(factory, settings)
    with factory() as session:
        statuses = {job.params.get("model"): job.status for job in session.scalars(
            select(Job).where(Job.kind == "retrain"))}
        alert = session.scalars(select(Alert).where(Alert.model == "byom_xgb", Alert.condition == "retrain")).all()
        refit = session.scalar(select(ModelImport).where(ModelImport.model_name == "byom_pipe",
                                                         ModelImport.refit_of == 1))
    assert statuses == {"byom_xgb": "succeeded", "byom_pipe": "succeeded"}, statuses
    assert [a.title for a in alert] == ["byom_xgb: champion v1 needs a new import"]
    assert refit is not None and refit.model_version == 2 and refit.imported_by == system_actor("retrain").name
    assert not settings.registry.has_model("byom_bad")
