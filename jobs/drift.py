"""The ``drift.check`` job: one drift check of a model, clicked on the Drift page or fired by a schedule.

Params: ``model``, optional ``version`` (default: the champion), ``source`` (``window`` | ``upload`` |
``dataset``), ``hours`` (window), ``dataset`` (NAME[:VERSION]), ``file`` + ``filename`` (upload, a
file saved under the workspace), ``threshold`` (p-value override), ``report`` (default true).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.actors import system_actor
from core.errors import InvalidInput
from core.monitoring import checks


def run(ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Job entry: run the check with progress on the job row; an idle window is a result, not a failure.

    Scheduled runs act as ``system:drift-check``; a clicked run acts for whoever queued it."""
    model = params.get("model")
    if not model:
        raise InvalidInput("a drift.check job needs params.model")
    source = params.get("source", "window")
    current = None
    if source == "upload":
        current = _staged_file(ctx.settings.home, params.get("file"))
    reason = f"scheduled ({ctx.created_by})" if ctx.created_by.startswith("system:") else f"job {ctx.job_id}"
    actor = system_actor("drift-check") if ctx.actor.kind == "system" else ctx.actor
    try:
        view = checks.run_check(
            ctx.factory, ctx.settings, actor=actor, model=model,
            version=int(params["version"]) if params.get("version") is not None else None, source=source,
            current=current, filename=params.get("filename") or "", dataset=params.get("dataset"),
            hours=float(params["hours"]) if params.get("hours") else None,
            threshold=float(params["threshold"]) if params.get("threshold") else None,
            progress=ctx.progress, job_id=ctx.job_id, report=bool(params.get("report", True)), reason=reason)
    except checks.InsufficientData as exc:
        ctx.log(str(exc))
        return {"model": model, "status": "insufficient_data", "reason": str(exc)}
    verdict = "detected" if view.drift_detected else "not detected"
    reasons = [r["text"] for r in view.verdict.get("reasons", [])]
    ctx.log(f"drift check #{view.id}: {view.drift_share:.0%} of columns drifted "
            f"({', '.join(view.drifted) or 'none'}); data drift {verdict}"
            + (f" because {'; '.join(reasons)}" if reasons else ""))
    return {"model": model, "status": "checked", "check_id": view.id, "version": view.version,
            "drift_detected": view.drift_detected, "drift_share": view.drift_share, "drifted": view.drifted,
            "reasons": reasons, "estimated_performance": view.estimated_performance, "report": view.report_path}


def _staged_file(home: Path, file: str | None) -> Path:
    """The uploaded batch the page saved; only files inside the workspace are read."""
    if not file:
        raise InvalidInput("an upload drift check needs params.file (the batch saved in the workspace)")
    path = Path(file) if Path(file).is_absolute() else home / file
    path = path.resolve()
    if not path.is_relative_to(Path(home).resolve()):
        raise InvalidInput(f"batch file {file} is outside the workspace; upload it through the Drift page")
    return path
