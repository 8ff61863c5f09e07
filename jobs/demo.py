"""The demo workspace a newcomer sees: the churn dataset (core.workspace) plus a trained, promoted model."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core import aliases, promotion
from core.auth_types import system_actor
from core.model_views import registry_for
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
    promotion.commit_or_undo(factory, registry, lambda s: promotion.promote(
        s, registry=registry, actor=system_actor("demo"), model="churn", version=version,
        reason="demo workspace"))
    return {"model": "churn", "aliases": {"champion": version}, "trained": True,
            "f1": round(result["metrics"]["f1"], 4)}
