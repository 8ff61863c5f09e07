"""The demo workspace a newcomer sees: the churn dataset (core.workspace.bootstrap) plus a trained, promoted model."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from core.actors import system_actor
from core.platform import aliases
from core.promotion import moves
from core.registry.views import registry_for
from core.settings import Settings
from jobs.train import execute

DEMO_SPEC = {"dataset": "churn", "target": "churn", "model": "random_forest", "sensitive": "gender",
             "model_name": "churn", "seed": 42}


def seed_model(factory: sessionmaker[Session], settings: Settings) -> dict[str, Any]:
    """Train and promote the demo model once; later calls leave an existing churn model alone."""
    registry = registry_for(settings.mlflow_uri, settings.home)
    current = aliases.all_for(settings.mlflow_uri, model="churn")
    if current:
        return {"model": "churn", "aliases": current, "trained": False}
    result = execute(factory, settings, DEMO_SPEC, actor_name="system:demo", log=lambda line: None)
    version = result["model_version"]
    moves.commit_or_undo(factory, registry, lambda s: moves.promote(
        s, registry=registry, actor=system_actor("demo"), model="churn", version=version,
        reason="demo workspace"))
    return {"model": "churn", "aliases": {"champion": version}, "trained": True,
            "f1": round(result["metrics"]["f1"], 4)}


def seed_traffic(factory: sessionmaker[Session], settings: Settings, *, version: int, hours: int = 24,
                 per_hour: int = 30) -> dict[str, Any]:
    """A day of logged predictions with feedback for the demo model, and one drift check over it,
    so a newcomer's Overview and Drift pages have something to show. The last third of the day
    brings pricier plans (monthly charges about half a standard deviation higher)."""
    from uuid import uuid4

    from core.monitoring import checks
    from core.serving import cache, predictions
    from core.workspace.demo import churn_frame
    from db.models import PredictionLog, utcnow
    from db.session import transaction

    actor = system_actor("demo")
    loaded = cache.load_version(settings.mlflow_uri, name="churn", alias="champion", version=version)
    frame = churn_frame(hours * per_hour, seed=21)
    labels = frame.pop("churn").tolist()
    late = frame.index >= len(frame) * 2 // 3
    frame.loc[late, "monthly_charges"] += 10
    frame.loc[late, "total_charges"] = (frame.loc[late, "monthly_charges"] * frame.loc[late, "tenure_months"]).round(2)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    now, requests = utcnow(), []
    for hour in range(hours):
        part = slice(hour * per_hour, (hour + 1) * per_hour)
        columns = loaded.schema.coerce(records[part]).columns
        outputs = loaded.predict(columns).outputs.tolist()
        requests.append(predictions.Served(uuid4().hex, now - timedelta(hours=hours - hour - 0.5), "churn", "champion",
                                           version, columns, outputs, 8.0))
    with transaction(factory) as session:
        session.execute(insert(PredictionLog.__table__), predictions.rows_of(requests))
    for hour, request in enumerate(requests):
        if hour % 4 != 3:  # ground truth arrives for three requests in four
            with transaction(factory) as session:
                predictions.record_feedback(session, actor=actor, model="churn", request_id=request.request_id,
                                            labels=labels[hour * per_hour:(hour + 1) * per_hour])
    check = checks.run_check(factory, settings, actor=actor, model="churn", source="window", hours=hours + 1,
                                 reason="demo workspace")
    return {"predictions": len(records), "drift_check": check.id, "drifted": check.drifted}
