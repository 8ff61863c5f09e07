"""Retrain triggers: a stored drift check, a new dataset version or data growth may queue a retrain.

The decisions are the pure ``core.retraining.decisions``; here they are applied to what is stored,
as ``system:<job>`` actors with the triggering reason in every audit event. A retrain is a
``retrain`` job (``core.retraining.retrain``) that reuses the champion's training configuration on
the latest version of its dataset; at most one is queued or running per model. Drift checks and API
uploads reach these triggers through a ``retrain.consider`` job queued with the event (``consider``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core import audit, policy
from core.actors import system_actor
from core.data import datasets
from core.errors import InvalidInput, NotFound
from core.platform import job_queue, locks
from core.platform.database import transaction
from core.registry import state
from core.retraining.decisions import (
    TRIGGERS,
    Decision,
    should_act_on_estimate,
    should_retrain_on_drift,
    should_retrain_on_growth,
    should_retrain_on_upload,
)
from core.settings import Settings
from core.training import runs
from db.models import TrainingRun

# -- reading -------------------------------------------------------------------------------------

def champion_run(session: Session, facts: state.ModelState) -> TrainingRun:
    """The training run of the model's current champion (``facts``: the model's state, read by the caller)."""
    model, version = facts.model, facts.champion
    if version is None:
        raise InvalidInput(f"{model} has no champion; a retrain reuses the champion's training configuration")
    run = facts.run(session, version)
    if run is None or run.status != "succeeded":
        raise NotFound(f"{model} v{version} (the champion) has no LeanOps training run to reuse")
    return run


def active_retrain(session: Session, model: str) -> job_queue.JobView | None:
    for job in job_queue.active(session, kind="retrain"):
        if job.params.get("model") == model:
            return job
    return None


# -- actions -------------------------------------------------------------------------------------

def consider(factory: sessionmaker[Session], settings: Settings, params: dict[str, Any]) -> dict[str, Any]:
    """The ``retrain.consider`` job: ``drift_check`` (a stored check that found drift) or ``dataset`` and
    ``version`` (a version uploaded through the API) → the retrain it queued, or why not."""
    if "drift_check" in params:
        outcome = on_drift(factory, settings, int(params["drift_check"]))
        if isinstance(outcome, Decision):
            return {"retrain": False, "reason": outcome.reason}
        return {"retrain": True, "job_id": outcome.job_id, "queued": outcome.queued, "reason": outcome.reason}
    if "dataset" in params and "version" in params:
        requests = on_dataset_version(factory, settings, dataset=str(params["dataset"]),
                                      version=int(params["version"]), via_api=bool(params.get("via_api")))
        return {"retrain": bool(requests), "retrain_jobs": [r.job_id for r in requests],
                "reasons": [r.reason for r in requests]}
    raise InvalidInput(f"a retrain.consider job needs params drift_check, or dataset and version; got {params}")


@dataclass(frozen=True)
class RetrainRequest:
    model: str
    job_id: int
    queued: bool  # False: a retrain of this model was already queued or running (``job_id``)
    reason: str


def request_retrain(factory: sessionmaker[Session], settings: Settings, *, model: str, reason: str,
                    trigger: str) -> RetrainRequest:
    """Queue a ``retrain`` job as ``system:retrain`` unless one is already queued or running."""
    if trigger not in TRIGGERS:
        raise InvalidInput(f"trigger {trigger!r} is unknown; triggers are: {', '.join(TRIGGERS)}")
    actor = system_actor("retrain")
    with transaction(factory) as session:
        # refuses a model without a champion, before queueing
        champion_run(session, state.state_of(session, settings.policies, model=model))
        locks.hold(session, f"retrain:{model}")
        existing = active_retrain(session, model)
        if existing is not None:
            return RetrainRequest(model, existing.id, False, reason)
        job = job_queue.enqueue(session, actor=actor, kind="retrain",
                           params={"model": model, "trigger": trigger, "reason": reason})
        audit.record(session, actor, "retrain.requested", f"model:{model}",
                     {"job_id": job.id, "trigger": trigger, "reason": reason})
        return RetrainRequest(model, job.id, True, reason)


def on_drift(factory: sessionmaker[Session], settings: Settings, check_id: int) -> RetrainRequest | Decision:
    """After a drift check is stored: retrain the champion when the policy says so."""
    from core.monitoring import checks

    with factory() as session:
        check = checks.stored(session, check_id=check_id)
        if check is None:
            raise NotFound(f"no drift check {check_id}")
        facts = state.state_of(session, settings.policies, model=check.model)
        rules = facts.policy
        decision = should_retrain_on_drift(check, rules)
        estimate = (check.predictions or {}).get("estimated_performance") or {}
        if not decision.act and estimate and rules.retrain.on_drift and facts.task:  # labels are late
            on_estimate = should_act_on_estimate(estimate, facts.task, rules)
            decision = on_estimate if on_estimate.act else decision
        model, version, champion = check.model, check.version, facts.champion
    if not decision.act:
        return decision
    if champion != version:
        return Decision(False, f"drift check {check_id} was on v{version}; the champion is now v{champion}")
    return request_retrain(factory, settings, model=model, reason=f"drift check {check_id}: {decision.reason}",
                           trigger="drift")


def on_dataset_version(factory: sessionmaker[Session], settings: Settings, *, dataset: str, version: int,
                       via_api: bool) -> list[RetrainRequest]:
    """After a dataset version is registered: retrain each champion trained on that dataset whose
    policy asks for it (an API upload, or ≥ 10 % more rows than the champion was trained on)."""
    file = settings.policies.file()
    out: list[RetrainRequest] = []
    with factory() as session:
        if datasets.default_number(session, name=dataset) != version:
            return out  # a version no default picks (its certificate failed, or deprecated) starts nothing
        new_rows = _rows(session, dataset, version)
        candidates = []
        for model, champion in state.champions(session).items():
            run = runs.row_for_version(session, model=model, version=champion)
            if run is None or run.dataset_name != dataset or run.dataset_version >= version:
                continue
            candidates.append((model, _rows(session, dataset, run.dataset_version)))
    for model, trained_rows in candidates:
        rules = policy.for_model(file, model)
        upload = should_retrain_on_upload(via_api, rules)
        growth = should_retrain_on_growth(new_rows, trained_rows, rules)
        for trigger, decision in (("upload", upload), ("growth", growth)):
            if decision.act:
                out.append(request_retrain(factory, settings, model=model, trigger=trigger,
                                           reason=f"{dataset} v{version}: {decision.reason}"))
                break
    return out


def _rows(session: Session, dataset: str, version: int) -> int:
    rows = datasets.rows_of(session, name=dataset, version=version)
    if rows is None:
        raise NotFound(f"no dataset version {dataset}:{version}")
    return int(rows)


def check_growth(factory: sessionmaker[Session], settings: Settings, model: str) -> RetrainRequest | Decision:
    """The periodic growth check: the latest version of the champion's dataset against what it was
    trained on. A version some run of this model already trained on does not trigger again."""
    with factory() as session:
        facts = state.state_of(session, settings.policies, model=model)
        run = champion_run(session, facts)
        latest = datasets.default_number(session, name=run.dataset_name)  # the newest certified, not deprecated
        if latest is None or latest <= run.dataset_version:
            return Decision(False, f"{run.dataset_name} has no version newer than v{run.dataset_version}")
        if runs.trained_on(session, model=model, dataset=run.dataset_name, version=latest):
            return Decision(False, f"{model} was already trained on {run.dataset_name} v{latest}")
        new_rows, trained_rows = _rows(session, run.dataset_name, latest), _rows(session, run.dataset_name,
                                                                                  run.dataset_version)
    decision = should_retrain_on_growth(new_rows, trained_rows, facts.policy)
    if not decision.act:
        return decision
    return request_retrain(factory, settings, model=model, trigger="growth",
                           reason=f"{run.dataset_name} v{latest}: {decision.reason}")
