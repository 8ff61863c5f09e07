"""`cli.py drift MODEL --current FILE [--threshold P] --json` as a user runs it: one JSON document, exit 0/1/2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.drift import shifted
from tests.support.paths import ROOT
from tests.support.training import *  # noqa: F403
from tests.support.training import small_churn

# `trained`: the trained workspace of the monitoring tests (conftest.py; trained once per session, copied per test).


def drift_cli(settings, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")}
    env |= {"LEANOPS_HOME": str(settings.home), "LEANOPS_DB_URL": settings.db_url, "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1"}
    done = subprocess.run([sys.executable, "cli.py", "drift", *args, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout, done.stderr


def test_same_distribution_exits_0_with_the_contract_document(trained, tmp_path):
    batch = tmp_path / "same.csv"
    small_churn(900, seed=21).to_csv(batch, index=False)
    code, out, err = drift_cli(trained.settings, "churn", "--current", str(batch), "--report")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["drift_detected"] is False and 0 <= doc["drift_share"] < 0.5
    assert (doc["model"], doc["version"], doc["rows"]) == ("churn", 1, 900)
    assert set(doc["columns"]) == {"customer_age", "tenure_months", "monthly_charges", "total_charges",
                                   "support_calls", "contract", "payment_method", "region", "gender", "senior"}
    for col in doc["columns"].values():
        assert {"method", "statistic", "p_value", "psi", "drifted"} <= set(col)
    assert doc["columns"]["monthly_charges"]["method"] == "ks"
    assert Path(doc["report"]).is_file()  # --report waited for it
    assert doc["verdict"] == {"drifted": False, "reasons": [], "rules": [], "ranked": doc["verdict"]["ranked"],
                              "not_counted": doc["verdict"]["not_counted"]}
    assert set(doc["estimated_performance"]) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    for est in doc["estimated_performance"].values():
        assert est["lower"] <= est["value"] <= est["upper"] and est["reference"] is not None
    assert abs(sum(c["importance"] for c in doc["columns"].values()) - 1) < 1e-6


def test_drift_exits_1_and_threshold_overrides_the_policy(trained, tmp_path):
    batch = tmp_path / "shifted.parquet"
    shifted().to_parquet(batch)
    code, out, _ = drift_cli(trained.settings, "churn", "--current", str(batch), "--no-report")
    doc = json.loads(out)
    assert code == 1 and doc["drift_detected"] and doc["columns"]["monthly_charges"]["drifted"]
    assert doc["report"] is None
    name, p = max(((n, c["p_value"]) for n, c in doc["columns"].items() if c["drifted"]), key=lambda item: item[1])
    assert 0 < p < 0.05
    code, out, _ = drift_cli(trained.settings, "churn", "--current", str(batch), "--threshold", f"{p / 10:.6e}",
                             "--no-report")
    assert not json.loads(out)["columns"][name]["drifted"]


def test_bad_input_exits_2_with_a_one_line_reason(trained, tmp_path):
    lacking = tmp_path / "lacking.csv"
    small_churn(100).drop(columns=["region"]).to_csv(lacking, index=False)
    cases = [
        (["churn", "--current", str(lacking)], "is missing column(s) region that churn v1 was trained on"),
        (["churn", "--current", str(tmp_path / "nope.csv")], "nope.csv does not exist"),
        (["other", "--current", str(lacking)], "model 'other' has no champion to check"),
        (["churn", "--current", str(lacking), "--threshold", "2"], "threshold 2.0 is not a p-value"),
        (["churn", "--current", str(lacking), "--version", "5"], "churn version 5 has no reference statistics"),
    ]
    for args, reason in cases:
        code, out, err = drift_cli(trained.settings, *args)
        assert code == 2 and reason in json.loads(out)["error"], (args, err)  # --json: the error as the document
        assert err.startswith("error: ") and reason in err and err.count("\n") == 1, err
