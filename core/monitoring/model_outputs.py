"""What the model makes of the current data, on a bounded random sample: its outputs and its estimated performance.

Prediction drift and the label-free estimate need the model's outputs, and predicting a million
rows costs seconds, so both use at most ``SAMPLE_ROWS`` random rows (seed 0) of the current data.
At 20,000 rows the sampling error is small next to the thresholds: the KS distance of a sample to
its window is under 1.36 / sqrt(20,000) ≈ 0.010 at 95 %, an accuracy estimate's standard error is
at most sqrt(0.25 / 20,000) ≈ 0.0035, and the estimate's band (core.training.estimation) is
computed at the sample's size, so it already includes this error. Column statistics use every row.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from core.monitoring import model_process
from core.settings import Settings
from core.training import estimation, runs
from core.training import reference as reference_stats

log = logging.getLogger("leanops.monitoring")

SAMPLE_ROWS = 20_000


@dataclass(frozen=True)
class Outputs:
    """The model's outputs on the sample: ``probabilities`` (class → column) for a classifier that
    has them, ``values`` its predictions (labels or numbers), ``raw`` what the estimator reads."""

    sample: pd.DataFrame
    values: np.ndarray
    probabilities: dict[str, np.ndarray] | None
    raw: np.ndarray | None


def sample(frame: pd.DataFrame, rows: int = SAMPLE_ROWS, *, seed: int = 0) -> pd.DataFrame:
    """Up to ``rows`` random rows of ``frame`` (all of them when it is smaller)."""
    if len(frame) <= rows:
        return frame
    picked = np.random.default_rng(seed).choice(len(frame), rows, replace=False)
    return frame.iloc[np.sort(picked)]


def model_input(frame: pd.DataFrame, reference: dict[str, Any]) -> pd.DataFrame:
    """The model's columns, numeric ones as floats (text in a numeric column becomes missing)."""
    picked = frame[list(reference["columns"])]
    numeric = [c for c, s in reference["columns"].items() if s.get("type") == "numeric"]
    return picked.assign(**{c: pd.to_numeric(picked[c], errors="coerce").astype(float) for c in numeric})


def predict(settings: Settings, *, model: str, version: int, frame: pd.DataFrame,
            reference: dict[str, Any]) -> Outputs | None:
    """The version's outputs on a sample of ``frame``; None (logged) when it cannot be loaded or predict.

    The outputs are one more signal, not a reason to lose the check of the inputs.
    """
    from core.serving.cache import load_version

    rows = model_input(sample(frame), reference)
    try:
        fitted = load_version(settings.registry, name=model, alias="drift-check", version=version).model
        return Outputs(rows, *model_process.outputs(fitted, rows, reference))
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("outputs of %s v%s not compared: %s: %s", model, version, type(exc).__name__, exc)
        return None


