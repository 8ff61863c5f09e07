"""Every MLflow call of training: runs, inputs, artifacts, logged models, registered versions.

The tracking/registry URI is always the workspace's absolute URI and every experiment gets an explicit
artifact location under the workspace's artifact root, so nothing depends on the current directory.
mlflow is imported inside the functions (``import mlflow`` costs about a second), pandas too.

This is the one MLflow adapter of core/: the one client per URI (``client``), the one reading of
"does not exist" (``is_not_found``) and the one ``StoreUnavailable`` for a failing store (``unavailable``).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version as package_version
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from core.errors import NotFound, StoreUnavailable

# Types beyond skops' defaults that our pipelines contain, vetted by hand: numpy dtypes and the tree
# structures of sklearn's own forests and gradient boosting (what ``skops.io.get_untrusted_types``
# finds in a fitted pipeline of every catalog kind, for both tasks). Serving loads with this list,
# never with the one an artifact's MLmodel file carries.
SKOPS_TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # The XGBoost/LightGBM scikit-learn wrappers of the xgboost and lightgbm kinds: skops keeps their booster
    # as the library's own model bytes (no pickle) and reads it back with the library's own parser.
    "xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor", "xgboost.core.Booster",
    "lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor", "lightgbm.basic.Booster",
    "collections.OrderedDict",
    "core.training.xgb_labels.LabelledXGBClassifier",  # the xgboost kind's classifier (XGBClassifier + labels)
)
MODEL_PACKAGES = ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy")
TAG_PREFIX = "leanops."
# The sha256 of a version's model files (``hash_directory``), recorded when LeanOps trains it: as this
# key of its training run's ``reference`` document in LeanOps' DB, and as a tag of the MLflow version.
MODEL_SHA256 = "model_sha256"
MODEL_SHA256_TAG = TAG_PREFIX + MODEL_SHA256
_URI_LOCK = threading.Lock()

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.models import ModelSignature


@dataclass(frozen=True)
class MlflowStore:
    """Where MLflow keeps things: the tracking/registry URI and the artifact root (a path or s3://…)."""

    uri: str
    artifacts: str


def store_for(settings: Any) -> MlflowStore:
    return MlflowStore(uri=settings.mlflow_uri, artifacts=str(settings.artifacts))


def _mlflow(store: MlflowStore) -> ModuleType:  # the mlflow module, pointed at the store
    import mlflow

    with _URI_LOCK:  # process-wide in mlflow; every caller in a process uses the same workspace
        if mlflow.get_tracking_uri() != store.uri:
            mlflow.set_tracking_uri(store.uri)
        if mlflow.get_registry_uri() != store.uri:
            mlflow.set_registry_uri(store.uri)
    return mlflow


def client(store: MlflowStore) -> MlflowClient:
    """The MLflow client of ``store`` (tracking and registry), one per URI and process."""
    return _client_of(store.uri)


@cache
def _client_of(tracking: str) -> MlflowClient:  # mlflow is imported lazily
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking, registry_uri=tracking)


def is_not_found(exc: Exception) -> bool:
    """Whether an MLflow error says that what was asked for does not exist (model, version, alias, run).

    A missing alias is INVALID_PARAMETER_VALUE with "alias … not found", hence the message check.
    """
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower()


