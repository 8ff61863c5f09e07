"""The shadow comparison's label-free estimates (issue 18 with issue 16's estimator): both versions are
estimated on the same recent records of the champion, the numbers come out as a band around what the
labels later show, and they decide only when labels are too few, the policy allows it and the bands part."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.actors import Actor
from core.monitoring import shadow_comparison
from core.promotion.registration import train
from db.models import PredictionLog, utcnow
from tests.support import aliases
from tests.support.shadow import log_pairs
from tests.support.training import small_churn


def rules(*, use_estimate: bool, min_labelled: int = 200, max_days: float = 14, min_relative: float = 0.02):
    from core import policy

    base = policy.ModelPolicy().model_dump()
    base["performance"]["use_estimate"] = use_estimate
    base["shadow"].update(enabled=True, min_labelled=min_labelled, max_days=max_days)
    base["improvement"]["min_relative"] = min_relative
    return policy.ModelPolicy.model_validate(base)


def band(value: float, half: float) -> dict[str, float]:
    return {"value": value, "lower": value - half, "upper": value + half}


@pytest.mark.parametrize(("use", "labelled", "age", "challenger", "decision", "says"), [
    (True, 10, 20.0, band(0.90, 0.02), "promote", "do not overlap"),  # bands apart, 12 % better
    (True, 10, 20.0, band(0.82, 0.04), "discard", "overlap"),  # better, but the bands overlap
    (True, 10, 20.0, band(0.70, 0.02), "discard", "do not overlap"),  # clearly worse
    (False, 10, 20.0, band(0.90, 0.02), "discard", "no paired labels"),  # the policy does not act on estimates
    (True, 10, 2.0, band(0.90, 0.02), "wait", "shadow.min_labelled"),  # before shadow.max_days: wait for labels
])
def test_the_estimates_decide_only_without_enough_labels_when_the_policy_allows(use, labelled, age, challenger,
                                                                              decision, says):
    got, reasons = shadow_comparison.decide(task="classification", labelled=labelled, champion_score=None,
                                            challenger_score=None, p_value=None, age_days=age,
                                            rules=rules(use_estimate=use), champion_estimate=band(0.80, 0.02),
                                            challenger_estimate=challenger)
    assert got == decision and says in " ".join(reasons), reasons


def test_enough_paired_labels_outweigh_the_estimates():
    """200 labels say the challenger is worse; its estimate says better: the labels decide."""
    got, reasons = shadow_comparison.decide(task="classification", labelled=200, champion_score=0.85,
                                            challenger_score=0.80, p_value=0.01, age_days=20.0,
                                            rules=rules(use_estimate=True),
                                            champion_estimate=band(0.80, 0.01), challenger_estimate=band(0.95, 0.01))
    assert got == "discard" and "estimated" not in " ".join(reasons)


def test_regression_estimates_compare_errors_lower_is_better():
    got, reasons = shadow_comparison.decide(task="regression", labelled=0, champion_score=None, challenger_score=None,
                                            p_value=None, age_days=20.0, rules=rules(use_estimate=True),
                                            champion_estimate=band(4.0, 0.2), challenger_estimate=band(3.0, 0.2))
    assert got == "promote" and "estimated mae 3" in reasons[1], reasons


def test_both_versions_are_estimated_on_the_same_recent_records(trained):
    """Champion v1 (a random forest) and a challenger v2 (logistic) trained through LeanOps; 800 of the
    champion's records logged in the last hours with their shadow pairs. Each version's estimated accuracy
    is a band near its accuracy on those records' true labels (kept aside: no feedback is sent), the
    comparison carries both, and a comparison without estimates has none."""
    settings, factory = trained.settings, trained.factory
    train(factory, settings, {"dataset": "churn", "target": "churn", "model": "linear"},
          actor=Actor("sam", "scientist", "job"), log=lambda line: None)
    aliases.move(settings, model="churn", alias="challenger", version=2, at=utcnow() - timedelta(hours=3))
    frame = small_churn(800, seed=31)
    outputs = log_pairs(factory, settings.registry, frame, ts=utcnow() - timedelta(hours=2))
    with factory() as s:
        assert s.scalar(select(PredictionLog.id).limit(1)) is not None
        found = shadow_comparison.compare(s, settings, actor=shadow_comparison.ACTOR, model="churn")
        shadow_comparison._estimated.clear()
        bare = shadow_comparison.compare(s, settings, actor=shadow_comparison.ACTOR, model="churn", estimate=False)
    assert (found.champion, found.challenger, found.compared, found.labelled) == (1, 2, 800, 0)
    truth = frame["churn"].to_numpy()
    for estimate, version in ((found.champion_estimate, 1), (found.challenger_estimate, 2)):
        assert estimate is not None and estimate["lower"] <= estimate["value"] <= estimate["upper"]
        realised = float((outputs[version] == truth).mean())
        print(f"v{version}: estimated {estimate}, realised {realised:.4f}")
        assert abs(estimate["value"] - realised) < 0.08, (version, estimate, realised)
    doc = found.as_dict()
    assert doc["champion_estimate"] == found.champion_estimate and found.decision == "wait"
    assert bare.champion_estimate is None and bare.challenger_estimate is None

    # `cli.py shadow churn` says them in words too
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")} | {
        "LEANOPS_HOME": str(settings.home), "LEANOPS_DB_URL": settings.db_url,
        "LEANOPS_MLFLOW_URI": settings.mlflow_uri, "LEANOPS_ARTIFACTS": str(settings.artifacts)}
    ran = subprocess.run([sys.executable, "cli.py", "shadow", "churn"], cwd=Path(__file__).resolve().parents[3],
                         env=env, capture_output=True, text=True, timeout=180)
    assert ran.returncode == 0, ran.stderr
    said = found.champion_estimate
    assert (f"estimated accuracy without labels: champion {said['value']} [{said['lower']}, {said['upper']}] vs "
            "challenger 0.") in ran.stdout, ran.stdout
