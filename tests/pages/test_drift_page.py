"""Drift page on a real trained model: empty state, queuing a check, thresholds saved to policies.yaml."""

from __future__ import annotations

import pytest

from core.actors import Actor
from core.promotion.registration import train
from db.models import AuditEvent
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn


@pytest.fixture
def trained(factory, workspace):
    add_dataset(factory, workspace, small_churn(800))
    train(factory, workspace, {"dataset": "churn", "target": "churn", "model": "logistic_regression",
                                 "sensitive": "gender", "seed": 1}, actor=Actor("sam", "scientist", "job"))
    return workspace


def test_no_models_yet(open_page):
    at = open_page("app_pages/drift.py", role="viewer")
    assert not at.exception
    assert "No models yet" in at.info[0].value


def test_viewer_sees_settings_but_no_buttons(open_page, trained):
    at = open_page("app_pages/drift.py", role="viewer")
    assert not at.exception
    assert "No drift checks of churn yet" in at.info[0].value
    assert not [b for b in at.button if b.label == "Run drift check"]
    assert any("Data drift:" in m.value for m in at.markdown)


def test_admin_saves_thresholds_into_policy(open_page, trained, factory):
    at = open_page("app_pages/drift.py", role="admin")
    next(n for n in at.number_input if n.label == "Drift share above").set_value(0.3)
    next(n for n in at.number_input if n.label == "Alert cooldown (minutes)").set_value(30.0)
    at.button(key="FormSubmitter:drift-settings-Save thresholds").click().run()
    assert not at.exception, at.exception
    rules = trained.policies.rules_for("churn")
    assert rules.drift.share == 0.3 and rules.alerts.cooldown_minutes == 30
    assert rules.fairness.column == "gender"  # the existing override survives
    with factory() as s:
        assert s.query(AuditEvent).filter_by(action="policy.changed").count() == 1


def test_scientist_queues_a_window_check_admin_only_settings(open_page, trained, factory):
    at = open_page("app_pages/drift.py", role="scientist")
    assert not [f for f in at.get("form")]  # thresholds are for admins
    button = next(b for b in at.button if b.label == "Run drift check")
    assert button.disabled  # nothing promoted yet: no champion to compare with


def test_a_stored_check_is_charted_and_tabled(open_page, trained, factory):
    import numpy as np

    from core.monitoring import checks
    from tests.support import aliases
    from tests.support.training import SCIENTIST

    aliases.move(trained, model="churn", alias="champion", version=1)
    batch = small_churn(600, seed=4)
    batch["monthly_charges"] = batch["monthly_charges"] + 30
    batch["contract"] = np.where(np.random.default_rng(1).random(600) < 0.9, "month-to-month", "one-year")
    check = checks.run_check(factory, trained, actor=SCIENTIST, model="churn", source="upload", current=batch,
                                 filename="batch.csv", report_now=True)
    assert {"monthly_charges", "contract"} <= set(check.drifted)

    at = open_page("app_pages/drift.py", role="viewer")
    assert not at.exception, at.exception
    assert [m.value for m in at.metric][1] == f"{len(check.drifted)} of {len(check.columns)}"
    # The verdict in words: why it counts as drift, or why these drifted columns do not.
    box = (at.error[0] if check.drift_detected else at.info[0]).value
    assert "monthly" in box and ("It counts because" in box or "do not make the data count" in box)
    assert ("Drift:" if check.drift_detected else "Stable, although") in box
    table = at.table[0].value
    flagged = {c.replace("\\", "") for c in table.loc[table["drifted"] == "yes", "column"]}  # names Markdown-escaped
    assert {"monthly_charges", "contract"} <= flagged
    assert table["drifted"].iloc[0] == "yes"  # drifted columns first
    assert next(s for s in at.selectbox if s.label == "Distribution of").value in flagged
    assert len(at.get("plotly_chart")) >= 3  # share over time, heatmap, the column's distribution
    assert any(b.label == "Download Evidently report (HTML)" for b in at.get("download_button"))

    # Issue 19 item 6: reference and current keep one colour each (never red), bins read as plain ranges,
    # and one fresh check is not charted over a few milliseconds.
    import json
    from datetime import datetime, timedelta

    from ui import charts

    next(s for s in at.selectbox if s.label == "Distribution of").set_value("monthly_charges").run()
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    bars = next(f for f in figures if "reference vs current" in f["layout"]["title"]["text"])
    assert [(t["name"], t["marker"]["color"]) for t in bars["data"]] == [
        ("reference (training)", charts.REFERENCE), ("current", charts.CURRENT)]
    assert bars["layout"]["xaxis"]["type"] == "category"
    assert not any("e+" in label or "e-" in label for label in bars["data"][0]["x"]), bars["data"][0]["x"]
    share = next(f for f in figures if f["layout"]["title"]["text"].startswith("Share of drifted"))
    start, end = (datetime.fromisoformat(str(x).replace(" ", "T")) for x in share["layout"]["xaxis"]["range"])
    assert end - start >= timedelta(hours=1)