def artifact_location(store: MlflowStore, experiment: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)
    if "://" in store.artifacts:
        return f"{store.artifacts.rstrip('/')}/mlflow/{safe}"
    path = Path(store.artifacts).resolve() / "mlflow" / safe
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def experiment_id(store: MlflowStore, name: str) -> str:
    """The experiment's id, created with an explicit artifact location under the workspace if new."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(store)
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow_client.create_experiment(name, artifact_location=artifact_location(store, name))
    except MlflowException:  # another job created it meanwhile
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def prepare(store: MlflowStore) -> None:
    """Create or upgrade MLflow's own schema now (``cli.py init``), so that workers starting together
    on a fresh shared server do not race to migrate it."""
    mlflow_client = client(store)
    mlflow_client.search_experiments(max_results=1)
    mlflow_client.search_registered_models(max_results=1)


def experiment_name(model_name: str) -> str:
    return f"leanops/{model_name}"


def start_run(store: MlflowStore, *, experiment: str, run_name: str, tags: dict[str, Any],
              params: dict[str, Any]) -> str:
    """A new RUNNING run with its tags and params; returns its id."""
    mlflow_client = client(store)
    run = mlflow_client.create_run(experiment_id(store, experiment), run_name=run_name,
                                   tags={k: str(v) for k, v in tags.items()})
    from mlflow.entities import Param

    flat = [Param(k, str(v)[:6000]) for k, v in params.items()]
    if flat:
        mlflow_client.log_batch(run.info.run_id, params=flat)
    return run.info.run_id


def log_dataset(store: MlflowStore, run_id: str, *, frame: pd.DataFrame, name: str, digest: str, source: str,
                target: str) -> None:
    """The dataset version as the run's training input (digest: the version's sha256, cut to MLflow's 36).

    The schema is inferred from the first rows (inferring it from every row of a large frame takes
    seconds); the profile counts the whole frame.
    """
    _mlflow(store)
    import warnings

    from mlflow.data.pandas_dataset import from_pandas  # also mlflow.data.from_pandas, but set there at runtime
    from mlflow.entities import Dataset, DatasetInput, InputTag

    with warnings.catch_warnings():  # "file:" and "" both map to the local source: harmless ambiguity
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        sample = from_pandas(frame.head(1000), source=source, targets=target, name=name,
                             digest=digest[:36])._to_mlflow_entity()
    profile = json.dumps({"num_rows": len(frame), "num_elements": int(frame.size)})
    entity = Dataset(name=sample.name, digest=sample.digest, source_type=sample.source_type, source=sample.source,
                     schema=sample.schema, profile=profile)
    context = InputTag("mlflow.data.context", "training")
    for attempt in range(3):
        try:
            client(store).log_inputs(run_id, datasets=[DatasetInput(entity, tags=[context])])
            return
        except Exception as exc:  # two runs of one experiment logging the same dataset at once
            # MLflow checks for the (experiment, name, digest) row, then inserts it: the loser of that
            # race gets a unique violation; a second try finds the row and only links it to this run.
            if attempt == 2 or "unique" not in str(exc).lower():
                raise


def log_results(store: MlflowStore, run_id: str, *, metrics: dict[str, float], files: dict[str, bytes | str]) -> None:
    """Metrics (one batch) and small files as artifacts (``{"plots/x.png": bytes, "x.json": text}``)."""
    import tempfile

    from mlflow.entities import Metric

    mlflow_client = client(store)
    now = _now_ms()
    batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None]
    if batch:
        mlflow_client.log_batch(run_id, metrics=batch)
    if files:
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in files.items():
                path = Path(tmp) / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content if isinstance(content, bytes) else content.encode())
            mlflow_client.log_artifacts(run_id, tmp)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def model_input(frame: pd.DataFrame) -> pd.DataFrame:
    """Raw records as the logged model takes them: every number a double (so it may be missing)."""
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_numeric_dtype(out[column]) and not pd.api.types.is_bool_dtype(out[column]):
            out[column] = out[column].astype("float64")
    return out


def _signature(example: pd.DataFrame, predictions: Any) -> ModelSignature:
    """Inputs are the raw columns, all optional (the pipeline imputes what is missing); numbers are
    doubles and text is string, so records with missing values pass MLflow's schema enforcement."""
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.types.schema import ColSpec, DataType, Schema

    def kind(series: pd.Series) -> DataType:
        if pd.api.types.is_bool_dtype(series):
            return DataType.boolean
        if pd.api.types.is_numeric_dtype(series):
            return DataType.double
        return DataType.string

    signature = infer_signature(example, predictions)
    signature.inputs = Schema([ColSpec(kind(example[c]), str(c), required=False) for c in example.columns])
    return signature


@dataclass(frozen=True)
class LoggedModel:
    """A model logged to a run: its ``models:/m-…`` URI and the sha256 of its files (``hash_directory``)."""

    uri: str
    sha256: str


