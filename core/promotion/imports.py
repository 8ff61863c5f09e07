"""Importing a model trained elsewhere and holding it to the gates: ``model import`` end to end.

The import itself (read safely, evaluate on certified data, register) is ``core.training.imports``; its gates
belong to this stage, evaluated and stored in the transaction that records the version, exactly as for a trained
version (``core.promotion.registration``): a version that passes every gate becomes the ``challenger``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.actors import Actor
from core.promotion.gates import evaluate_gates
from core.promotion.moves import set_challenger
from core.registry import projection, state
from core.settings import Settings
from core.training import imports, workflow


def _gate(settings: Settings, actor: Actor, why: str) -> workflow.Gate:
    def gate(session: Session, model: str, version: int) -> dict[str, Any]:
        champion = state.champion(session, model=model)
        gates = evaluate_gates(session, settings, model=model, version=version, champion=champion,
                               context="registration")
        if gates.passed:
            set_challenger(session, settings, actor=actor, model=model, version=version, reason=why)
        return gates.as_dict()

    return gate


def _projected(factory: sessionmaker[Session], settings: Settings, result: dict[str, Any]) -> dict[str, Any]:
    if (result.get("gates") or {}).get("passed"):
        projection.project_now(factory, settings, model=result["model"])  # the new challenger, in MLflow too
    return result


def import_model(factory: sessionmaker[Session], settings: Settings, *, actor: Actor,
                 log: workflow.Log = workflow._stderr,
                 **kwargs: Any) -> dict[str, Any]:
    """``core.training.imports.import_model`` with the gates at registration; the CLI/API result document."""
    result = imports.import_model(factory, settings, actor=actor, log=log,
                                  gate=_gate(settings, actor, "imported; passed every gate at registration"),
                                  **kwargs)
    return _projected(factory, settings, result)


def refit(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, **kwargs: Any) -> dict[str, Any]:
    """``core.training.imports.refit`` with the gates at registration (a retrain of an imported model)."""
    result = imports.refit(factory, settings, actor=actor,
                           gate=_gate(settings, actor, "refitted imported model; passed every gate at registration"),
                           **kwargs)
    return _projected(factory, settings, result)
