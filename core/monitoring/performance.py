"""Live performance: feedback labels joined with logged predictions, against the training baseline.

Classification is scored with accuracy and macro F1, regression with RMSE and R², over the policy's
``performance.window`` most recent labelled predictions of a version. A verdict needs at least
``performance.min_labels`` labels; a champion falling below the policy floor is an event (audit
``performance.dropped`` + a ``performance`` alert), recorded once per drop, not on every check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy.orm import Session, sessionmaker

from core import audit, policy
from core.actors import system_actor
from core.alerts import notify
from core.errors import NotFound
from core.platform.database import transaction
from core.platform.storage import DataStore
from core.settings import Settings
from core.training import runs
from db.models import AuditEvent

METRICS = {"classification": ("accuracy", "f1"), "regression": ("rmse", "r2")}
MAX_POINTS = 120  # chart points per version
SERIES_LABELS = 2000  # a chart scores at most the newest this many labelled predictions (and says so)


@dataclass(frozen=True)
class Point:
    """One chart point: the rolling metrics over the labelled predictions up to ``ts``."""

    ts: datetime
    version: int
    labels: int
    metrics: dict[str, float]
    baseline: dict[str, float]


@dataclass(frozen=True)
class Verdict:
    """Live performance of one version against the policy floor.

    ``status`` is ``ok``, ``below_floor`` or ``insufficient`` (fewer than ``min_labels`` labels).
    """

    model: str
    version: int
    task: str
    labels: int
    min_labels: int
    metrics: dict[str, float]
    baseline: dict[str, float]
    checks: tuple[policy.Check, ...]
    status: str

    @property
    def primary(self) -> float | None:
        return self.metrics.get(policy.PRIMARY[self.task])

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "task": self.task, "labels": self.labels,
                "min_labels": self.min_labels, "metrics": self.metrics, "baseline": self.baseline,
                "status": self.status, "checks": [c.__dict__ for c in self.checks]}


def score(task: str, y_true: list[Any], y_pred: list[Any]) -> dict[str, float]:
    """Accuracy and macro F1 (classification) or RMSE, MAE and R² (regression), as scikit-learn's metrics
    measure them (``f1_score(average="macro", zero_division=0)``, ``r2_score``), in numpy: a chart scores a
    window at every point, and the Overview should not import scikit-learn to show one number."""
    import numpy as np

    if task == "classification":
        t = np.array([_label(v) for v in y_true], dtype=object)
        p = np.array([_label(v) for v in y_pred], dtype=object)
        if not len(t):
            return {"accuracy": float("nan"), "f1": 0.0}
        hit = t == p
        f1s = []
        for cls in set(t.tolist()) | set(p.tolist()):  # every label seen in either, as sklearn's macro average
            tp = int(np.sum(hit & (t == cls)))
            fp, fn = int(np.sum((p == cls) & ~hit)), int(np.sum((t == cls) & ~hit))
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
        return {"accuracy": float(np.mean(hit)), "f1": float(np.mean(f1s))}
    tn, pn = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    err = tn - pn
    r2 = float("nan")
    if len(tn) > 1:
        total = float(np.sum((tn - tn.mean()) ** 2))
        residual = float(np.sum(err ** 2))
        r2 = 1.0 - residual / total if total else (1.0 if residual == 0 else 0.0)
    return {"rmse": math.sqrt(float(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))), "r2": r2}


def _label(value: Any) -> str:
    """Class labels compared as text, so 1, 1.0, "1" and True-as-1 are the same class."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def task_of(session: Session, *, model: str, version: int) -> str:
    run = runs.row_for_version(session, model=model, version=version)
    task = run.task if run is not None else None
    if task is None:
        raise NotFound(f"{model} v{version} has no LeanOps training run, so no task or baseline")
    return task


