"""Watching every champion (the ``monitor.performance`` job, every 15 minutes): live performance
against the floor (an event when it drops), the automatic rollback rule, the data-growth retrain
trigger, and the per-model schedules kept in line with the policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core import policy
from core.errors import LeanOpsError
from core.monitoring import performance
from core.platform.database import transaction
from core.registry import state, stewardship
from core.retraining import auto_rollback, model_schedules, triggers
from core.settings import Settings


def watch_champions(factory: sessionmaker[Session], settings: Settings, *,
                    progress: Callable[[float, str], None], log: Callable[[str], None]) -> dict[str, Any]:
    """One round over every champion; one model's trouble does not stop the others."""
    with transaction(factory) as session:
        synced = model_schedules.sync_model_schedules(session, settings)
    with factory() as session:
        champions = state.champions(session)
    models = sorted(champions)
    file = settings.policies.file()
    report: dict[str, Any] = {"schedules": synced, "models": {}}
    for i, model in enumerate(models):
        progress(i / max(len(models), 1), f"checking {model}")
        entry: dict[str, Any] = {}
        try:
            with factory() as session:
                verdict = performance.evaluate(session, model=model, version=champions[model],
                                               rules=policy.for_model(file, model), store=settings.data_store)
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
            log(f"{model}: {exc}")
        report["models"][model] = entry
    # Periodic reviews that fell due (an alert each; the cooldown keeps it to one per incident).
    report["reviews_overdue"] = stewardship.alert_overdue(factory, settings)
    return report
