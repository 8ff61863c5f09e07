"""Drift checks: gather the current data, compare it with a model version's reference, store the result.

Current data is one of: a window of logged prediction inputs (the last N hours), an uploaded batch
(a CSV or Parquet file, or a DataFrame), or a registered dataset version. The comparison itself is
``core.monitoring.drift``; the Evidently HTML is ``core.monitoring.report``. A stored check is audited
(``drift.checked``); when the data counts as drifted, an alert is raised and the retrain trigger is
asked whether to retrain (both after the check has committed, so neither can lose it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from sqlalchemy import desc, func, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.accounts.auth import require
from core.actors import Actor, system_actor
from core.errors import InvalidInput, NotFound
from core.monitoring import drift
from core.monitoring import report as drift_report
from core.platform import job_queue
from core.platform.database import transaction
from core.platform.storage import DataStore
from core.registry import state
from core.settings import Settings
from core.training import runs
from db.models import DriftCheck, utcnow

log = logging.getLogger("leanops.monitoring")

SOURCES = ("window", "upload", "dataset")
PREDICT_ROWS = 100_000  # an upload or dataset larger than this has its outputs compared on a sample
UPLOADS, STAGED_PREFIX = "uploads", "drift-"  # where the Drift page stages an uploaded batch for its job
STAGED_MAX_AGE = timedelta(hours=24)  # a staged batch whose job never ran is swept after this
Progress = Callable[[float, str], None]
Current: TypeAlias = pd.DataFrame | Path | str | bytes


class InsufficientData(InvalidInput):
    """Too few rows to judge (an empty or quiet window): nothing is stored, the reason is reported."""


@dataclass(frozen=True)
class CheckView:
    """What pages, the CLI and jobs see of a stored drift check."""

    id: int
    ts: datetime
    model: str
    version: int
    source: str
    window: str
    current_rows: int
    reference_rows: int
    threshold: float
    drift_share: float
    drift_detected: bool
    columns: dict[str, dict[str, Any]]
    predictions: dict[str, Any] | None
    report_path: str | None
    job_id: int | None
    created_by: str
    verdict: dict[str, Any]  # {drifted, reasons: [{rule, text, …}], not_counted: [text], ranked: [column]}
    estimated_performance: dict[str, dict[str, float]]  # metric → {value, lower, upper, reference}

    @property
    def drifted(self) -> list[str]:
        """Drifted columns, the most important first (by name when the version stored no importance)."""
        ranked = [c for c in self.verdict.get("ranked", []) if c in self.columns]
        return ranked or [name for name, col in self.columns.items() if col.get("drifted")]

    @classmethod
    def of(cls, row: DriftCheck) -> CheckView:
        """The row as a view; the verdict and the estimate live in the ``predictions`` JSON (with the
        model's outputs under ``outputs``); a check stored before had the outputs alone there."""
        fields = {f: getattr(row, f) for f in cls.__dataclass_fields__ if f not in ("verdict", "estimated_performance")}
        stored = row.predictions or {}
        if "verdict" in stored:
            fields["predictions"] = stored.get("outputs")
            said, estimate = stored["verdict"] or {}, stored.get("estimated_performance") or {}
        else:  # counted columns only: the share rule was the whole verdict
            said = {"drifted": row.drift_detected, "reasons": [{"rule": "drift_share", "text": (
                f"{row.drift_share:.0%} of the columns drifted (≥ {row.threshold:.0%})")}] if row.drift_detected
                else [], "not_counted": [], "ranked": []}
            estimate = {}
        return cls(**fields, verdict=said, estimated_performance=estimate)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ts": self.ts.isoformat(), "drifted": self.drifted}


@dataclass(frozen=True)
class CurrentData:
    frame: pd.DataFrame
    window: str
    outputs: np.ndarray | None
    # a large Parquet batch read a slice at a time (core.monitoring.streamed): its columns already compared
    # on every row, ``frame`` then only a random sample of them (for the model's outputs and the report)
    streamed: Any = None


# -- running a check -------------------------------------------------------------------------------

def run_check(factory: sessionmaker[Session], settings: Settings, *, actor: Actor, model: str,
              version: int | None = None, source: str = "window", current: Current | None = None,
              filename: str = "", hours: float | None = None, dataset: str | None = None,
              threshold: float | None = None, progress: Progress | None = None, job_id: int | None = None,
              report: bool = True, reason: str = "", report_now: bool = False,
              parallel_outputs: bool = False) -> CheckView:
    """Compare current data with ``model`` ``version`` (default: the champion) and store the check.

    Args:
        source: ``window`` (predictions logged in the last ``hours``, default the policy's
            ``drift.window_hours``), ``upload`` (``current``: a DataFrame, a file path or bytes,
            named by ``filename``) or ``dataset`` (``dataset``: NAME or NAME:VERSION).
        threshold: a p-value to use instead of the policy's ``drift.p_value``.
        report: also make the Evidently HTML (on ``settings.drift_report_sample_rows`` rows): a sample is
            kept and a ``drift.report`` job builds the page after the check (Evidently takes seconds
            the verdict does not wait for); with ``report_now`` it is built here, before returning.
        parallel_outputs: load the model in a child process while the data is read and compared
            (``model_outputs.Predictor``; the CLI's speed), instead of in this process afterwards.
        reason: why the check ran (e.g. the schedule that fired), kept in the audit event.

    Raises:
        NotFound: no such model or champion, or the version has no reference statistics.
        InvalidInput: unknown source, bad threshold, unreadable batch, columns missing.
        InsufficientData: fewer logged rows in the window than the policy's ``drift.min_rows``.
    """
    step = progress or (lambda fraction, stage: None)
    if source not in SOURCES:
        raise InvalidInput(f"drift source {source!r} is unknown; sources are: {', '.join(SOURCES)}")
    if threshold is not None and not 0 < threshold < 1:
        raise InvalidInput(f"threshold {threshold!r} is not a p-value between 0 and 1 (exclusive)")
    if source == "upload" and isinstance(current, (str, Path)) and not Path(current).is_file():
        raise InvalidInput(f"batch file {current} does not exist")  # before the registry is asked anything
    with _consumed(settings, current if source == "upload" else None):  # a staged batch is read once
        step(0.0, "finding the model version")
        with transaction(factory) as session:
            require(session, actor, "drift.run", f"model:{model}")
        with factory() as session:
            facts = state.state_of(session, settings.policies, model=model)
            version = version if version is not None else facts.champion
            if version is None:
                raise NotFound(f"model {model!r} has no champion to check; promote a version or name one")
            try:
                reference = runs.reference_for(session, model=model, version=version)
            except NotFound:
                raise NotFound(f"{model} version {version} has no reference statistics (it was not trained by LeanOps, "
                               "or its training run did not finish), so drift cannot be checked against it") from None
        rules = facts.policy.drift
        thresholds = drift.Thresholds(large_sample_rows=rules.large_sample_rows, p_value=threshold or rules.p_value,
                                      wasserstein=rules.wasserstein, jensenshannon=rules.jensenshannon, psi=rules.psi,
                                      share=rules.share, top_k=rules.top_k, importance_share=rules.importance_share,
                                      prediction_drift=rules.prediction_drift,
                                      floor_wasserstein=rules.floor_wasserstein,
                                      floor_jensenshannon=rules.floor_jensenshannon, correction=rules.correction)

        predictor = _start_predictor(settings, model=model, version=version, reference=reference,
                                     parallel=parallel_outputs)
        step(0.05, "loading the current data")
        data = _load_current(factory, settings, model=model, source=source, current=current, filename=filename,
                             hours=hours or rules.window_hours, dataset=dataset, min_rows=rules.min_rows,
                             reference=reference, thresholds=thresholds, report=report)
        label = f"the current data ({data.window})"
        if missing := drift.missing_columns(reference, data.frame):
            raise InvalidInput(f"{label} is missing column(s) {', '.join(missing)} that {model} v{version} was trained "
                               f"on; it has: {', '.join(map(str, data.frame.columns)) or 'no columns'}")
        pending: Path | None = None
        try:
            if predictor is not None:  # the child predicts on its sample while the report's sample is written
                predictor.submit(data.frame, reference)
            if report:  # the HTML itself is built off the verdict's path: a drift.report job, or report_now
                step(0.1, "keeping a sample for the Evidently report")
                drift_report.sweep_samples(settings, older_than_s=STAGED_MAX_AGE.total_seconds())
                pending = drift_report.write_sample(settings, reference, data.frame,
                                                    rows=settings.drift_report_sample_rows)
            result = _compare(factory, settings, model=model, version=version, reference=reference, data=data,
                              thresholds=thresholds, label=label, step=step, predictor=predictor)
            step(0.95, "storing the check")
            with transaction(factory) as session:
                view = _store(session, actor=actor, model=model, version=version, source=source, data=data,
                              result=result, pending=pending, job_id=job_id, reason=reason)
        except BaseException:
            if predictor is not None:
                predictor.close()
            if pending is not None:  # no check row: no report either
                pending.unlink(missing_ok=True)
            raise
        if pending is not None and report_now:
            step(0.95, "writing the Evidently report")
            drift_report.build_for_check(factory, settings, view.id)
        if view.drift_detected:
            _after_drift(factory, settings, view)
        if view.estimated_performance:
            _after_estimate(factory, settings, view, facts)
        return view


def _start_predictor(settings: Settings, *, model: str, version: int, reference: dict[str, Any],
                     parallel: bool) -> Any:
    """A ``model_outputs.Predictor`` loading the model already, when asked and the version has outputs to weigh."""
    if not parallel or not (reference.get("probabilities") or reference.get("estimator")):
        return None
    from core.monitoring import model_outputs
    from core.platform import mlflow_store

    return model_outputs.Predictor(settings, model=model, version=version,
                                   recorded_sha256=reference.get(mlflow_store.MODEL_SHA256))


def _compare(factory: sessionmaker[Session], settings: Settings, *, model: str, version: int,
             reference: dict[str, Any], data: CurrentData, thresholds: drift.Thresholds, label: str,
             step: Progress, predictor: Any = None) -> drift.Comparison:
    """Columns on every row; the model's outputs and the performance estimate on a random sample
    (core.monitoring.model_outputs); the verdict weighing the model's importance."""
    from dataclasses import replace

    from core.monitoring import model_outputs

    with factory() as session:
        weights = model_outputs.importance(session, model=model, version=version, reference=reference)
    outputs, probabilities, estimate = data.outputs, None, {}
    found = None
    if predictor is None and (reference.get("probabilities") or reference.get("estimator")):
        step(0.1, "predicting with the model on a sample")
        found = model_outputs.predict(settings, model=model, version=version, frame=data.frame, reference=reference)
    elif predictor is None and outputs is None and reference.get("predictions"):  # trained before probabilities
        step(0.1, "predicting with the model")
        outputs = _predict(settings, model=model, version=version, frame=data.frame, reference=reference)
    try:
        if data.streamed is not None:  # compared while it was read
            inputs = drift.columns_compared(reference, data.streamed.results, rows=data.streamed.rows,
                                            thresholds=thresholds, importance=weights)
        else:
            inputs = drift.compare(reference, data.frame, thresholds=thresholds, label=label, importance=weights,
                                   progress=lambda f, stage: step(0.15 + 0.7 * f, stage))
        if predictor is not None:
            step(0.85, "the model's outputs on a sample")
            found = predictor.outputs(data.frame, reference)
    finally:
        if predictor is not None:
            predictor.close()
    if found is not None:
        outputs, probabilities = found.values, found.probabilities
        estimate = model_outputs.estimate(reference, found)
    result = drift.with_outputs(inputs, reference, predictions=outputs, probabilities=probabilities)
    return replace(result, estimated_performance=estimate)


def _store(session: Session, *, actor: Actor, model: str, version: int, source: str, data: CurrentData,
           result: drift.Comparison, pending: Path | None, job_id: int | None, reason: str) -> CheckView:
    row = DriftCheck(model=model, version=version, source=source, window=data.window[:255],
                     current_rows=result.current_rows, reference_rows=result.reference_rows,
                     threshold=result.thresholds.share, drift_share=result.drift_share,
                     drift_detected=result.drift_detected, columns=_plain(result.columns),
                     predictions=_plain({"outputs": result.predictions, "verdict": result.verdict,
                                         "estimated_performance": result.estimated_performance}),
                     job_id=job_id, created_by=actor.name)
    session.add(row)
    session.flush()
    if pending is not None:
        row.report_path = str(drift_report.report_for(pending))
    details: dict[str, Any] = {
        "check_id": row.id, "version": version, "source": source, "window": row.window,
        "current_rows": row.current_rows, "drift_share": round(result.drift_share, 4),
        "drift_detected": result.drift_detected, "drifted_columns": result.drifted,
        "share_threshold": result.thresholds.share, "p_value": result.thresholds.p_value,
        "predictions_drifted": bool(result.predictions and result.predictions.get("drifted")),
        "verdict": [r["text"] for r in result.verdict.get("reasons", [])],
        "estimated_performance": {k: round(v["value"], 4) for k, v in result.estimated_performance.items()},
    }
    if reason:
        details["reason"] = reason
    audit.record(session, actor, "drift.checked", f"model:{model}", details)
    if result.drift_detected:  # whether it retrains is the policy's call, made by the worker
        job_queue.enqueue(session, actor=system_actor("drift"), kind="retrain.consider",
                          params={"drift_check": row.id, "model": model})
    if pending is not None:
        job_queue.enqueue(session, actor=system_actor("drift"), kind="drift.report",
                          params={"check_id": row.id, "model": model})
    session.flush()
    return CheckView.of(row)


def headline(view: CheckView) -> str:
    """What matters first, in words: the most important drifted column, its share of the model's
    importance, and the estimated primary metric against the holdout ("plan drifted; it carries 41 % of
    the model's importance; estimated f1 0.91 → 0.84")."""
    parts = []
    if view.drifted:
        top = view.drifted[0]
        share = view.columns[top].get("importance")
        parts.append(f"{top} drifted" + (f"; it carries {share:.0%} of the model's importance"
                                         if share is not None else ""))
    elif view.predictions and view.predictions.get("drifted"):
        parts.append("the model's outputs drifted")
    metric = next((m for m in ("f1", "mae") if m in view.estimated_performance), None)
    if metric is not None:
        est = view.estimated_performance[metric]
        before = f"{est['reference']:.2f} → " if est.get("reference") is not None else ""
        parts.append(f"estimated {metric.upper() if metric == 'mae' else 'F1'} {before}{est['value']:.2f}")
    return "; ".join(parts) or "no column drifted"


def _after_drift(factory: sessionmaker[Session], settings: Settings, view: CheckView) -> None:
    """Alert once the check is stored (its retrain.consider job was queued with it)."""
    from core.alerts import notify

    columns = ", ".join(view.drifted[:10]) + (" …" if len(view.drifted) > 10 else "")
    lead = headline(view)
    try:
        notify.notify(factory, settings, condition="drift", model=view.model,
                      title=f"Drift in {view.model} v{view.version}: {lead}",
                      message=f"{lead}. Why it counts: "
                              f"{'; '.join(r['text'] for r in view.verdict.get('reasons', [])) or 'drift share'}. "
                              f"{len(view.drifted)} of {len(view.columns)} columns drifted ({columns}) in "
                              f"{view.window} ({view.current_rows} rows); drift check #{view.id}.",
                      details={"check_id": view.id, "version": view.version, "drift_share": view.drift_share,
                               "drifted_columns": view.drifted, "window": view.window,
                               "verdict": view.verdict.get("reasons", []),
                               "estimated_performance": view.estimated_performance})
    except Exception:  # noqa: BLE001 - the check is stored; alert failures are recorded by core.alerts.notify
        log.exception("alert for drift check %s failed", view.id)


def _after_estimate(factory: sessionmaker[Session], settings: Settings, view: CheckView,
                    facts: state.ModelState) -> None:
    """With ``performance.use_estimate``: an estimate below the floor is audited with the estimate, alerted,
    and asks the retrain trigger (which retrains when ``retrain.on_drift`` allows). ``facts``: the model's
    state the check read."""
    from core.alerts import notify
    from core.monitoring import performance

    rules, task = facts.policy, facts.task
    if not rules.performance.use_estimate:
        return
    reason = performance.estimate_below_floor(view.estimated_performance, task, rules) if task else None
    if reason is None:
        return
    actor = system_actor("performance-estimate")
    with transaction(factory) as session:
        audit.record(session, actor, "performance.estimated_below_floor", f"model:{view.model}",
                     {"check_id": view.id, "version": view.version, "reason": reason,
                      "estimated_performance": view.estimated_performance})
        if not view.drift_detected:  # a drifted check already asked
            job_queue.enqueue(session, actor=system_actor("drift"), kind="retrain.consider",
                              params={"drift_check": view.id, "model": view.model})
    try:
        notify.notify(factory, settings, condition="performance", model=view.model,
                      title=f"{view.model} v{view.version}: estimated performance below the floor",
                      message=f"{reason} (no labels yet; drift check #{view.id}, {view.window}).",
                      details={"check_id": view.id, "estimated_performance": view.estimated_performance})
    except Exception:  # noqa: BLE001 - recorded by core.alerts.notify; the check and the audit row stand
        log.exception("estimate alert for drift check %s failed", view.id)


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    return value


# -- current data ----------------------------------------------------------------------------------

def _load_current(factory: sessionmaker[Session], settings: Settings, *, model: str, source: str,
                  current: Current | None, filename: str, hours: float, dataset: str | None,
                  min_rows: int, reference: dict[str, Any] | None = None, thresholds: drift.Thresholds | None = None,
                  report: bool = True) -> CurrentData:
    if source == "window":
        return window_frame(factory, model=model, hours=hours, min_rows=min_rows, store=settings.data_store)
    if source == "dataset":
        if not dataset:
            raise InvalidInput("a dataset drift check needs a dataset: NAME or NAME:VERSION")
        from core.data import datasets

        with factory() as session:
            view, frame = datasets.load_frame(session, store=settings.data_store, ref=dataset)
        return CurrentData(frame, f"dataset {view.ref}", None)
    if current is None:
        raise InvalidInput("an upload drift check needs the batch (a CSV or Parquet file)")
    from core.data.tables import TableLimits, read_table

    if isinstance(current, pd.DataFrame):
        name = filename or "uploaded batch"
        frame = current
    else:
        path = Path(current) if isinstance(current, str) else current
        name = filename or (path.name if isinstance(path, Path) else "uploaded batch")
        if isinstance(path, Path) and reference is not None and thresholds is not None:
            from core.monitoring import model_outputs, streamed

            keep = max(model_outputs.SAMPLE_ROWS, settings.drift_report_sample_rows if report else 0)
            found = streamed.compare_parquet(path, reference, thresholds=thresholds, limits=TableLimits.of(settings),
                                             label=name, keep=keep)
            if found is not None:
                return CurrentData(found.sample, f"file {name}"[:255], None, streamed=found)
        frame = read_table(path, filename=name, max_bytes=settings.max_upload_mb * 2**20,
                           limits=TableLimits.of(settings)).frame
    return CurrentData(frame, f"file {name}"[:255], None)


def window_frame(factory: sessionmaker[Session], *, model: str, hours: float, store: DataStore, min_rows: int = 1,
                 now: datetime | None = None) -> CurrentData:
    """The inputs and outputs of ``model``'s predictions logged in the last ``hours``: the hot table plus the
    hourly Parquet partitions in ``store`` (the workspace's ``data_store``)."""
    from core.platform.prediction_log import reads as prediction_store

    now = now or utcnow()
    since = now - timedelta(hours=hours)
    logged = prediction_store.window(factory, store, model=model, since=since, until=now + timedelta(seconds=1),
                                     meta=("output",))
    label = f"last {hours:g} h"
    if len(logged) < min_rows:
        raise InsufficientData(f"{len(logged)} prediction(s) of {model} were logged in the {label}; a drift check "
                               f"needs at least {min_rows} (policy drift.min_rows): not enough data to judge, "
                               "nothing stored")
    outputs = np.asarray(logged.pop("output").tolist(), dtype=object)
    frame = logged.reset_index(drop=True)
    return CurrentData(frame, f"{label} of predictions", outputs)


def _predict(settings: Settings, *, model: str, version: int, frame: pd.DataFrame,
             reference: dict[str, Any]) -> np.ndarray | None:
    """The model's outputs for (up to PREDICT_ROWS of) a batch, for prediction drift.

    None, with a warning in the log, when the version cannot be loaded or cannot predict these
    rows: the outputs are one more signal, not a reason to lose the check of the inputs.
    """
    from core.serving.cache import load_version

    picked = frame[list(reference["columns"])]
    if len(picked) > PREDICT_ROWS:
        picked = picked.sample(n=PREDICT_ROWS, random_state=0)
    numeric = [c for c, s in reference["columns"].items() if s.get("type") == "numeric"]
    picked = picked.assign(**{c: pd.to_numeric(picked[c], errors="coerce").astype(float) for c in numeric})
    try:
        loaded = load_version(settings.registry, name=model, alias="drift-check", version=version)
        return np.asarray(loaded.model.predict(picked)).ravel()
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("outputs of %s v%s not compared: %s: %s", model, version, type(exc).__name__, exc)
        return None


# -- reading ---------------------------------------------------------------------------------------

def stage_upload(settings: Settings, filename: str, data: bytes, *, max_bytes: int | None = None) -> Path:
    """Keep a batch uploaded for a drift check inside the workspace, where the ``drift.check`` job reads it.

    A batch over ``max_bytes`` (pass ``LEANOPS_MAX_UPLOAD_MB``) is refused before it is written; its
    table is checked against the table limits when the check reads it. The check deletes the file
    when it ends, whatever its outcome (``run_check``); batches whose job never ran (cancelled while
    queued, a lost worker) are swept here once older than ``STAGED_MAX_AGE``.
    """
    from uuid import uuid4

    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidInput(f"{Path(filename).name or 'the batch'} is {len(data) / 2**20:.1f} MB; the limit is "
                           f"{max_bytes / 2**20:.0f} MB (LEANOPS_MAX_UPLOAD_MB)")
    sweep_staged(settings)
    drift_report.sweep_samples(settings, older_than_s=STAGED_MAX_AGE.total_seconds())
    folder = settings.home / UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{STAGED_PREFIX}{uuid4().hex}{Path(filename).suffix.lower()}"
    path.write_bytes(data)
    return path


def _staged(settings: Settings, current: object) -> Path | None:
    """``current`` when it is a batch ``stage_upload`` wrote (never a file a CLI user pointed at)."""
    if not isinstance(current, (str, Path)):
        return None
    path = Path(current).resolve()
    folder = (settings.home / UPLOADS).resolve()
    return path if path.parent == folder and path.name.startswith(STAGED_PREFIX) else None


@contextmanager
def _consumed(settings: Settings, current: object) -> Iterator[None]:
    """Delete a staged batch once its check is over (stored, refused or failed): people's data is not kept."""
    try:
        yield
    finally:
        if (path := _staged(settings, current)) is not None:
            path.unlink(missing_ok=True)


def sweep_staged(settings: Settings, *, max_age: timedelta | None = None, now: datetime | None = None) -> list[Path]:
    """Delete staged drift batches older than ``max_age`` (default ``STAGED_MAX_AGE``); returns them."""
    folder = settings.home / UPLOADS
    if not folder.is_dir():
        return []
    cutoff = (now or utcnow()).timestamp() - (max_age or STAGED_MAX_AGE).total_seconds()
    swept = []
    for path in folder.glob(f"{STAGED_PREFIX}*"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                swept.append(path)
        except FileNotFoundError:  # a check finishing at the same moment deleted it
            continue
    return swept


def history(session: Session, *, model: str, limit: int = 50, offset: int = 0) -> list[CheckView]:
    """The newest ``limit`` checks of ``model`` after skipping the ``offset`` newest, newest first."""
    rows = session.scalars(select(DriftCheck).where(DriftCheck.model == model)
                           .order_by(desc(DriftCheck.ts), desc(DriftCheck.id)).offset(offset).limit(limit))
    return [CheckView.of(r) for r in rows]


def count_of_model(session: Session, *, model: str) -> int:
    """How many checks of ``model`` are stored."""
    return session.scalar(select(func.count()).select_from(DriftCheck).where(DriftCheck.model == model)) or 0


def latest(session: Session, *, model: str) -> CheckView | None:
    found = history(session, model=model, limit=1)
    return found[0] if found else None


def get(session: Session, check_id: int) -> CheckView:
    row = session.get(DriftCheck, check_id)
    if row is None:
        raise NotFound(f"no drift check {check_id}")
    return CheckView.of(row)


def stored(session: Session, *, check_id: int) -> DriftCheck | None:
    """The stored row of check ``check_id`` as it is (its ``predictions`` JSON whole), for code; None when gone."""
    return session.get(DriftCheck, check_id)


def of_version(session: Session, *, model: str, version: int, since: datetime | None = None,
               limit: int = 20) -> list[CheckView]:
    """The newest ``limit`` checks of ``model`` v``version`` (made at or after ``since``), newest first."""
    query = select(DriftCheck).where(DriftCheck.model == model, DriftCheck.version == version)
    if since is not None:
        query = query.where(DriftCheck.ts >= since)
    return [CheckView.of(r) for r in session.scalars(query.order_by(desc(DriftCheck.id)).limit(limit))]


def count_of_version(session: Session, *, model: str, version: int, drifted_only: bool = False) -> int:
    """How many checks of ``model`` v``version`` are stored (only those that found drift, with ``drifted_only``)."""
    query = select(func.count()).select_from(DriftCheck).where(DriftCheck.model == model, DriftCheck.version == version)
    if drifted_only:
        query = query.where(DriftCheck.drift_detected.is_(True))
    return session.scalar(query) or 0
