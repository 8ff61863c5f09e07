"""The ``monitor.performance`` job: for each champion, live performance against the floor (an event
when it drops), the automatic rollback rule, the data-growth retrain trigger, and the per-model
schedules kept in line with the policy."""

from __future__ import annotations

from typing import Any

from core import policy
from core.errors import LeanOpsError
from core.monitoring import performance
from core.platform.database import transaction
from core.retraining import auto_rollback, model_schedules, triggers


def run(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    factory, settings = ctx.factory, ctx.settings
    with transaction(factory) as session:
        synced = model_schedules.sync_model_schedules(session, settings)
        models = sorted(triggers.champions(session))
    file = policy.load(settings.home)
    report: dict[str, Any] = {"schedules": synced, "models": {}}
    for i, model in enumerate(models):
        ctx.progress(i / max(len(models), 1), f"checking {model}")
        entry: dict[str, Any] = {}
        try:
            with factory() as session:
                champion = triggers.champions(session)[model]
                verdict = performance.evaluate(session, model=model, version=champion,
                                               rules=policy.for_model(file, model))
            entry["performance"] = {"version": verdict.version, "status": verdict.status, "labels": verdict.labels,
                                    "metrics": verdict.metrics, "event": performance.record(factory, settings,
                                                                                            verdict)}
            back = auto_rollback.check_rollback(factory, settings, model)
            entry["rollback"] = {"rolled_back": back.decision.act, "reason": back.decision.reason,
                                 "from": back.from_version, "to": back.to_version}
            growth = triggers.check_growth(factory, settings, model)
            entry["growth"] = ({"job_id": growth.job_id, "queued": growth.queued, "reason": growth.reason}
                               if isinstance(growth, triggers.RetrainRequest) else {"reason": growth.reason})
        except LeanOpsError as exc:  # one model's trouble does not stop the others
            entry["error"] = str(exc)
            ctx.log(f"{model}: {exc}")
        report["models"][model] = entry
    return report
