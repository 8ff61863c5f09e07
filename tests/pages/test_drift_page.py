"""Drift page on a real trained model: empty state, queuing a check, thresholds saved to policies.yaml."""

from __future__ import annotations

import pytest

from core import policy
from db.models import AuditEvent
from jobs.train import execute
from tests.training_support import *  # noqa: F403
from tests.training_support import add_dataset, small_churn


@pytest.fixture
def trained(factory, workspace):
    add_dataset(factory, workspace, small_churn(800))
    execute(factory, workspace, {"dataset": "churn", "target": "churn", "model": "logistic_regression",
                                 "sensitive": "gender", "seed": 1}, actor_name="sam")
    return workspace


def test_no_models_yet(open_page):
    at = open_page("pages/drift.py", role="viewer")
    assert not at.exception
    assert "No models yet" in at.info[0].value


def test_viewer_sees_settings_but_no_buttons(open_page, trained):
    at = open_page("pages/drift.py", role="viewer")
    assert not at.exception
    assert "No drift checks of churn yet" in at.info[0].value
    assert not [b for b in at.button if b.label == "Run drift check"]
    assert any("Data drift:" in m.value for m in at.markdown)


def test_admin_saves_thresholds_into_policy(open_page, trained, factory):
    at = open_page("pages/drift.py", role="admin")
    next(n for n in at.number_input if n.label == "Drift share above").set_value(0.3)
    next(n for n in at.number_input if n.label == "Alert cooldown (minutes)").set_value(30.0)
    at.button(key="FormSubmitter:drift-settings-Save thresholds").click().run()
    assert not at.exception, at.exception
    rules = policy.for_model(policy.load(trained.home), "churn")
    assert rules.drift.share == 0.3 and rules.alerts.cooldown_minutes == 30
    assert rules.fairness.column == "gender"  # the existing override survives
    with factory() as s:
        assert s.query(AuditEvent).filter_by(action="policy.changed").count() == 1


def test_scientist_queues_a_window_check_admin_only_settings(open_page, trained, factory):
    at = open_page("pages/drift.py", role="scientist")
    assert not [f for f in at.get("form")]  # thresholds are for admins
    button = next(b for b in at.button if b.label == "Run drift check")
    assert button.disabled  # nothing promoted yet: no champion to compare with
