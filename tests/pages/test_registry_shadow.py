"""The Registry page's Shadow panel for the challenger (issue 18): the paired numbers, the policy's decision,
both versions' label-free estimates and the chart over time, on real trained versions and logged pairs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.actors import Actor
from core.promotion.registration import train
from db.models import utcnow
from tests.support import aliases
from tests.support.shadow import log_pairs
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn

RECORDS, LABELLED = 300, 120


@pytest.fixture
def shadowed(factory, workspace):
    """Champion v1 (logistic) and challenger v2 (dummy), 300 records both scored, 120 of them labelled."""
    add_dataset(factory, workspace, small_churn(1500))
    for model in ("logistic_regression", "dummy"):
        train(factory, workspace, {"dataset": "churn", "target": "churn", "model": model},
              actor=Actor("sam", "scientist", "job"))
    aliases.move(workspace, model="churn", alias="champion", version=1, at=utcnow() - timedelta(hours=2))
    aliases.move(workspace, model="churn", alias="challenger", version=2, at=utcnow() - timedelta(hours=2))
    frame = small_churn(RECORDS, seed=5)
    outputs = log_pairs(factory, workspace.registry, frame, ts=utcnow() - timedelta(hours=1), labelled=LABELLED)
    truth = frame["churn"].to_numpy()[:LABELLED]
    return {v: float((outputs[v][:LABELLED] == truth).mean()) for v in (1, 2)}


def test_the_challenger_shows_its_shadow_panel(open_page, shadowed):
    at = open_page("app_pages/registry.py", role="viewer")
    next(s for s in at.selectbox if s.label == "Version").select(2).run()
    assert not at.exception
    assert any(h.value == "Shadow" for h in at.subheader)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Records compared"] == f"{RECORDS:,}" and shown["Labelled"] == f"{LABELLED:,}"
    assert float(shown["Champion v1 accuracy"]) == pytest.approx(shadowed[1], abs=1e-3)  # on the 120 labels
    assert float(shown["Challenger v2 accuracy"]) == pytest.approx(shadowed[2], abs=1e-3)
    text = " ".join(m.value for m in [*at.markdown, *at.caption])
    assert "Policy's decision" in text and "wait" in text  # 120 of 200 labels (shadow.min_labelled), day 0 of 14
    assert "the champion answered in 1 ms end to end; the challenger spent 2 ms of model time" in text
    assert "shadow.enabled is off" in text  # this workspace's policy does not shadow: nothing is decided
    assert "Estimated accuracy without labels" in text and "champion 0." in text and "challenger 0." in text
    assert len(at.get("plotly_chart")) >= 1  # agreement and each model's score per day

    at = open_page("app_pages/registry.py", role="viewer")  # the champion's own page has no panel
    next(s for s in at.selectbox if s.label == "Version").select(1).run()
    assert not any(h.value == "Shadow" for h in at.subheader)


def test_the_challengers_compliance_report_carries_the_shadow_comparison(factory, workspace, shadowed):
    import io

    from pypdf import PdfReader

    from core.compliance import reports

    content = reports.build(factory, workspace, model="churn", version=2)
    found = content["monitoring"]["shadow"]
    assert (found["compared"], found["labelled"], found["decision"]) == (RECORDS, LABELLED, "wait")
    assert found["champion_estimate"]["lower"] <= found["champion_estimate"]["value"]
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(reports.render_pdf(content))).pages)
                    .split())
    assert "Shadow comparison with champion v1" in text and "Decision: wait" in text
    assert f"records compared {RECORDS}" in text and "estimated accuracy without labels" in text
