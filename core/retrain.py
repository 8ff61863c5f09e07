"""Automatic retraining and rollback: pure decisions with their reasons, and the actions they start.

Decisions (``should_*``) take plain values and a model's policy and return a ``Decision``; the
actions act as ``system:<job>`` actors and put the triggering reason in every audit event. A
retrain is a ``retrain`` job (jobs/retrain.py) that reuses the champion's training configuration on
the latest version of its dataset; at most one is queued or running per model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import desc, func, select
from sqlalchemy.orm import Session, sessionmaker

from core import aliases, audit, jobs, locks, performance, policy, promotion
from core.auth_types import system_actor
from core.errors import InvalidInput, NotFound
from core.settings import Settings
from db.models import AliasMove, Dataset, DatasetVersion, DriftCheck, Job, TrainingRun, utcnow
from db.session import transaction

TRIGGERS = ("drift", "schedule", "growth", "upload", "manual")


@dataclass(frozen=True)
class Decision:
    act: bool
    reason: str


# -- decisions -----------------------------------------------------------------------------------

def should_retrain_on_drift(check: Any, rules: policy.ModelPolicy) -> Decision:
    """A stored drift check (``drift_detected``, ``drift_share``, ``threshold``, ``columns``)."""
    drifted = sorted(c for c, v in (check.columns or {}).items() if isinstance(v, dict) and v.get("drifted"))
    share = f"drift share {check.drift_share:.2f} (threshold {check.threshold:.2f})"
    if not check.drift_detected:
        return Decision(False, f"no dataset drift: {share}")
    if not rules.retrain.on_drift:
        return Decision(False, f"drift detected ({share}) but retrain.on_drift is off")
    return Decision(True, f"drift detected on v{check.version}: {share}; drifted columns: "
                          f"{', '.join(drifted) or 'none listed'}")


def should_retrain_on_schedule(rules: policy.ModelPolicy) -> Decision:
    if not rules.retrain.schedule:
        return Decision(False, "retrain.schedule is off")
    return Decision(True, f"scheduled retrain (cron '{rules.retrain.schedule}' UTC)")


def should_retrain_on_growth(new_rows: int, trained_rows: int, rules: policy.ModelPolicy) -> Decision:
    """A dataset version with at least ``retrain.on_data_growth`` (10 %) more rows than the champion saw."""
    step = rules.retrain.on_data_growth
    if step is None:
        return Decision(False, "retrain.on_data_growth is off")
    if trained_rows <= 0:
        return Decision(new_rows > 0, f"{new_rows} rows; the champion was trained on none")
    growth = (new_rows - trained_rows) / trained_rows
    verdict = growth >= step
    return Decision(verdict, f"{new_rows} rows vs {trained_rows} the champion was trained on "
                             f"({growth:+.1%}; retrain at {step:+.0%} or more)")


def should_retrain_on_upload(via_api: bool, rules: policy.ModelPolicy) -> Decision:
    if not via_api:
        return Decision(False, "not uploaded through the API")
    if not rules.retrain.on_upload:
        return Decision(False, "uploaded through the API but retrain.on_upload is off")
    return Decision(True, "new dataset version uploaded through the API")


def should_roll_back(*, promoted_at: datetime | None, action: str | None, now: datetime,
                     current: performance.Verdict, previous: performance.Verdict | None,
                     rules: policy.ModelPolicy) -> Decision:
    """Roll back a champion promoted within ``rollback.window_hours`` whose live performance (with
    enough labels) is below the floor, or below its predecessor's by more than
    ``improvement.min_relative`` on the primary metric."""
    if not rules.rollback.auto:
        return Decision(False, "rollback.auto is off")
    if promoted_at is None or action not in ("promote", "force_promote"):
        return Decision(False, "the champion was not promoted (it arrived by rollback or outside LeanOps)")
    age = now - promoted_at
    if age > timedelta(hours=rules.rollback.window_hours):
        return Decision(False, f"promoted {age.total_seconds() / 3600:.1f} h ago, outside the "
                               f"{rules.rollback.window_hours:g} h rollback window")
    if current.status == "insufficient":
        return Decision(False, f"{current.labels} labels on v{current.version}; {current.min_labels} needed")
    if current.status == "below_floor":
        failed = "; ".join(f"{c.name} {c.observed} (floor {c.required})" for c in current.checks if not c.passed)
        return Decision(True, f"v{current.version} live performance below the floor: {failed}")
    if previous is None or previous.status == "insufficient" or previous.primary is None:
        return Decision(False, f"v{current.version} is above the floor; its predecessor has too few labels "
                               "to compare with")
    metric = policy.PRIMARY[current.task]
    tolerance = rules.improvement.min_relative
    worse = current.primary < previous.primary - abs(previous.primary) * tolerance
    detail = (f"live {metric} {current.primary:.4f} on v{current.version} vs {previous.primary:.4f} on "
              f"predecessor v{previous.version}")
    if worse:
        return Decision(True, f"{detail}: worse by more than {tolerance:.0%}")
    return Decision(False, f"{detail}: within {tolerance:.0%}")


# -- reading -------------------------------------------------------------------------------------

def champions(session: Session) -> dict[str, int]:
    """model → current champion version, from the alias history (the same unit as MLflow's alias)."""
    newest = (select(AliasMove.model, func.max(AliasMove.id).label("id"))
              .where(AliasMove.alias == promotion.CHAMPION).group_by(AliasMove.model).subquery())
    rows = session.execute(select(AliasMove.model, AliasMove.to_version).join(newest, AliasMove.id == newest.c.id))
    return {model: version for model, version in rows if version is not None}


def champion_run(session: Session, settings: Settings, model: str) -> TrainingRun:
    """The training run of the model's current champion (MLflow's alias is the truth)."""
    version = aliases.get(settings.mlflow_uri, model=model, alias=promotion.CHAMPION)
    if version is None:
        raise InvalidInput(f"{model} has no champion; a retrain reuses the champion's training configuration")
    run = session.scalar(select(TrainingRun).where(TrainingRun.model_name == model, TrainingRun.model_version
                                                   == version, TrainingRun.status == "succeeded"))
    if run is None:
        raise NotFound(f"{model} v{version} (the champion) has no LeanOps training run to reuse")
    return run


def active_retrain(session: Session, model: str) -> Job | None:
    for job in session.scalars(select(Job).where(Job.kind == "retrain", Job.status.in_(jobs.ACTIVE))
                               .order_by(Job.id)):
        if job.params.get("model") == model:
            return job
    return None


# -- actions -------------------------------------------------------------------------------------

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
        champion_run(session, settings, model)  # refuses a model without a champion, before queueing
        locks.hold(session, f"retrain:{model}")
        existing = active_retrain(session, model)
        if existing is not None:
            return RetrainRequest(model, existing.id, False, reason)
        job = jobs.enqueue(session, actor=actor, kind="retrain",
                           params={"model": model, "trigger": trigger, "reason": reason})
        audit.record(session, actor, "retrain.requested", f"model:{model}",
                     {"job_id": job.id, "trigger": trigger, "reason": reason})
        return RetrainRequest(model, job.id, True, reason)


def on_drift(factory: sessionmaker[Session], settings: Settings, check_id: int) -> RetrainRequest | Decision:
    """After a drift check is stored: retrain the champion when the policy says so."""
    with factory() as session:
        check = session.get(DriftCheck, check_id)
        if check is None:
            raise NotFound(f"no drift check {check_id}")
        rules = policy.for_model(policy.load(settings.home), check.model)
        decision = should_retrain_on_drift(check, rules)
        model, version = check.model, check.version
    if not decision.act:
        return decision
    champion = aliases.get(settings.mlflow_uri, model=model, alias=promotion.CHAMPION)
    if champion != version:
        return Decision(False, f"drift check {check_id} was on v{version}; the champion is now v{champion}")
    return request_retrain(factory, settings, model=model, reason=f"drift check {check_id}: {decision.reason}",
                           trigger="drift")


def on_dataset_version(factory: sessionmaker[Session], settings: Settings, *, dataset: str, version: int,
                       via_api: bool) -> list[RetrainRequest]:
    """After a dataset version is registered: retrain each champion trained on that dataset whose
    policy asks for it (an API upload, or ≥ 10 % more rows than the champion was trained on)."""
    file = policy.load(settings.home)
    out = []
    with factory() as session:
        new_rows = _rows(session, dataset, version)
        candidates = []
        for model, champion in champions(session).items():
            run = session.scalar(select(TrainingRun).where(TrainingRun.model_name == model,
                                                           TrainingRun.model_version == champion))
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
    rows = session.scalar(select(DatasetVersion.rows).join(Dataset, Dataset.id == DatasetVersion.dataset_id)
                          .where(Dataset.name == dataset, DatasetVersion.version == version))
    if rows is None:
        raise NotFound(f"no dataset version {dataset}:{version}")
    return int(rows)


def check_growth(factory: sessionmaker[Session], settings: Settings, model: str) -> RetrainRequest | Decision:
    """The periodic growth check: the latest version of the champion's dataset against what it was
    trained on. A version some run of this model already trained on does not trigger again."""
    with factory() as session:
        run = champion_run(session, settings, model)
        latest = session.scalar(select(func.max(DatasetVersion.version)).join(
            Dataset, Dataset.id == DatasetVersion.dataset_id).where(Dataset.name == run.dataset_name))
        if latest is None or latest <= run.dataset_version:
            return Decision(False, f"{run.dataset_name} has no version newer than v{run.dataset_version}")
        tried = session.scalar(select(TrainingRun.id).where(TrainingRun.model_name == model,
                                                             TrainingRun.dataset_name == run.dataset_name,
                                                             TrainingRun.dataset_version == latest).limit(1))
        if tried is not None:
            return Decision(False, f"{model} was already trained on {run.dataset_name} v{latest}")
        new_rows, trained_rows = _rows(session, run.dataset_name, latest), _rows(session, run.dataset_name,
                                                                                  run.dataset_version)
        rules = policy.for_model(policy.load(settings.home), model)
    decision = should_retrain_on_growth(new_rows, trained_rows, rules)
    if not decision.act:
        return decision
    return request_retrain(factory, settings, model=model, trigger="growth",
                           reason=f"{run.dataset_name} v{latest}: {decision.reason}")


# -- automatic rollback --------------------------------------------------------------------------

@dataclass(frozen=True)
class RollbackCheck:
    model: str
    decision: Decision
    from_version: int | None = None
    to_version: int | None = None


def check_rollback(factory: sessionmaker[Session], settings: Settings, model: str,
                   now: datetime | None = None) -> RollbackCheck:
    """Roll back a newly promoted champion whose live performance let us down (policy ``rollback``)."""
    from core.model_views import registry_for

    now = now or utcnow()
    rules = policy.for_model(policy.load(settings.home), model)
    champion = aliases.get(settings.mlflow_uri, model=model, alias=promotion.CHAMPION)
    if champion is None:
        return RollbackCheck(model, Decision(False, f"{model} has no champion"))
    with factory() as session:
        arrived = session.scalar(select(AliasMove).where(
            AliasMove.model == model, AliasMove.alias == promotion.CHAMPION, AliasMove.to_version == champion)
            .order_by(desc(AliasMove.id)).limit(1))
        current = performance.evaluate(session, model=model, version=champion, rules=rules)
        previous = None
        if arrived is not None and arrived.from_version is not None:
            previous = performance.evaluate(session, model=model, version=arrived.from_version, rules=rules)
    decision = should_roll_back(promoted_at=arrived.ts if arrived else None, action=arrived.action if arrived
                                else None, now=now, current=current, previous=previous, rules=rules)
    if not decision.act:
        return RollbackCheck(model, decision)
    registry = registry_for(settings.mlflow_uri, settings.home)
    actor = system_actor("auto-rollback")
    reason = f"automatic rollback: {decision.reason}"
    # commit_or_undo sends the "rollback" alert (with this reason) once the move is committed.
    change = promotion.commit_or_undo(factory, registry, lambda s: promotion.rollback(
        s, registry=registry, actor=actor, model=model, reason=reason))
    return RollbackCheck(model, decision, change.from_version, change.to_version)


# -- per-model schedules -------------------------------------------------------------------------

SCHEDULE_PREFIXES = ("drift:", "retrain:")


def wanted_schedules(model: str, rules: policy.ModelPolicy) -> dict[str, dict[str, Any]]:
    """The schedule rows a champion model should have under its policy (name → kind, cron, params)."""
    out: dict[str, dict[str, Any]] = {}
    if rules.drift.schedule and "drift.check" in jobs.KINDS:
        out[f"drift:{model}"] = {"kind": "drift.check", "cron": rules.drift.schedule,
                                 "params": {"model": model, "source": "window"},
                                 "description": f"Drift check of {model}'s live inputs (policy drift.schedule)"}
    if rules.retrain.schedule:
        out[f"retrain:{model}"] = {"kind": "retrain", "cron": rules.retrain.schedule,
                                   "params": {"model": model, "trigger": "schedule",
                                              "reason": f"scheduled retrain (cron '{rules.retrain.schedule}')"},
                                   "description": f"Retrain {model} on its latest data (policy retrain.schedule)"}
    return out


def sync_model_schedules(session: Session, settings: Any) -> dict[str, list[str]]:
    """Keep ``drift:<model>`` and ``retrain:<model>`` schedule rows in line with the champions and
    policies.yaml (``settings`` needs ``.home``). A user's pause survives; the cron follows the policy."""
    from core import schedules
    from db.models import Schedule

    actor = system_actor("model-schedules")
    file = policy.load(settings.home)
    want: dict[str, dict[str, Any]] = {}
    for model in champions(session):
        want |= wanted_schedules(model, policy.for_model(file, model))
    have = {row.name: row for row in session.scalars(select(Schedule)) if row.name.startswith(SCHEDULE_PREFIXES)}
    done: dict[str, list[str]] = {"created": [], "changed": [], "removed": []}
    for name, spec in want.items():
        if name not in have:
            schedules.ensure(session, actor=actor, name=name, kind=spec["kind"], cron=spec["cron"],
                             params=spec["params"], description=spec["description"])
            done["created"].append(name)
        elif have[name].cron != schedules.check_cron(spec["cron"]) or have[name].params != spec["params"]:
            schedules.set_cron(session, actor=actor, name=name, cron=spec["cron"])
            have[name].params = spec["params"]
            done["changed"].append(name)
    for name in set(have) - set(want):
        schedules.remove(session, actor=actor, name=name,
                         reason="the model has no champion or its policy turned this schedule off")
        done["removed"].append(name)
    return done
