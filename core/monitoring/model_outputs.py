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
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

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
        return _outputs(fitted, rows, reference)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        log.warning("outputs of %s v%s not compared: %s: %s", model, version, type(exc).__name__, exc)
        return None


def _outputs(fitted: Any, rows: pd.DataFrame, reference: dict[str, Any]) -> Outputs:
    if reference.get("probabilities") and hasattr(fitted, "predict_proba"):
        proba = np.asarray(fitted.predict_proba(rows), float)
        classes = list(np.asarray(fitted.classes_))
        values = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
        shown = [1] if len(classes) == 2 else range(len(classes))
        return Outputs(rows, values, {str(classes[k]): proba[:, k] for k in shown}, proba)
    values = np.asarray(fitted.predict(rows)).ravel()
    numeric = (reference.get("predictions") or {}).get("type") == "numeric"
    return Outputs(rows, values, None, values.astype(float) if numeric else None)


class Predictor:
    """The same outputs, from a model loaded in a separate process started before the data is read.

    Loading a version costs seconds of imports (MLflow, skops' discovery of trusted types) and no
    data; comparing a million rows' columns costs seconds and no model. On two cores they overlap:
    the command takes the longer of the two, not their sum. The child is spawned (never forked, so
    no lock held by another thread is inherited), gets only the sample's rows from this process,
    and loads the model through the same vetted path as serving (core.serving.cache.load_version).
    """

    def __init__(self, settings: Settings, *, model: str, version: int, recorded_sha256: str | None = None) -> None:
        import multiprocessing

        from core.monitoring import prestart
        from core.platform import processes

        self.label = f"{model} v{version}"
        cache = model_cache(settings, recorded_sha256)
        started = prestart.take()  # a child cli.py drift started first thing, already importing
        if started is not None:
            self.process, self.conn = started
            try:
                self.conn.send((_serve, settings.registry, model, version, recorded_sha256, cache))
            except OSError:  # the child is gone: ``outputs`` says so (logged), the inputs are checked alone
                pass
            return
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, settings.registry, model, version,
                                                            recorded_sha256, cache),
                                       name="leanops-drift-outputs", daemon=True)
        processes.start(self.process)  # never re-running this process's __main__ (cli.py, or a dashboard page)
        child.close()

    def outputs(self, frame: pd.DataFrame, reference: dict[str, Any], *, timeout: float = 600) -> Outputs | None:
        """The outputs on a sample of ``frame``; None (logged) when the child could not give them."""
        rows = model_input(sample(frame), reference)
        try:
            self.conn.send((rows, reference))
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
        return Outputs(rows, values, probabilities, raw)

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


def load_model(registry: Any, *, model: str, version: int, recorded_sha256: str | None, cache: Path | None) -> Any:
    """The version's estimator, through the same checks as serving (``core.serving.trust``: skops only, the files
    hashing to the sha256 recorded at training, LeanOps' trusted types), from ``cache`` when it holds them.

    Issue 29: MLflow costs the drift command about a second of imports and another to copy the files, on
    every check. The first check of a version copies its vetted files to ``cache`` (named by that sha256);
    later ones hash the copy against the record before anything in it is read, so a changed copy is never
    loaded (it is replaced from MLflow), and need no MLflow at all.
    """
    from core.serving import trust

    label = f"{model} v{version}"
    if cache is not None and recorded_sha256 and cache.is_dir():
        from core.platform import mlflow_store

        found, _ = mlflow_store.hash_directory(cache)
        if found == recorded_sha256:
            return trust.load_skops(cache / _model_file(cache, label), label=label)
        shutil.rmtree(cache, ignore_errors=True)
    if cache is None:
        from core.serving.cache import load_version

        return load_version(registry, name=model, alias="drift-check", version=version).model
    with tempfile.TemporaryDirectory(prefix="leanops-model-") as tmp:
        _, local = registry.download(model, version, Path(tmp))
        _, model_file = trust.vetted(local, label=label, recorded=recorded_sha256)
        staged = cache.with_name(f".{cache.name}.{os.getpid()}")
        try:
            from core.platform import mlflow_store

            cache.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(local, staged)
            if mlflow_store.hash_directory(staged)[0] != recorded_sha256:  # MLflow's note of a load by name
                (staged / trust.MLFLOW_META).unlink(missing_ok=True)
            if mlflow_store.hash_directory(staged)[0] == recorded_sha256:
                os.replace(staged, cache)  # whole or not at all; a copy another check made first is as good
        except OSError as exc:
            log.info("model files of %s not cached: %s", label, exc)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return trust.load_skops(model_file, label=label)


def _model_file(folder: Path, label: str) -> str:
    """The model file the MLmodel file names (read as YAML, safely; its hash was checked already)."""
    import yaml

    from core.serving import trust

    meta = yaml.safe_load((folder / "MLmodel").read_text()) or {}
    conf = (meta.get("flavors") or {}).get("sklearn") or {}
    name = str(conf.get("pickled_model") or "")
    if conf.get("serialization_format") != "skops" or not name or Path(name).name != name:
        raise trust.Refused(f"{label} could not be loaded: {trust.ONLY}")
    return name


def _serve(conn: Any, registry: Any, model: str, version: int, recorded_sha256: str | None = None,
           cache: Path | None = None) -> None:
    """The child: load the version while the parent reads the data, then predict the rows it sends."""
    from core.settings import quiet_mlflow_progress

    quiet_mlflow_progress()  # stderr is the command's, for errors

    try:
        fitted = load_model(registry, model=model, version=version, recorded_sha256=recorded_sha256, cache=cache)
        rows, reference = conn.recv()
        found = _outputs(fitted, rows, reference)
        conn.send(("ok", (found.values, found.probabilities, found.raw)))
    except EOFError:  # the parent gave up (bad input, an error): nothing to answer
        pass
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which logs it and checks the inputs alone
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


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