def log_model(store: MlflowStore, run_id: str, *, pipeline: Any, example: pd.DataFrame,
              trusted_types: tuple[str, ...] = (), model_bytes: bytes | None = None) -> LoggedModel:
    """Log the fitted pipeline (skops, signature, input example) to the run, with its files' sha256.

    ``trusted_types``: skops types beyond ``SKOPS_TRUSTED_TYPES`` the model needs (an imported model's, vetted
    by ``core.training.model_files``). ``model_bytes``: the skops file to keep as the model file instead of a
    new dump of ``pipeline`` (an imported skops file, byte for byte, so what is served is what was imported).

    What ``mlflow.sklearn.log_model`` does, in steps, so the files are hashed on this machine between
    saving and uploading: the hash is of exactly what is uploaded, and nothing is read back from the
    artifact store (twenty trainings downloading their models from one S3 at once overloaded it).
    """
    import tempfile

    _mlflow(store)
    from mlflow import sklearn as mlflow_sklearn
    from mlflow.entities import LoggedModelOutput, Metric
    from mlflow.models import Model

    example = model_input(example)
    signature = _signature(example, pipeline.predict(example))
    requirements = [f"{p}=={package_version(p)}" for p in MODEL_PACKAGES]
    # The logged model is created in the run's experiment, so its files land under that experiment's
    # artifact location in the workspace (left to itself, MLflow would pick the default experiment,
    # whose location is relative to the current directory). No fluent, process-wide active run or
    # experiment is involved.
    mlflow_client = client(store)
    run = mlflow_client.get_run(run_id)
    logged = mlflow_client.create_logged_model(run.info.experiment_id, name="model", source_run_id=run_id,
                                               params=dict(run.data.params))
    meta = Model(artifact_path=logged.artifact_location, model_uuid=logged.model_id, run_id=run_id,
                 model_id=logged.model_id)
    with tempfile.TemporaryDirectory(prefix="leanops-model-") as tmp:
        folder = Path(tmp) / "model"
        mlflow_sklearn.save_model(pipeline, str(folder), mlflow_model=meta, signature=signature, input_example=example,
                                  pip_requirements=requirements, serialization_format="skops",
                                  skops_trusted_types=[*SKOPS_TRUSTED_TYPES, *trusted_types])
        if model_bytes is not None:
            (folder / "model.skops").write_bytes(model_bytes)
        sha256, _ = hash_directory(folder)
        # As ``Model.log`` links them: the model is an output of the run, and the run's metrics are the model's.
        mlflow_client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        metrics = [Metric(m.key, m.value, m.timestamp, m.step, run_id=run_id, model_id=logged.model_id)
                   for key in run.data.metrics for m in mlflow_client.get_metric_history(run_id, key)
                   if m.step == 0 and m.model_id is None]
        if metrics:
            mlflow_client.log_batch(run_id, metrics=metrics)
        mlflow_client.log_model_artifacts(logged.model_id, str(folder))
    return LoggedModel(uri=f"models:/{logged.model_id}", sha256=sha256)


def hash_directory(path: Path) -> tuple[str, int]:
    """sha256 over every file under ``path`` and how many there are: for each file in path order,
    ``relative path NUL sha256 LF`` (the same digest the compliance report shows for a model version)."""
    import hashlib

    outer = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        inner = hashlib.sha256()
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                inner.update(chunk)
        outer.update(f"{file.relative_to(path).as_posix()}\0{inner.hexdigest()}\n".encode())
    return outer.hexdigest(), len(files)


def download_model_files(location: str, dst: Path) -> Path:
    """Copy the model files at ``location`` (a version's download URI) into the folder ``dst``; their folder.

    Always a copy, also from a local store: what is checked is then exactly what is loaded.
    """
    from mlflow.artifacts import download_artifacts

    return Path(download_artifacts(artifact_uri=location, dst_path=str(dst)))


def register(store: MlflowStore, *, model_uri: str, name: str, tags: dict[str, Any]) -> int:
    """A new version of registered model ``name`` from ``model_uri``, with its lineage tags."""
    mlflow = _mlflow(store)
    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
    return int(version.version)


def untag_version(store: MlflowStore, *, name: str, version: int, key: str) -> None:
    """Remove tag ``key`` from a model version (nothing when the version or the tag is gone)."""
    from mlflow.exceptions import MlflowException

    try:
        client(store).delete_model_version_tag(name, str(version), key)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise


def end_run(store: MlflowStore, run_id: str, *, status: str = "FINISHED") -> None:
    client(store).set_terminated(run_id, status=status)


