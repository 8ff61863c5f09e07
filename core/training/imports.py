"""Models trained elsewhere: a notebook's model enters the governed loop, judged by LeanOps and not by the notebook.

``import_model`` reads the file safely (``core.training.model_files``: the format told from its bytes, skops
types against the allow-list, never a pickle), then evaluates it exactly as a trained version is evaluated: on
the holdout split of a certified dataset version (same seed and split as training), with the same metrics,
plots, permutation importance, fairness, reference statistics (calibration for the label-free estimates) and
input signature. It is logged and registered like a trained version (its model files hashed, the hash recorded
with its run row and checked at every load), and ``gate`` (the promotion stage's) holds it to the gates in the
transaction that records it. Metrics the notebook claimed are stored and shown, never gated on.

``refit`` is a retrain of an imported scikit-learn model: a clone with the same hyperparameters, fitted on the
new dataset version and entered the same way. ``model_imports`` (owned here) keeps where each such version came
from; ``provenance`` is how the Registry and the compliance report say it.

Nothing is registered when anything is refused: the file is read and evaluated before any row or MLflow run
exists, and a failure after that is taken back as a failed training is (``workflow._undo``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.accounts.auth import require
from core.actors import Actor
from core.data import datasets
from core.errors import InvalidInput, LeanOpsError, PolicyBlocked
from core.platform import job_queue, mlflow_store
from core.platform.database import transaction
from core.settings import Settings
from core.training import evaluation, integrity, model_files, reference, runs, workflow
from core.training import pipeline as training
from core.training.boosters import BoosterModel
from core.training.spec import MODEL_NAME_RE, TrainingSpec
from db.models import ModelImport

KIND = "imported"  # the model_kind of an imported (or refitted imported) version's run row
NOT_REPRODUCED = "training code not reproduced by LeanOps"
MAX_CLAIMED = 50  # claimed metrics kept (name → number)


@dataclass(frozen=True)
class ImportRecord:
    """Where an imported version came from (a ``model_imports`` row)."""

    model: str
    version: int
    training_run_id: int
    file_name: str
    file_sha256: str
    format: str
    estimator: str
    refittable: bool
    trusted_types: tuple[str, ...]
    claimed_metrics: dict[str, float]
    description: str | None
    refit_of: int | None
    imported_by: str
    imported_at: datetime

    @property
    def provenance(self) -> str:
        """"imported by USER from FILE (sha256 …): training code not reproduced by LeanOps" (or a refit's)."""
        source = f"imported by {self.imported_by} from {self.file_name} (sha256 {self.file_sha256[:12]}…)"
        if self.refit_of is not None:
            return (f"refitted by {self.imported_by} from v{self.refit_of} with the same hyperparameters; first "
                    f"{source.replace(f'imported by {self.imported_by}', 'imported')}: {NOT_REPRODUCED}")
        return f"{source}: {NOT_REPRODUCED}"


def _record(row: ModelImport) -> ImportRecord:
    return ImportRecord(model=row.model_name, version=row.model_version, training_run_id=row.training_run_id,
                        file_name=row.file_name, file_sha256=row.file_sha256, format=row.format,
                        estimator=row.estimator, refittable=row.refittable,
                        trusted_types=tuple((row.trusted_types or {}).get("types") or ()),
                        claimed_metrics=dict(row.claimed_metrics or {}), description=row.description,
                        refit_of=row.refit_of, imported_by=row.imported_by, imported_at=row.imported_at)


# -- reading ---------------------------------------------------------------------------------------

def of_version(session: Session, *, model: str, version: int) -> ImportRecord | None:
    """The import record of ``model`` v``version``; None for a version LeanOps trained from its own spec."""
    row = session.scalar(select(ModelImport).where(ModelImport.model_name == model,
                                                   ModelImport.model_version == version))
    return _record(row) if row is not None else None


def of_model(session: Session, *, model: str) -> dict[int, ImportRecord]:
    """Every imported (or refitted) version of ``model`` by version number."""
    rows = session.scalars(select(ModelImport).where(ModelImport.model_name == model))
    return {row.model_version: _record(row) for row in rows}


# -- importing -------------------------------------------------------------------------------------

def claimed(raw: Any) -> dict[str, float]:
    """The metrics a notebook claims (``{"f1": 0.93}``), checked to be name → finite number."""
    if raw in (None, "", {}):
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput("claimed metrics are a JSON object of name → number, e.g. {\"f1\": 0.93}")
    out: dict[str, float] = {}
    for key, value in list(raw.items())[:MAX_CLAIMED]:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"claimed metric {key!r}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise InvalidInput(f"claimed metric {key!r} is not a finite number")
        out[str(key)[:64]] = number
    return out


def import_model(factory: sessionmaker[Session], settings: Settings, *, model: str, file_name: str, data: bytes,
                 dataset: str, target: str, actor: Actor, sensitive: str | None = None,
                 description: str | None = None, claimed_metrics: dict[str, float] | None = None,
                 job_id: int | None = None, log: workflow.Log = workflow._stderr,
                 gate: workflow.Gate | None = None) -> dict[str, Any]:
    """Read, evaluate and register a model trained elsewhere as a new version of ``model``.

    Returns ``{model, version, format, sha256, metrics, gates, …}`` (``sha256``: the file's).

    Raises:
        InvalidInput: a refused file (format, types, size), a model that does not fit the dataset (columns,
            classes), a bad name; nothing is registered.
        PolicyBlocked: the dataset version's quality certificate failed (as for training).
        PermissionDenied: the actor may not launch training on the dataset.
    """
    model = (model or "").strip()
    if not MODEL_NAME_RE.match(model):
        raise InvalidInput(f"model name {model!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-'")
    file_name = "".join(ch for ch in (file_name or "") if ch.isprintable())[-255:] or "model"
    dataset_name = datasets.parse_ref(dataset)[0]
    with transaction(factory) as session:
        require(session, actor, "training.launch", f"dataset:{dataset_name}")
    claims = claimed(claimed_metrics)
    label = f"model file {file_name!r}"
    loaded = model_files.load(data, label=label, max_bytes=settings.max_upload_mb * 1024 * 1024)
    log(f"read {label}: {loaded.format}, {loaded.estimator_name} (sha256 {loaded.sha256[:12]}…)")
    origin = {"file_name": file_name, "file_sha256": loaded.sha256, "format": loaded.format,
              "estimator": loaded.estimator_name, "refittable": loaded.refittable, "claimed_metrics": claims,
              "description": (description or "").strip()[:2000] or None, "refit_of": None}
    return _enter(factory, settings, estimator=loaded.estimator, fit=False, model=model, dataset=dataset,
                  target=target, sensitive=sensitive, origin=origin, label=label, actor=actor, job_id=job_id,
                  log=log, gate=gate, model_bytes=data if loaded.format == model_files.SKOPS else None)


def refit(factory: sessionmaker[Session], settings: Settings, *, champion: ImportRecord, estimator: Any,
          features: list[str], dataset: str, target: str, sensitive: str | None, actor: Actor,
          job_id: int | None = None,
          progress: workflow.Progress | None = None, log: workflow.Log = workflow._stderr,
          gate: workflow.Gate | None = None) -> dict[str, Any]:
    """Fit ``estimator`` (an unfitted clone of ``champion``'s model, which took ``features``) on ``dataset`` and
    enter it as a new version."""
    origin = {"file_name": champion.file_name, "file_sha256": champion.file_sha256, "format": champion.format,
              "estimator": champion.estimator, "refittable": True, "claimed_metrics": {},
              "description": champion.description, "refit_of": champion.version}
    return _enter(factory, settings, estimator=estimator, fit=True, model=champion.model, dataset=dataset,
                  target=target, sensitive=sensitive, origin=origin, label=f"{champion.model} v{champion.version}",
                  actor=actor, job_id=job_id, log=log, gate=gate, progress=progress, features=features)


def _features(estimator: Any, columns: list[str], *, target: str, ref: str, label: str) -> list[str]:
    """The dataset columns the model takes, in the model's order; refuses a model the dataset cannot feed."""
    names = getattr(estimator, "feature_names_in_", None)
    if isinstance(estimator, BoosterModel) and estimator.features is None:
        return [c for c in columns if c != target]  # bound to these in order (BoosterModel.bind checks the count)
    if names is None or len(names) == 0:
        raise InvalidInput(f"{label} refused: the model does not know its input column names (it was fitted on a "
                           "bare array); fit it on a pandas DataFrame with the dataset's column names")
    wanted = [str(n) for n in names]
    listing = ", ".join(columns[:40])
    if target in wanted:
        raise InvalidInput(f"{label} refused: the model takes the target {target!r} as an input column")
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise InvalidInput(f"{label} refused: the model takes column(s) {', '.join(missing[:20])} that {ref} does "
                           f"not have; its columns are: {listing}")
    return wanted


def _task(estimator: Any) -> str:
    if isinstance(estimator, BoosterModel):
        return estimator.task
    from sklearn.base import is_classifier

    if is_classifier(estimator) or getattr(estimator, "classes_", None) is not None:
        return "classification"
    return "regression"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _params(estimator: Any) -> dict[str, Any]:
    """The final estimator's plain hyperparameters (what MLflow's params and the run list show)."""
    last = estimator[-1] if hasattr(estimator, "steps") else estimator
    out: dict[str, Any] = {"estimator": model_files.describe(estimator)[:250]}
    if isinstance(last, BoosterModel):
        return out | {"library": last.library, "objective_kind": last.kind, "features": last.n_features}
    try:
        params = last.get_params(deep=False)
    except Exception:  # noqa: BLE001 - a model without sklearn's params shows only its name
        return out
    for key, value in sorted(params.items()):
        value = _plain(value)
        if value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
            out[str(key)] = value
    return out


def _check_classes(estimator: Any, prepared: training.Prepared, *, target: str, ref: str, label: str) -> None:
    if prepared.task != "classification" or isinstance(estimator, BoosterModel):
        return
    model_classes = [_plain(c) for c in np.asarray(estimator.classes_).tolist()]
    known = {str(c) for c in prepared.classes}
    unknown = [c for c in model_classes if str(c) not in known]
    if unknown:
        raise InvalidInput(f"{label} refused: the model predicts class(es) {', '.join(map(repr, unknown[:10]))} "
                           f"that target {target!r} in {ref} does not have "
                           f"({', '.join(map(repr, prepared.classes[:10]))})")


def _enter(factory: sessionmaker[Session], settings: Settings, *, estimator: Any, fit: bool, model: str, dataset: str,
           target: str, sensitive: str | None, origin: dict[str, Any], label: str, actor: Actor, job_id: int | None,
           log: workflow.Log, gate: workflow.Gate | None, model_bytes: bytes | None = None,
           progress: workflow.Progress | None = None, features: list[str] | None = None) -> dict[str, Any]:
    """Evaluate (after fitting, for a refit), log, register and record ``estimator`` as a version of ``model``."""
    import skops.io

    progress = progress or (lambda fraction, stage: None)
    store = mlflow_store.store_for(settings)
    progress(0.02, "loading dataset")
    with factory() as session:  # reads only
        version, frame = datasets.load_frame(session, store=settings.data_store, ref=dataset)
        certificate = datasets.get_certificate(session, ref=version.ref)
    if not certificate.passed:
        failed = ", ".join(f"{c['check']} on {c['column']}" if c.get("column") else str(c["check"])
                           for c in certificate.failed[:5])
        raise PolicyBlocked(f"dataset {version.ref} failed its quality certificate ({failed or 'see Datasets'}); "
                            "a model is evaluated only on certified data: fix the data first")
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise InvalidInput(f"target {target!r} is not a column of {version.ref}; columns are: "
                           f"{', '.join(columns[:40])}")
    if features is None:
        features = _features(estimator, columns, target=target, ref=version.ref, label=label)
    elif missing := [c for c in features if c not in columns]:
        raise InvalidInput(f"{label} cannot be refitted on {version.ref}: it lacks column(s) {', '.join(missing)}")
    if isinstance(estimator, BoosterModel):
        estimator.bind(columns=features, target_values=frame[target].dropna(), ref=version.ref, label=label)
    task = _task(estimator)
    spec = TrainingSpec(dataset=version.ref, target=target, model=KIND, task=task, sensitive=sensitive,
                        model_name=model, exclude=tuple(c for c in columns if c != target and c not in features))
    with factory() as session:
        integrity.check_for_data(session, spec, dtypes=version.dtypes, task=task)
    prepared = training.prepare(frame, spec, ref=version.ref)
    prepared = replace(prepared, X=prepared.X[features])  # the model's column order
    if not fit:  # a refit learns the classes of the new data
        _check_classes(estimator, prepared, target=target, ref=version.ref, label=label)
    data = training.split(prepared, spec)
    if fit:
        progress(0.1, "fitting")
        started = time.monotonic()
        if hasattr(estimator, "steps"):
            training.fit(estimator, data.X_train, data.y_train, progress=progress, span=(0.1, 0.7))
        else:
            estimator.fit(data.X_train, data.y_train)
        log(f"refitted {origin['estimator']} in {time.monotonic() - started:.1f} s on {len(data.X_train)} rows")
    progress(0.75, "evaluating on the holdout")
    try:
        result = evaluation.evaluate(estimator, data.X_test, data.y_test, task=task, seed=spec.seed,
                                     sensitive=data.sensitive_test, sensitive_name=spec.sensitive)
        ref_stats = reference.build(data.X_train, task=task, predictions=result.predictions, target=data.y_train,
                                    holdout=data.X_test, holdout_target=data.y_test, proba=result.proba,
                                    classes=result.classes, importance=result.plots.get("importance"))
    except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        raise InvalidInput(f"{label} could not predict the holdout of {version.ref}: "
                           f"{workflow.one_line(exc)}") from None
    baseline = evaluation.baseline(task, data.X_train, data.y_train, data.X_test, data.y_test)
    log(f"holdout of {version.ref} ({len(data.X_test)} rows): "
        + ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items() if v is not None))
    trusted = model_files.check_types(skops.io.get_untrusted_types(data=skops.io.dumps(estimator)), label=label)
    params = _params(estimator)

    with transaction(factory) as session:
        run_id = runs.start(session, job_id=job_id, spec=spec, dataset_version_id=version.id,
                            dataset_name=version.name, dataset_version=version.version, sha256=version.sha256,
                            task=task, params=params, code_version=training.code_version(), created_by=actor.name)
    mlflow_run: str | None = None
    model_version: int | None = None
    stage = "starting the MLflow run"
    try:
        lineage = {"dataset": version.ref, "dataset_sha256": version.sha256, "job_id": job_id or "cli",
                   "training_run": run_id, "code_version": training.code_version(), "model_name": model,
                   "imported_from": origin["file_name"], "imported_sha256": origin["file_sha256"],
                   "imported_by": actor.name if origin["refit_of"] is None else "",
                   "refit_of": origin["refit_of"] or ""}
        tags = {mlflow_store.TAG_PREFIX + k: v for k, v in lineage.items() if v != ""}
        mlflow_run = mlflow_store.start_run(
            store, experiment=mlflow_store.experiment_name(model), run_name=f"{model}-{run_id}",
            tags=tags | {"mlflow.user": actor.name},
            params={"model_kind": KIND, "format": origin["format"], "task": task, "target": target,
                    "seed": spec.seed, "holdout": spec.holdout} | params)
        with transaction(factory) as session:
            runs.note_mlflow(session, run_id=run_id, mlflow_run_id=mlflow_run,
                             experiment_id=mlflow_store.run_info(store, mlflow_run)["experiment_id"])
        mlflow_store.log_dataset(store, mlflow_run, frame=frame, name=version.ref, digest=version.sha256,
                                 source=settings.data_store.uri(version.path), target=target)
        stage = "logging to MLflow"
        progress(0.88, "logging to MLflow")
        files: dict[str, bytes | str] = {"plots/plots.json": mlflow_store.dumps(result.plots),
                                         "reference/reference.json": mlflow_store.dumps(ref_stats),
                                         "import/origin.json": mlflow_store.dumps(origin)}
        if png := evaluation.figure_png(result.plots, title=f"{model} · {version.ref}"):
            files[f"plots/{png[0]}"] = png[1]
        mlflow_store.log_results(store, mlflow_run, metrics={k: v for k, v in result.metrics.items() if v is not None}
                                 | {f"baseline_{k}": v for k, v in baseline.items() if v is not None}, files=files)
        logged = mlflow_store.log_model(store, mlflow_run, pipeline=estimator, example=data.X_train.head(5),
                                        trusted_types=trusted, model_bytes=model_bytes)
        stage = "registering the model version"
        progress(0.95, "registering the model version")
        model_version = mlflow_store.register(store, model_uri=logged.uri, name=model,
                                              tags=tags | {mlflow_store.MODEL_SHA256_TAG: logged.sha256})
        mlflow_store.end_run(store, mlflow_run, status="FINISHED")
        stage = "recording the version"
        with transaction(factory) as session:
            integrity.check_for_data(session, spec, dtypes=version.dtypes, task=task, lock=True)
            runs.complete(session, run_id=run_id, actor=actor, params=params, metrics=result.metrics,
                          baseline=baseline, fairness=result.fairness, plots=result.plots,
                          reference=ref_stats | {mlflow_store.MODEL_SHA256: logged.sha256}, search=None,
                          model_version=model_version, model_uri=logged.uri)
            row = ModelImport(training_run_id=run_id, model_name=model, model_version=model_version,
                              file_name=origin["file_name"], file_sha256=origin["file_sha256"],
                              format=origin["format"], estimator=origin["estimator"][:512],
                              refittable=bool(origin["refittable"]), trusted_types={"types": list(trusted)},
                              claimed_metrics=origin["claimed_metrics"] or None, description=origin["description"],
                              refit_of=origin["refit_of"], imported_by=actor.name)
            session.add(row)
            session.flush()
            record = _record(row)
            audit.record(session, actor, "model.refit" if origin["refit_of"] is not None else "model.imported",
                         f"model:{model}", {
                             "version": model_version, "training_run": run_id, "file_name": origin["file_name"],
                             "file_sha256": origin["file_sha256"], "format": origin["format"],
                             "estimator": origin["estimator"], "model_sha256": logged.sha256,
                             "dataset": version.ref, "refit_of": origin["refit_of"], "metrics": result.metrics,
                             "claimed_metrics": origin["claimed_metrics"], "provenance": record.provenance})
            gates = gate(session, model, model_version) if gate is not None else None
    except BaseException as exc:
        workflow._undo(factory, store, run_id=run_id, mlflow_run=mlflow_run, name=model, model_version=model_version,
                       exc=exc, log=log)
        if isinstance(exc, (LeanOpsError, job_queue.JobCancelled)) or not isinstance(exc, Exception):
            raise
        raise workflow.TrainingFailed(f"import failed while {stage}: {workflow.one_line(exc)}") from exc
    log(f"registered {model} version {model_version}: {record.provenance}")
    return {
        "model": model, "version": model_version, "format": origin["format"], "sha256": origin["file_sha256"],
        "model_sha256": logged.sha256, "estimator": origin["estimator"], "refittable": bool(origin["refittable"]),
        "task": task, "dataset": version.ref, "metrics": result.metrics, "baseline": baseline,
        "claimed_metrics": origin["claimed_metrics"], "provenance": record.provenance, "run_id": mlflow_run,
        "training_run": run_id, "model_name": model, "model_version": model_version, "refit_of": origin["refit_of"],
    } | ({"gates": gates} if gates is not None else {})


