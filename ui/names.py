"""What things are called on screen: one name for a run, its job and the model version it made.

A training run, the job that ran it and the version it registered each have their own counter ("run 2"
is job #1, which made churn version 1). Users know the version, the kind of model, its score and when,
so every picker and heading names a run by those (``churn v3 · random forest · f1 0.731 · 2 h ago``);
the run and job numbers follow only where they link somewhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core import formats
from core.training.catalog import KINDS
from ui.components import ago

SEP = " · "


def version_label(model: str, version: int | None) -> str:
    """``churn v3``; ``churn (no version)`` for a run that registered none (failed, cancelled, running)."""
    return f"{model} v{version}" if version is not None else f"{model} (no version)"


def kind_label(kind: str, task: str | None = None) -> str:
    """The model kind as people say it: ``random forest``; the linear kind by its task's name."""
    if kind == "linear" and task in ("classification", "regression"):
        return "logistic regression" if task == "classification" else "ridge regression"
    found = KINDS.get(kind)
    return found.label.lower() if found is not None else kind.replace("_", " ")


def score_text(value: float | None) -> str:
    """A metric to the precision that matters: three significant digits (0.731, 12.4, −0.0521)."""
    return formats.number(value).replace("-", "−")


def run_label(*, run_id: int, model: str, version: int | None, kind: str, task: str | None = None,
              metric: str | None = None, score: float | None = None, status: str = "succeeded",
              when: datetime | None = None, relative: bool = False) -> str:
    """The one name of a training run, used by every picker and heading.

    A run that registered a version is named by it (``churn v3 · random forest · f1 0.731 · 2026-11-30 10:46``);
    one that did not is named by its run number and says why it has no version
    (``churn run 7 · random forest · failed · 2026-11-30 10:46``).

    Pickers need the date (the default): Streamlit keeps a picker's choice by its label, so a label that
    changes between two reruns ("42 s ago", then "1 min ago") silently drops what the user picked.
    Headings and messages, drawn afresh each run, say how long ago (``relative=True``: ``2 h ago``).
    """
    head = version_label(model, version) if version is not None else f"{model} run {run_id}"
    parts = [head, kind_label(kind, task)]
    if version is not None and metric and score is not None:
        parts.append(f"{metric} {score_text(score)}")
    elif status != "succeeded" or version is None:
        parts.append(status)
    if when is not None:
        parts.append(ago(when) if relative else f"{when:%Y-%m-%d %H:%M}")
    return SEP.join(parts)


def label_of(run: Any, *, relative: bool = False) -> str:
    """``run_label`` of a ``core.training.runs.RunSummary`` (or ``RunDetail``)."""
    return run_label(run_id=run.id, model=run.model_name, version=run.model_version, kind=run.model_kind,
                     task=run.task, metric=run.primary_metric, score=run.score, status=run.status,
                     when=run.finished_at or run.started_at, relative=relative)


def job_label(job_id: int | None) -> str:
    """``job #4``; a run trained by ``cli.py train`` had no job: ``command line``."""
    return f"job #{job_id}" if job_id is not None else "command line"


def made_by_job(result: dict[str, Any] | None) -> str:
    """What a training (or retrain) job made, from its result: ``churn v3 (run 5)``; empty for other jobs."""
    result = result or {}
    if result.get("model_name") is None or result.get("model_version") is None:
        return ""
    made = version_label(str(result["model_name"]), int(result["model_version"]))
    return f"{made} (run {result['training_run']})" if result.get("training_run") is not None else made


def mlflow_run_url(base: str, *, experiment_id: str | None, run_id: str | None) -> str | None:
    """The run's page in MLflow's own UI, or None when there is no UI address or the run has no MLflow run."""
    if not base or not experiment_id or not run_id:
        return None
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
