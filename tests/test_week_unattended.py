"""A week unattended, driven through the CLI and the API on SQLite and PostgreSQL (a few hundred rows):

a European export (';' and decimal commas, by the CLI) fails its certificate and is never the default → a drift
check's retrain uses the last certified version → a retrain pinned to the failed version fails with its cause in
words in the alert title → two production changes within a minute (a forced promotion and a rollback, by the
API) both reach a local webhook → a misspelled and a missing column are 422s naming
``records[i].column`` → a promotion request for a version failing its gates is refused at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core import policy, secrets
from core.actors import Actor
from core.alerts import channels, notify
from core.data import datasets
from core.monitoring import checks
from core.platform.database import transaction
from core.promotion import approvals, gates, moves
from core.training import runs
from tests.support import versions
from tests.support.api import bearer, predict
from tests.support.receivers import HttpReceiver
from tests.support.training import *  # noqa: F403  (the workspace fixtures)
from tests.support.training import add_dataset, small_churn
from tests.support.worker import drain

ROOT = Path(__file__).resolve().parents[1]
APPROVER, SCIENTIST = Actor("ann", "approver"), Actor("sam", "scientist")
FAST = {"model": "linear"}


@pytest.fixture
def week(workspace):
    """The workspace, with the local webhook stand-in allowed as an alert destination."""
    return workspace.model_copy(update={"alert_allowed_hosts": "127.0.0.1"})


def _cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")}
    env |= {"LEANOPS_HOME": str(settings.home), "LEANOPS_DB_URL": settings.db_url, "LEANOPS_SCHEDULER": "off",
            "LEANOPS_ALERT_ALLOWED_HOSTS": "127.0.0.1"}
    if settings.secret_key is not None:  # the key the channel's secret was sealed with
        env["LEANOPS_SECRET_KEY"] = settings.secret_key.get_secret_value()
    return subprocess.run([sys.executable, "cli.py", *args, "--json"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)


def _alerts(factory, condition: str) -> list[notify.AlertView]:
    with factory() as s:
        return [a for a in reversed(notify.recent(s, limit=100)) if a.condition == condition]


def test_a_week_unattended(factory, week, tmp_path) -> None:
    settings = week
    good = small_churn(300)
    add_dataset(factory, settings, good)  # churn:1, certified
    with HttpReceiver(hang_seconds=5) as hook:
        with transaction(factory) as s:
            channels.add_channel(s, actor=Actor("root", "admin"), name="ops", kind="webhook",
                                 config={"url": hook.url("/ops"), "secret": "week-unattended-secret"},
                                 keys=secrets.load_keys(settings))
        v1 = versions.trained(factory, settings, model_name="loans", **FAST)
        moves.promote(factory, settings, actor=APPROVER, model="loans", version=v1, reason="first model")
        drain(factory, settings)

        # Monday: a European export (';' separator, decimal commas) fails its certificate, with a hint
        export = tmp_path / "churn-eu.csv"
        small_churn(300, seed=8).to_csv(export, sep=";", decimal=",", index=False)
        added = _cli(settings, "dataset", "add", "churn", str(export))
        doc = json.loads(added.stdout)
        assert doc["version"] == 2 and doc["quality"]["passed"] is False, added.stderr
        dtype = next(c for c in doc["quality"]["checks"] if c["check"] == "dtype" and c["column"] == "monthly_charges")
        assert "decimal commas" in dtype["hint"]
        with factory() as s:  # ... and it is never the default, though it is the newest
            assert datasets.default_version(s, name="churn").version == 1
            assert datasets.newest_number(s, name="churn") == 2

        # Tuesday: drift → the retrain trains on the last certified version (churn:1), not on churn:2
        drifted = small_churn(300, seed=9).drop(columns=["churn"])
        drifted["tenure_months"] = drifted["tenure_months"] + 60
        drifted["monthly_charges"] = drifted["monthly_charges"] * 3
        check = checks.run_check(factory, settings, actor=SCIENTIST, model="loans", source="upload",
                                 current=drifted, filename="tuesday.csv", report=False)
        assert check.drift_detected
        drain(factory, settings)
        with factory() as s:
            retrained = runs.row_for_version(s, model="loans", version=2)
        assert retrained is not None and (retrained.dataset_name, retrained.dataset_version) == ("churn", 1)

        # Wednesday: a retrain pinned (policy) to the failed version fails; the alert title says why, in words
        text = policy.with_override(settings.policies.text(), "loans", "retrain", {"dataset_version": 2})
        with transaction(factory) as s:
            settings.policies.save(s, actor=Actor("root", "admin"), text=text)
        from core.retraining import triggers

        triggers.request_retrain(factory, settings, model="loans", reason="weekly", trigger="manual")
        drain(factory, settings)
        assert notify.wait_for_deliveries(30)
        [failure] = _alerts(factory, "job_failure")
        assert failure.title.startswith("retrain of loans failed: dataset churn:2's certificate failed "
                                        "(dtype customer_age: text, expected number (values look like numbers "
                                        "with decimal commas (e.g. '"), failure.title
        assert "Traceback" not in failure.message and str(settings.home) not in failure.message

        # Thursday: two production changes within a minute (a forced promotion, a rollback): both delivered
        from api.app import create_app
        from core.accounts import auth

        with transaction(factory) as s:
            token, _ = auth.create_token(s, actor=Actor("root", "admin"), role="admin", name="week")
        with TestClient(create_app(settings, factory=factory)) as client:
            forced = client.post("/v1/models/loans/promote", headers=bearer(token),
                                 json={"version": 2, "force": True, "reason": "hotfix for the drift"})
            assert forced.status_code == 200, forced.text
            back = client.post("/v1/models/loans/rollback", json={"reason": "hotfix worse"}, headers=bearer(token))
            assert back.status_code == 200, back.text
            assert notify.wait_for_deliveries(30)
            changes = [a for a in _alerts(factory, "promotion") + _alerts(factory, "rollback")]
            assert len(changes) == 3 and not any(a.suppressed for a in changes)
            titles = {r.json()["title"] for r in hook.received("/ops")}  # the CLI waited for its own deliveries
            assert "loans: champion force-promoted v1 → v2 by token:week: hotfix for the drift" in titles, titles
            assert any(t.startswith("loans: champion rolled back v2 → v1 by ") and t.endswith(": hotfix worse")
                       for t in titles), titles

            # Friday: a client refactor — a misspelled column and a missing column are 422s naming them
            rows = json.loads(good.drop(columns=["churn"]).head(2).to_json(orient="records"))
            typo = [dict(rows[0]), dict(rows[1])]
            typo[1]["credit_charges"] = typo[1].pop("total_charges")
            answer = predict(client, "loans", token, typo)
            assert answer.status_code == 422 and answer.json()["field"] == "records[1].credit_charges", answer.text
            missing = [dict(rows[0]), dict(rows[1])]
            del missing[0]["tenure_months"]
            answer = predict(client, "loans", token, missing)
            assert answer.status_code == 422 and answer.json()["field"] == "records[0].tenure_months", answer.text
            assert predict(client, "loans", token, rows).status_code == 200

    # and a promotion request for a version failing its gates (v2 does not beat the champion) is refused at once
    with pytest.raises(gates.GatesFailed, match=r"v2 cannot be requested for promotion: its gates fail "
                                                r"\(improvement on f1 over champion"):
        with transaction(factory) as s:
            approvals.request_promotion(s, actor=SCIENTIST, model="loans", version=2, settings=settings)
    with factory() as s:
        assert approvals.pending_requests(s, model="loans") == []
