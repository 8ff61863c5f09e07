"""The issue's "Done when" chain, run by examples/drift_demo.py against a real API process, a local
webhook receiver and a local SMTP server: drifted traffic → drift check → one alert at each →
retrain → promotion → audit chain with system: actors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_demo():
    spec = importlib.util.spec_from_file_location("drift_demo", ROOT / "examples" / "drift_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_drift_demo_runs_the_whole_chain(tmp_path):
    result = load_demo().run_demo(tmp_path / "ws", say=lambda line: None)
    assert result["served"] == 400
    assert result["drift"]["drift_detected"]
    assert result["drift"]["flagged"] == ["contract", "monthly_charges"]
    assert result["receivers"]["webhook_drift_alerts"] == 1 and result["receivers"]["webhook_signed"]
    assert result["receivers"]["email_drift_alerts"] == 1
    assert result["receivers"]["email_subject"].startswith("[LeanOps] Drift in churn v1")
    retrained = result["retrain"]
    assert (retrained["created_by"], retrained["trigger"], retrained["version"], retrained["dataset"]) == (
        "system:retrain", "drift", 2, "churn:2")
    assert retrained["outcome"] == "promoted" and retrained["f1"] > result["champion_f1_before"]
    steps = [(e["actor"], e["action"]) for e in result["audit"]]
    for step in [("system:drift-check", "drift.checked"), ("system:retrain", "retrain.requested"),
                 ("system:retrain", "model.trained"), ("system:retrain", "model.promote"),
                 ("system:retrain", "retrain.finished")]:
        assert step in steps, step
    assert steps.index(("system:drift-check", "drift.checked")) < steps.index(("system:retrain", "model.promote"))
    reasons = {e["action"]: e["reason"] for e in result["audit"]}
    assert reasons["retrain.requested"].startswith(f"drift check {result['drift']['check_id']}: drift detected")
    assert result["audit_ok"]


def test_the_demo_refuses_a_workspace_that_is_not_new(tmp_path):
    import pytest

    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "leanops.db").write_text("")
    with pytest.raises(SystemExit, match="is not empty"):
        load_demo().run_demo(tmp_path / "ws", say=lambda line: None)