def baseline(session: Session, *, model: str, version: int) -> dict[str, float]:
    """The version's holdout metrics from its training run (what live performance is compared with)."""
    run = runs.row_for_version(session, model=model, version=version)
    if run is None:
        raise NotFound(f"{model} v{version} has no LeanOps training run, so no task or baseline")
    metrics, task = (run.metrics or {}) if run.status == "succeeded" else {}, run.task
    return {k: float(metrics[k]) for k in METRICS[task] if metrics.get(k) is not None}


def labelled(session: Session, *, model: str, store: DataStore, version: int | None = None, limit: int | None = None,
             since: datetime | None = None) -> list[tuple[datetime, int, Any, Any]]:
    """(prediction time, version, prediction, label) of labelled predictions, newest first, from the hot
    prediction table and the Parquet partitions in ``store`` (the workspace's ``data_store``): labels come
    late, so most of them belong to predictions already compacted. With a ``limit`` only the newest hours
    needed to fill it are read; ``since`` leaves out predictions made before it."""
    from core.platform.prediction_log import reads

    return reads.labelled(session, store, model=model, version=version, limit=limit, since=since)


def evaluate(session: Session, *, model: str, version: int, rules: policy.ModelPolicy, store: DataStore) -> Verdict:
    """Live performance of ``model`` v``version`` over its most recent labelled predictions (hot and compacted,
    see ``labelled``)."""
    run = runs.row_for_version(session, model=model, version=version)
    if run is None or run.task is None:
        raise NotFound(f"{model} v{version} has no LeanOps training run, so no task or baseline")
    task = run.task
    window = rules.performance.window
    # A version serves only after its run: no older hour can hold one of its predictions, so a version with
    # few labels is not looked for through the whole history of the model.
    rows = labelled(session, model=model, version=version, limit=window, store=store, since=_aware(run.started_at))
    need = rules.performance.min_labels
    metrics = score(task, [r[3] for r in rows], [r[2] for r in rows]) if rows else {}
    checks = []
    for name, rule in rules.performance.floor.get(cast(policy.Task, task), {}).items():  # unknown task: no rules
        value = metrics.get(name)
        ok = value is not None and not math.isnan(value) and policy.compare(value, rule)
        checks.append(policy.Check(f"live {name}", None if value is None else round(value, 4), rule, ok,
                                   f"over the last {len(rows)} labelled predictions"))
    if len(rows) < need:
        status = "insufficient"
    else:
        status = "ok" if all(c.passed for c in checks) else "below_floor"
    return Verdict(model, version, task, len(rows), need, metrics, baseline(session, model=model, version=version),
                   tuple(checks), status)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Series:
    """A chart's points and what they were computed from: the newest ``labels`` labelled predictions, from
    ``since``; ``complete`` is False when older ones exist that the chart leaves out."""

    points: list[Point]
    labels: int
    since: datetime | None
    complete: bool


def chart(session: Session, *, model: str, rules: policy.ModelPolicy, store: DataStore,
          versions: list[int] | None = None, max_points: int = MAX_POINTS, labels: int = SERIES_LABELS) -> Series:
    """Rolling metrics over time for a chart, per version (oldest first, at most ``max_points`` each), over
    the newest ``labels`` labelled predictions of the model (read newest hour first, so the cost follows the
    chart, not the model's age).

    Each point scores the ``performance.window`` labelled predictions up to it; points start once
    ``performance.min_labels`` labels exist, like the verdict.
    """
    rows = labelled(session, model=model, store=store, limit=labels + 1)
    complete = len(rows) <= labels
    rows = rows[:labels]
    return Series(_points(session, model=model, rules=rules, rows=rows, versions=versions, max_points=max_points),
                  len(rows), rows[-1][0] if rows else None, complete)


def series(session: Session, *, model: str, rules: policy.ModelPolicy, store: DataStore,
           versions: list[int] | None = None, max_points: int = MAX_POINTS, labels: int = SERIES_LABELS) -> list[Point]:
    """The points of ``chart``."""
    return chart(session, model=model, rules=rules, store=store, versions=versions, max_points=max_points,
                 labels=labels).points