def delete_version(store: MlflowStore, *, name: str, version: int) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client(store).delete_model_version(name, str(version))
    except MlflowException as exc:
        if not is_not_found(exc):
            raise


def fail_orphans(store: MlflowStore, *, is_finished: Any) -> list[str]:
    """Runs still RUNNING whose job is over (its worker was killed): mark them FAILED, delete their versions.

    ``is_finished(job_id) -> bool`` says whether the job that owns a run has ended.
    """
    mlflow_client = client(store)
    failed: list[str] = []
    experiments = [e.experiment_id for e in mlflow_client.search_experiments(filter_string="name LIKE 'leanops/%'")]
    if not experiments:
        return failed
    runs = mlflow_client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=500)
    for run in runs:
        job = run.data.tags.get(TAG_PREFIX + "job_id")
        if not job or not job.isdigit() or not is_finished(int(job)):
            continue
        model = run.data.tags.get(TAG_PREFIX + "model_name")
        if model:
            for mv in mlflow_client.search_model_versions(f"name = '{model}' and run_id = '{run.info.run_id}'"):
                delete_version(store, name=model, version=int(mv.version))
        mlflow_client.set_terminated(run.info.run_id, status="FAILED")
        failed.append(run.info.run_id)
    return failed


def run_info(store: MlflowStore, run_id: str) -> dict[str, Any]:
    """Status, times, params, metrics and tags of a run as MLflow has them."""
    from mlflow.exceptions import MlflowException

    try:
        run = client(store).get_run(run_id)
    except MlflowException as exc:
        raise NotFound(f"no MLflow run {run_id}: {exc}") from None
    return {"run_id": run_id, "status": run.info.status, "experiment_id": run.info.experiment_id,
            "artifact_uri": run.info.artifact_uri, "params": dict(run.data.params),
            "metrics": dict(run.data.metrics), "tags": {k: v for k, v in run.data.tags.items()
                                                        if not k.startswith("mlflow.")}}


def version_info(store: MlflowStore, *, name: str, version: int) -> dict[str, Any]:
    from mlflow.exceptions import MlflowException

    try:
        mv = client(store).get_model_version(name, str(version))
    except MlflowException as exc:
        raise NotFound(f"no model version {name} v{version}: {exc}") from None
    return {"name": name, "version": int(mv.version), "run_id": mv.run_id, "source": mv.source,
            "status": mv.status, "tags": dict(mv.tags)}


def versions_of_run(store: MlflowStore, *, name: str, run_id: str) -> list[int]:
    found = client(store).search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return [int(mv.version) for mv in found]


def run_files(store: MlflowStore, run_id: str, path: str) -> list[tuple[str, int]]:
    """``(path, size)`` of each file at ``path`` in a run's artifacts (one entry for a file; a folder's files).

    Raises:
        NotFound: no such run or nothing at ``path``.
    """
    from mlflow.exceptions import MlflowException

    mlflow_client = client(store)
    try:
        mlflow_client.get_run(run_id)
        parent = path.rstrip("/").rpartition("/")[0] or None
        entries = {e.path: e for e in mlflow_client.list_artifacts(run_id, parent)}
        entry = entries.get(path.rstrip("/"))
        if entry is None:
            raise NotFound(f"MLflow run {run_id} has no artifact {path!r}; it has: "
                           f"{', '.join(sorted(entries)) or 'none at that level'}")
        if not entry.is_dir:
            return [(entry.path, int(entry.file_size or 0))]
        return [(e.path, int(e.file_size or 0)) for e in mlflow_client.list_artifacts(run_id, entry.path)
                if not e.is_dir]
    except MlflowException as exc:
        if is_not_found(exc):
            raise NotFound(f"no MLflow run {run_id} (or no artifact {path!r} in it)") from None
        raise unavailable(exc) from exc


def run_file(store: MlflowStore, run_id: str, path: str) -> bytes:
    """The bytes of one file of a run's artifacts (check its size with ``run_files`` first)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="leanops-artifact-") as tmp:
        local = client(store).download_artifacts(run_id, path, tmp)
        return Path(local).read_bytes()


def dumps(doc: Any) -> str:
    return json.dumps(doc, default=str, separators=(",", ":"))


def unavailable(exc: Exception) -> StoreUnavailable:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnavailable(f"the MLflow store is unavailable: {first}")
