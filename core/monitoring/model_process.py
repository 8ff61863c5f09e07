"""The drift check's model process: load a version through serving's checks, answer with its outputs (issue 29).

``core.monitoring.model_outputs.Predictor`` runs ``serve`` in a spawned child while the parent reads and
compares the data. The child's start is on the command's critical path, so this module imports only
what loading and predicting need (numpy, then skops and the trust checks when a model is loaded), not
the database layer the parent's modules bring (a third of a second more per check), and not MLflow or
pydantic once the version's verified copy is cached.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

log = logging.getLogger("leanops.monitoring")

Found: TypeAlias = tuple[np.ndarray, "dict[str, np.ndarray] | None", "np.ndarray | None"]


def outputs(fitted: Any, rows: Any, reference: dict[str, Any]) -> Found:
    """(values, probabilities, raw) of ``fitted`` on ``rows``: see ``model_outputs.Outputs``."""
    if reference.get("probabilities") and hasattr(fitted, "predict_proba"):
        proba = np.asarray(fitted.predict_proba(rows), float)
        classes = list(np.asarray(fitted.classes_))
        values = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
        shown = [1] if len(classes) == 2 else range(len(classes))
        return values, {str(classes[k]): proba[:, k] for k in shown}, proba
    values = np.asarray(fitted.predict(rows)).ravel()
    numeric = (reference.get("predictions") or {}).get("type") == "numeric"
    return values, None, values.astype(float) if numeric else None


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
    from core.settings import quiet_mlflow_progress  # MLflow from here on; the cached path above needs neither

    quiet_mlflow_progress()  # stderr is the command's, for errors
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


def serve(conn: Any, registry: Any, model: str, version: int, recorded_sha256: str | None = None,
           cache: Path | None = None) -> None:
    """The child: load the version while the parent reads the data, then predict the rows it sends."""
    try:
        fitted = load_model(registry, model=model, version=version, recorded_sha256=recorded_sha256, cache=cache)
        rows, reference = conn.recv()
        conn.send(("ok", outputs(fitted, rows, reference)))
    except EOFError:  # the parent gave up (bad input, an error): nothing to answer
        pass
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which logs it and checks the inputs alone
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()