def run_artifact(settings: Settings, *, run_id: str, path: str) -> tuple[str, bytes]:
    """The model file at ``path`` in MLflow run ``run_id`` (a notebook's run on the workspace's tracking server).

    ``path`` may name the file, or an MLflow model folder: then its one model file is taken (``model.skops`` of
    an sklearn model logged with ``serialization_format="skops"``; a ``model.pkl`` is taken too, and refused
    by its bytes like any pickle).

    Raises:
        NotFound: no such run or artifact. InvalidInput: a folder without one model file, or a file over the limit.
    """
    store = mlflow_store.store_for(settings)
    files = mlflow_store.run_files(store, run_id, path)
    if len(files) > 1:
        models = [f for f in files if f[0].rsplit("/", 1)[-1].startswith("model.") or f[0].endswith(
            (".skops", ".ubj", ".json", ".txt", ".pkl", ".joblib"))]
        models = [f for f in models if not f[0].endswith(("MLmodel", "input_example.json",
                                                          "serving_input_example.json"))]
        if len(models) != 1:
            raise InvalidInput(f"artifact {path!r} of MLflow run {run_id} is a folder of {len(files)} files; name the "
                               f"model file itself (one of: {', '.join(f[0] for f in files[:20])})")
        files = models
    name, size = files[0]
    limit = settings.max_upload_mb * 1024 * 1024
    if size > limit:
        raise InvalidInput(f"artifact {name!r} refused: {size / 1e6:.1f} MB is over the upload limit of "
                           f"{settings.max_upload_mb} MB (LEANOPS_MAX_UPLOAD_MB)")
    return f"runs:/{run_id}/{name}", mlflow_store.run_file(store, run_id, name)


