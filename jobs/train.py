"""The ``train`` job: train and gate a version (``core.promotion.registration``), progress on the job row."""

from __future__ import annotations

from typing import Any

from core.promotion.registration import train


def run(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    return train(ctx.factory, ctx.settings, params, actor=ctx.actor, job_id=ctx.job_id, progress=ctx.progress,
                 log=ctx.log)
