"""The ``drift.report`` job: build the Evidently HTML of a stored drift check, off the verdict's path.

Params: ``check_id``. Queued with the check; the check's verdict, alerts and retrain trigger never
wait for it (Evidently takes seconds on a large sample). Running it twice builds the page once.
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput
from core.monitoring import report


def run(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    if params.get("check_id") is None:
        raise InvalidInput("a drift.report job needs params.check_id")
    ctx.progress(0.1, "building the Evidently report")
    path = report.build_for_check(ctx.factory, ctx.settings, int(params["check_id"]))
    return {"check_id": int(params["check_id"]), "report": str(path) if path else None}
