"""Live performance from feedback joined with the prediction log, compared with sklearn on known labels."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, r2_score
from sqlalchemy import select

from core import policy
from core.errors import NotFound
from core.monitoring import performance
from core.platform.storage import LocalStore
from db.models import Alert, AuditEvent, utcnow
from tests.support.performance import add_run, log_predictions


@pytest.fixture
def data_store(tmp_path: Path) -> LocalStore:
    """The workspace's artifact store, where compacted predictions would be (none are here)."""
    return LocalStore(tmp_path / "artifacts")


def rules(**performance_section):
    base = policy.ModelPolicy().model_dump()
    base["performance"] |= performance_section
    return policy.ModelPolicy.model_validate(base)


def test_classification_matches_sklearn_over_the_newest_window(factory, data_store):
    add_run(factory, metrics={"accuracy": 0.9, "f1": 0.88, "roc_auc": 0.95})
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 400).tolist()
    pred = [t if rng.random() < 0.7 else int(rng.integers(0, 3)) for t in truth]
    log_predictions(factory, outputs=pred, labels=truth)
    with factory() as s:
        verdict = performance.evaluate(s, model="m", version=1, rules=rules(window=150, min_labels=50),
                                       store=data_store)
    newest_t, newest_p = truth[-150:], pred[-150:]
    assert verdict.labels == 150
    assert verdict.metrics["accuracy"] == pytest.approx(accuracy_score(newest_t, newest_p))
    assert verdict.metrics["f1"] == pytest.approx(f1_score(newest_t, newest_p, average="macro"))
    assert verdict.baseline == {"accuracy": 0.9, "f1": 0.88}
    expected = "ok" if verdict.metrics["f1"] >= 0.8 else "below_floor"
    assert verdict.status == expected


def test_regression_matches_sklearn(factory, data_store):
    add_run(factory, task="regression", metrics={"rmse": 1.0, "r2": 0.7, "mae": 0.8})
    rng = np.random.default_rng(5)
    truth = rng.normal(10, 3, 120)
    pred = truth + rng.normal(0, 1.5, 120)
    log_predictions(factory, outputs=pred.tolist(), labels=truth.tolist())
    with factory() as s:
        verdict = performance.evaluate(s, model="m", version=1, rules=rules(window=500, min_labels=50),
                                       store=data_store)
    assert verdict.metrics["rmse"] == pytest.approx(math.sqrt(mean_squared_error(truth, pred)))
    assert verdict.metrics["r2"] == pytest.approx(r2_score(truth, pred))
    assert verdict.baseline == {"rmse": 1.0, "r2": 0.7}
    assert verdict.status == ("ok" if r2_score(truth, pred) >= 0.4 else "below_floor")


def test_unlabelled_predictions_and_too_few_labels_give_no_verdict(factory, data_store):
    add_run(factory)
    log_predictions(factory, outputs=[1] * 100, labels=[0] * 100, labelled=20)
    with factory() as s:
        verdict = performance.evaluate(s, model="m", version=1, rules=rules(min_labels=50), store=data_store)
    assert (verdict.labels, verdict.status) == (20, "insufficient")
    assert verdict.metrics["accuracy"] == 0.0  # shown, but no verdict on 20 labels


def test_labels_compare_as_classes_whatever_their_json_type(factory, data_store):
    add_run(factory)
    log_predictions(factory, outputs=[1, 0, 1.0, "1", True] * 12, labels=[1.0, "0", 1, 1, 1] * 12)
    with factory() as s:
        verdict = performance.evaluate(s, model="m", version=1, rules=rules(min_labels=10), store=data_store)
    assert verdict.metrics["accuracy"] == 1.0


def test_versions_are_scored_apart_and_a_model_without_run_is_named(factory, data_store):
    add_run(factory, version=1)
    add_run(factory, version=2)
    log_predictions(factory, version=1, outputs=[1] * 60, labels=[1] * 60)
    log_predictions(factory, version=2, outputs=[1] * 60, labels=[0] * 60)
    with factory() as s:
        v1 = performance.evaluate(s, model="m", version=1, rules=rules(min_labels=50), store=data_store)
        v2 = performance.evaluate(s, model="m", version=2, rules=rules(min_labels=50), store=data_store)
        with pytest.raises(NotFound, match="m v9 has no LeanOps training run"):
            performance.evaluate(s, model="m", version=9, rules=rules(), store=data_store)
    assert (v1.metrics["accuracy"], v1.status) == (1.0, "ok")
    assert (v2.metrics["accuracy"], v2.status) == (0.0, "below_floor")


def test_series_rolls_the_window_and_ends_at_the_verdict(factory, data_store):
    add_run(factory, metrics={"accuracy": 0.8, "f1": 0.8})
    truth = [i % 2 for i in range(300)]
    pred = truth[:150] + [1 - t for t in truth[150:]]  # right, then all wrong
    log_predictions(factory, outputs=pred, labels=truth)
    r = rules(window=100, min_labels=20)
    with factory() as s:
        points = performance.series(s, model="m", rules=r, store=data_store, max_points=30)
        verdict = performance.evaluate(s, model="m", version=1, rules=r, store=data_store)
    assert 25 <= len(points) <= 31
    assert points[0].labels == 20 and points[0].metrics["accuracy"] == 1.0
    assert all(p.labels <= 100 for p in points)
    assert points[-1].metrics == verdict.metrics and points[-1].metrics["accuracy"] == 0.0
    assert [p.ts for p in points] == sorted(p.ts for p in points)
    assert points[-1].baseline == {"accuracy": 0.8, "f1": 0.8}


def test_a_drop_is_one_event_with_an_alert_and_a_recovery_is_audited(factory, settings):
    settings.home.mkdir(parents=True, exist_ok=True)
    add_run(factory)
    log_predictions(factory, outputs=[1] * 60, labels=[0] * 60)
    r = rules(min_labels=50, window=60)

    def check():
        with factory() as s:
            return performance.record(factory, settings, performance.evaluate(s, model="m", version=1, rules=r,
                                                                                     store=settings.data_store))

    assert check() == "performance.dropped"
    assert check() is None  # still down: no second event
    log_predictions(factory, outputs=[1] * 60, labels=[1] * 60, start=utcnow() - timedelta(hours=1))
    assert check() == "performance.recovered"
    with factory() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action.like("performance.%"))
                           .order_by(AuditEvent.seq)).all()
        alerts = s.scalars(select(Alert)).all()
    assert [(e.actor, e.action) for e in events] == [("system:performance-monitor", "performance.dropped"),
                                                     ("system:performance-monitor", "performance.recovered")]
    assert "live f1 0.0 (floor >= 0.8)" in events[0].details["reason"]
    assert [(a.condition, a.model, a.severity) for a in alerts] == [("performance", "m", "critical")]
