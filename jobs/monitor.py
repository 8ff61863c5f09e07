"""The ``monitor.performance`` job: one round over every champion (``core.retraining.watch``)."""

from __future__ import annotations

from typing import Any

from core.retraining.watch import watch_champions


def run(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    return watch_champions(ctx.factory, ctx.settings, progress=ctx.progress, log=ctx.log)