class Predictor:
    """The same outputs, from a model loaded in a separate process started before the data is read.

    Loading a version costs seconds of imports (MLflow, skops' discovery of trusted types) and no
    data; comparing a million rows' columns costs seconds and no model. On two cores they overlap:
    the command takes the longer of the two, not their sum. The child is spawned (never forked, so
    no lock held by another thread is inherited), gets only the sample's rows from this process,
    and loads the model through the same vetted checks as serving (``model_process.load_model``).
    """

    def __init__(self, settings: Settings, *, model: str, version: int, recorded_sha256: str | None = None) -> None:
        import multiprocessing

        from core.monitoring import prestart
        from core.platform import processes

        self.label = f"{model} v{version}"
        self._sending: threading.Thread | None = None
        self._failed = ""
        self._rows = pd.DataFrame()
        cache = model_cache(settings, recorded_sha256)
        started = prestart.take()  # a child cli.py drift started first thing, already importing
        if started is not None:
            self.process, self.conn = started
            try:
                self.conn.send((model_process.serve, settings.registry, model, version, recorded_sha256, cache))
            except OSError:  # the child is gone: ``outputs`` says so (logged), the inputs are checked alone
                pass
            return
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=model_process.serve, args=(child, settings.registry, model, version,
                                                            recorded_sha256, cache),
                                       name="leanops-drift-outputs", daemon=True)
        processes.start(self.process)  # never re-running this process's __main__ (cli.py, or a dashboard page)
        child.close()

    def submit(self, frame: pd.DataFrame, reference: dict[str, Any]) -> None:
        """Hand the child its sample of ``frame`` now and go on: the pipe holds 64 KiB and the child reads
        once its model is loaded, so a thread sends it while this process writes what needs no outputs."""
        if self._sending is not None:
            return
        self._rows = model_input(sample(frame), reference)
        self._sending = threading.Thread(target=self._send, args=((self._rows, reference),),
                                         name="leanops-drift-sample", daemon=True)
        self._sending.start()

    def _send(self, message: Any) -> None:
        try:
            self.conn.send(message)
        except (OSError, ValueError) as exc:  # the child is gone, or the pipe closed under it
            self._failed = f"{type(exc).__name__}: {exc}"

    def outputs(self, frame: pd.DataFrame, reference: dict[str, Any], *, timeout: float = 600) -> Outputs | None:
        """The outputs on a sample of ``frame`` (the one ``submit`` sent, if called); None (logged) when the
        child could not give them."""
        self.submit(frame, reference)
        assert self._sending is not None
        try:
            self._sending.join(timeout)
            if self._failed or self._sending.is_alive():
                raise OSError(self._failed or f"the sample was not taken in {timeout:g} s")
            if not self.conn.poll(timeout):
                raise TimeoutError(f"no answer in {timeout:g} s")
            kind, found = self.conn.recv()
        except (OSError, EOFError, TimeoutError) as exc:
            kind, found = "error", f"{type(exc).__name__}: {exc}"
        finally:
            self.close()
        if kind == "error":
            log.warning("outputs of %s not compared: %s", self.label, found)
            return None
        values, probabilities, raw = found
        return Outputs(self._rows, values, probabilities, raw)

    def close(self) -> None:
        """Stop the child: its answer is in (or no longer wanted), and its interpreter's shutdown (seconds
        with MLflow and scikit-learn loaded) is nothing the command should wait for."""
        self.conn.close()
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=5)


def model_cache(settings: Settings, recorded_sha256: str | None) -> Path | None:
    """Where the drift check keeps a verified copy of a version's model files: named by the sha256 LeanOps
    recorded at training, None for a version with no recorded sha256 (then MLflow's copy is read each time)."""
    if not recorded_sha256 or not all(c in "0123456789abcdef" for c in recorded_sha256):
        return None
    return settings.home / "cache" / "models" / recorded_sha256


def estimate(reference: dict[str, Any], outputs: Outputs | None) -> dict[str, dict[str, float]]:
    """``{metric: {value, lower, upper, reference}}`` for the sample, or ``{}`` without an estimator."""
    if outputs is None or outputs.raw is None:
        return {}
    try:
        return estimation.estimate(reference.get("estimator"), frame=outputs.sample, outputs=outputs.raw)
    except Exception as exc:  # noqa: BLE001 - an estimate is advice; the check of the inputs stands without it
        log.warning("performance not estimated: %s: %s", type(exc).__name__, exc)
        return {}


def importance(session: Session, *, model: str, version: int, reference: dict[str, Any]) -> dict[str, float]:
    """Column → share of the version's permutation importance: stored with the reference, or (versions
    trained before it was) read from the training run's plots; ``{}`` when neither has it."""
    if reference.get("importance"):
        return dict(reference["importance"])
    from db.models import TrainingRun

    row = runs.row_for_version(session, model=model, version=version, load=(TrainingRun.plots,))
    found = ((row.plots or {}) if row is not None else {}).get("importance")
    return reference_stats.importance_shares(found, list(reference["columns"])) if found else {}
