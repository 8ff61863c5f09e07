"""The retrain workflow: the champion's training configuration on the latest version of its dataset.

Run by the ``retrain`` job. The training workflow runs the gates at registration, so a passing version is
already the challenger; then, by policy, ``auto_promote`` promotes it as ``system:retrain``, or
approvers are notified. Every step is audited with the trigger and its reason.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core import audit, policy
from core.actors import Actor, system_actor
from core.alerts import notify
from core.errors import InvalidInput
from core.platform.database import transaction
from core.promotion import gates as promotion_gates
from core.promotion import moves, registration
from core.registry import state
from core.retraining import imported, triggers
from core.settings import Settings
from core.training import workflow


def spec_for(run_spec: dict[str, Any], *, dataset: str, params: dict[str, Any], model: str) -> dict[str, Any]:
    """The champion's spec, pointed at the latest version of its dataset, with its fitted parameters
    (a search is not repeated: the retrain keeps what the champion's search chose; a schema change the
    champion's run confirmed is not carried over: a retrain on other input columns is refused)."""
    spec = {k: v for k, v in run_spec.items() if k not in ("search", "reproduces", "allow_schema_change")}
    return spec | {"dataset": dataset, "params": params, "model_name": model}


def retrain(factory: sessionmaker[Session], settings: Settings, params: dict[str, Any], *, actor: Actor,
            job_id: int | None = None, progress: workflow.Progress | None = None,
            log: workflow.Log = workflow._stderr) -> dict[str, Any]:
    """Params ``model``, ``trigger`` (drift, schedule, growth, upload, manual) and ``reason``; ``actor``
    launched the training, every step is audited as ``system:retrain`` with the trigger."""
    model = str(params.get("model") or "")
    if not model:
        raise InvalidInput("a retrain job needs params.model (the model to retrain)")
    trigger = str(params.get("trigger") or "manual")
    reason = str(params.get("reason") or f"{trigger} retrain")
    system = system_actor("retrain")
    with factory() as session:
        facts = state.state_of(session, settings.policies, model=model)
        champ = triggers.champion_run(session, facts)
        from_version = champ.model_version
        # The default version (newest certified, not deprecated), or the one policy retrain.dataset_version pins.
        pinned = facts.policy.retrain.dataset_version
        dataset = f"{champ.dataset_name}:{pinned}" if pinned else champ.dataset_name
        spec = spec_for(dict(champ.spec), dataset=dataset, params=dict(champ.params), model=model)
        imported_from = imported.record_of(session, champ)  # None: trained by LeanOps from its spec
    if imported_from is not None and not imported_from.refittable:  # an alert, not a failed job
        return imported.needs_import(factory, settings, record=imported_from, trigger=trigger, reason=reason,
                                     job_id=job_id, log=log)
    log(f"retraining {model} (champion v{from_version}'s configuration) on "
        f"{spec['dataset'] if pinned else 'the default version of ' + spec['dataset']}: {reason}")
    with transaction(factory) as session:
        audit.record(session, system, "retrain.started", f"model:{model}",
                     {"job_id": job_id, "trigger": trigger, "reason": reason, "champion": from_version,
                      "spec": spec})
    if imported_from is not None:  # a clone of the imported model, refitted with its hyperparameters
        result = imported.refit(factory, settings, record=imported_from, run=champ, dataset=dataset, actor=actor,
                                job_id=job_id, progress=progress, log=log)
    else:
        result = registration.train(factory, settings, spec, actor=actor, job_id=job_id, progress=progress, log=log)
    version, gates = result["model_version"], result["gates"]
    rules = facts.policy
    outcome = "challenger" if gates["passed"] else "gates_failed"
    failed = [c["name"] for c in gates["checks"] if not c["passed"]]
    if gates["passed"] and rules.auto_promote:
        why = f"auto-promoted retrain ({trigger}): {reason}"
        try:
            moves.promote(factory, settings, actor=system, model=model, version=version, reason=why)
            outcome = "promoted"
        except promotion_gates.GatesFailed as exc:  # the champion moved meanwhile: stays challenger
            failed = [c.name for c in exc.result.failed()]
            log(f"auto-promotion refused: {exc}")
    with transaction(factory) as session:
        audit.record(session, system, "retrain.finished", f"model:{model}",
                     {"job_id": job_id, "trigger": trigger, "reason": reason, "from_version": from_version,
                      "version": version, "outcome": outcome, "failed_gates": failed,
                      "metrics": result["metrics"]})
    primary = policy.PRIMARY[result["task"]]
    summary = {"promoted": f"v{version} was promoted to champion (policy auto_promote)",
               "challenger": f"v{version} passed every gate and is the challenger: approvers, please review",
               "gates_failed": f"v{version} failed gates ({', '.join(failed)}): champion v{from_version} stays"}
    notify.notify(factory, settings, condition="retrain", model=model,
                       severity="info" if outcome != "gates_failed" else "warning",
                       title=f"{model} retrained ({trigger}): {summary[outcome]}",
                       message=f"{reason}. {primary} {result['metrics'].get(primary, float('nan')):.4f} "
                               f"on the holdout of {result['dataset']}.",
                       details={"version": version, "from_version": from_version, "outcome": outcome,
                                "trigger": trigger, "job_id": job_id, "failed_gates": failed})
    log(summary[outcome])
    return result | {"trigger": trigger, "reason": reason, "from_version": from_version, "outcome": outcome}