def _points(session: Session, *, model: str, rules: policy.ModelPolicy, rows: list[tuple[datetime, int, Any, Any]],
            versions: list[int] | None, max_points: int) -> list[Point]:
    by_version: dict[int, list[tuple[datetime, Any, Any]]] = {}
    for ts, version, output, label in reversed(rows):  # oldest first
        by_version.setdefault(version, []).append((ts, output, label))
    window, need = rules.performance.window, rules.performance.min_labels
    points: list[Point] = []
    for version in sorted(by_version):
        if versions is not None and version not in versions:
            continue
        items = by_version[version]
        task = task_of(session, model=model, version=version)
        base = baseline(session, model=model, version=version)
        ends = range(need, len(items) + 1)
        step = max(1, math.ceil(len(ends) / max_points))
        chosen = list(ends[::step])
        if ends and chosen[-1] != ends[-1]:
            chosen.append(ends[-1])
        for end in chosen:
            part = items[max(0, end - window):end]
            points.append(Point(part[-1][0], version, len(part),
                                score(task, [p[2] for p in part], [p[1] for p in part]), base))
    return points


def estimate_below_floor(estimate: dict[str, dict[str, float]], task: str, rules: policy.ModelPolicy) -> str | None:
    """Why the label-free estimate (a drift check's ``estimated_performance``) is below the policy floor, or None.

    Decided on the end of each estimate's band most favourable to the model (the upper end under a ``>=``
    floor such as f1's, the lower end under a ``<=`` ceiling such as rmse's), so only a whole band on the
    wrong side acts and a window too small to tell does not.
    """
    failed = []
    for metric, rule in rules.performance.floor.get(cast(policy.Task, task), {}).items():
        found = estimate.get(metric)
        if found is None:
            continue
        end, word = ("lower", "down to") if rule.lstrip().startswith("<") else ("upper", "up to")
        if not policy.compare(float(found[end]), rule):
            failed.append(f"estimated {metric} {found['value']:.3f} (band {word} {found[end]:.3f}; floor {rule})")
    return "estimated performance below the floor without labels: " + "; ".join(failed) if failed else None


# -- events --------------------------------------------------------------------------------------

def _last_event(session: Session, model: str) -> AuditEvent | None:
    found = audit.of_subject(session, subject=f"model:{model}",
                             actions=("performance.dropped", "performance.recovered"), limit=1)
    return found[0] if found else None


def record(factory: sessionmaker[Session], settings: Settings, verdict: Verdict) -> str | None:
    """Turn a verdict into an event when the state changed: ``dropped`` (audited and alerted) or
    ``recovered`` (audited). Returns the action recorded, or None."""
    actor = system_actor("performance-monitor")
    with transaction(factory) as session:
        last = _last_event(session, verdict.model)
        was_down = last is not None and last.action == "performance.dropped" \
            and last.details.get("version") == verdict.version
        if verdict.status == "below_floor" and not was_down:
            action = "performance.dropped"
        elif verdict.status == "ok" and was_down:
            action = "performance.recovered"
        else:
            return None
        failed = [f"{c.name} {c.observed} (floor {c.required})" for c in verdict.checks if not c.passed]
        reason = ("live performance below the policy floor: " + "; ".join(failed)) if failed \
            else "live performance back above the policy floor"
        audit.record(session, actor, action, f"model:{verdict.model}", verdict.as_dict() | {"reason": reason})
    if action == "performance.dropped":
        notify.notify(factory, settings, condition="performance", model=verdict.model,
                      title=f"{verdict.model} v{verdict.version}: live performance below the floor",
                      message=f"{reason} (training baseline {_fmt(verdict.baseline)}).",
                      details=verdict.as_dict(), severity="critical")
    return action


def _fmt(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()) or "unknown"
