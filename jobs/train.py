"""The ``train`` job: train and gate a version (``core.promotion.registration``), progress on the job row."""

from __future__ import annotations

from typing import Any

from core.promotion.registration import train
from core.training import workflow


def run(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    return train(ctx.factory, ctx.settings, params, actor=ctx.actor, job_id=ctx.job_id, progress=ctx.progress,
                 log=ctx.log)


def clean_up(factory: Any, settings: Any, job_id: int, log: Any) -> Any:
    """A stopped ``train`` or ``retrain`` job: no version left without gates, its MLflow run and run row failed."""
    return workflow.clean_up_job(factory, settings, job_id=job_id, log=log)
