"""The ``monitor.performance`` job: one round over every champion (``core.retraining.watch``), then the
shadow decisions of the models whose policy shadows a challenger (``core.monitoring.shadow``)."""

from __future__ import annotations

from typing import Any

from core.monitoring import shadow_comparison as shadow
from core.retraining.watch import watch_champions


def run(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    result = watch_champions(ctx.factory, ctx.settings, progress=ctx.progress, log=ctx.log)
    decisions = shadow.run_all(ctx.factory, ctx.settings)
    return {**result, "shadow": decisions} if decisions else result
