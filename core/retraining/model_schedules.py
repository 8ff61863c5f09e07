"""Per-model schedules: ``drift:<model>`` and ``retrain:<model>`` rows kept in line with the champions
and the policy (the ``schedules.sync`` job runs this after a promotion or a policy save)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core import policy
from core.actors import system_actor
from core.registry import state
from core.settings import Settings

# -- per-model schedules -------------------------------------------------------------------------

SCHEDULE_PREFIXES = ("drift:", "retrain:", "batch:")


def wanted_schedules(model: str, rules: policy.ModelPolicy) -> dict[str, dict[str, Any]]:
    """The schedule rows a champion model should have under its policy (name → kind, cron, params)."""
    out: dict[str, dict[str, Any]] = {}
    if rules.drift.schedule:
        out[f"drift:{model}"] = {"kind": "drift.check", "cron": rules.drift.schedule,
                                 "params": {"model": model, "source": "window"},
                                 "description": f"Drift check of {model}'s live inputs (policy drift.schedule)"}
    if rules.retrain.schedule:
        out[f"retrain:{model}"] = {"kind": "retrain", "cron": rules.retrain.schedule,
                                   "params": {"model": model, "trigger": "schedule",
                                              "reason": f"scheduled retrain (cron '{rules.retrain.schedule}')"},
                                   "description": f"Retrain {model} on its latest data (policy retrain.schedule)"}
    if rules.batch.schedule and rules.batch.source and rules.batch.destination:
        out[f"batch:{model}"] = {"kind": "batch.score", "cron": rules.batch.schedule,
                                 "params": {"model": model, "schedule": f"batch:{model}"},
                                 "description": f"Score {rules.batch.source} with {model}'s champion into "
                                                f"{rules.batch.destination} (policy batch.schedule)"}
    return out


def sync_model_schedules(session: Session, settings: Settings) -> dict[str, list[str]]:
    """Keep ``drift:<model>`` and ``retrain:<model>`` schedule rows in line with the champions and
    policies.yaml. A user's pause survives; the cron follows the policy."""
    from core.platform import schedules

    actor = system_actor("model-schedules")
    file = settings.policies.file()
    want: dict[str, dict[str, Any]] = {}
    for model in state.champions(session):
        want |= wanted_schedules(model, policy.for_model(file, model))
    have = {row.name: row for row in schedules.list_schedules(session) if row.name.startswith(SCHEDULE_PREFIXES)}
    done: dict[str, list[str]] = {"created": [], "changed": [], "removed": []}
    for name, spec in want.items():
        if name not in have:
            schedules.ensure(session, actor=actor, name=name, kind=spec["kind"], cron=spec["cron"],
                             params=spec["params"], description=spec["description"])
            done["created"].append(name)
        elif have[name].cron != schedules.check_cron(spec["cron"]) or have[name].params != spec["params"]:
            schedules.set_cron(session, actor=actor, name=name, cron=spec["cron"])
            schedules.set_params(session, name=name, params=spec["params"])
            done["changed"].append(name)
    for name in set(have) - set(want):
        schedules.remove(session, actor=actor, name=name,
                         reason="the model has no champion or its policy turned this schedule off")
        done["removed"].append(name)
    return done
