"""Training a new version and holding it to the gates at registration: the ``train`` verb end to end.

Training ends at a registered, recorded version (``core.training.workflow``); its gates belong to
this stage, so the flow that trains *and* gates lives here. The gates are evaluated and stored in the
transaction that records the training run (``workflow.train``'s ``gate``), and a version that passes
them all becomes the ``challenger`` that promotion and monitoring compare against. If they cannot be
stored, the run is not recorded either and the version is taken back (deleted, its run failed): no
version is shown without its gates.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.actors import Actor
from core.promotion.gates import evaluate_gates
from core.promotion.moves import set_challenger
from core.registry import projection, state
from core.settings import Settings
from core.training import workflow


def train(factory: sessionmaker[Session], settings: Settings, raw_spec: dict[str, Any], *, actor: Actor,
          job_id: int | None = None, progress: workflow.Progress | None = None,
          log: workflow.Log = workflow._stderr) -> dict[str, Any]:
    """Train ``raw_spec`` to a registered version and evaluate its gates; the CLI/job result document."""

    def gate(session: Session, model: str, version: int) -> dict[str, Any]:
        champion = state.champion(session, model=model)
        gates = evaluate_gates(session, settings, model=model, version=version, champion=champion,
                               context="registration", actor=actor)
        if gates.passed:
            set_challenger(session, settings, actor=actor, model=model, version=version,
                           reason="passed every gate at registration")
        return gates.as_dict()

    result = workflow.train(factory, settings, raw_spec, actor=actor, job_id=job_id, progress=progress, log=log,
                            gate=gate)
    if (result.get("gates") or {}).get("passed") and result.get("model_name"):
        projection.project_now(factory, settings, model=result["model_name"])  # the new challenger, in MLflow too
    return result
