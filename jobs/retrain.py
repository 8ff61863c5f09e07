"""The ``retrain`` job: the retrain workflow (``core.retraining.retrain``) with progress on the job row."""

from __future__ import annotations

from typing import Any

from core.retraining.retrain import retrain


def run(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Params ``model``, ``trigger`` and ``reason``."""
    return retrain(ctx.factory, ctx.settings, params, actor=ctx.actor, job_id=ctx.job_id, progress=ctx.progress,
                   log=ctx.log)
