"""Model versions for the promotion tests, made the way LeanOps makes them (no fakes of our own code).

``trained`` trains a real version (``core.promotion.registration.train``: fit, MLflow run and version,
training-run row, registration gates; a version that passes them becomes the challenger).

``recorded`` is for tests that need exact metrics (an improvement-gate boundary, a gate's message):
a real dataset version with its real certificate, a real MLflow run that logged those metrics and the
version registered from it, and the training run recorded through ``core.training.runs`` (``start`` +
``complete``) as a training does. The gates then read these facts through the real accessor
(``core.registry.views.version_facts``). Nothing is fitted, so it costs milliseconds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.actors import Actor
from core.data.datasets import DatasetVersionView
from core.platform import mlflow_store
from core.platform.database import transaction
from core.promotion import registration
from core.settings import Settings
from core.training import runs
from core.training.spec import parse_spec

TRAINER = Actor("sam", "scientist")

# Two real linear versions of model "m" on ``small_churn(2000)`` that pass the default gates, the
# second beating the first on f1 by more than the 2 % the improvement gate asks for (about 0.88 and
# 0.93), and a dummy baseline that fails the f1 gate (about 0.41). The stronger one adds a column, so
# it confirms the input schema change (a model keeps its columns unless told otherwise).
WEAKER = {"model": "linear", "exclude": ["support_calls"]}
STRONGER = {"model": "linear", "allow_schema_change": True}
FAILING = {"model": "dummy"}


def trained(factory: sessionmaker[Session], settings: Settings, *, model_name: str = "m", dataset: str = "churn",
            target: str = "churn", actor: Actor = TRAINER, **spec: Any) -> int:
    """Train ``spec`` (``model`` is the kind) on ``dataset`` to a registered version of ``model_name``, its
    registration gates evaluated; the version's number."""
    raw = {"dataset": dataset, "target": target, "model_name": model_name} | spec
    return registration.train(factory, settings, raw, actor=actor, log=lambda line: None)["model_version"]


def recorded(factory: sessionmaker[Session], settings: Settings, data: DatasetVersionView, *, model: str = "m",
             metrics: dict[str, float], trainer: Actor = TRAINER, target: str = "churn",
             task: str = "classification", fairness: dict[str, Any] | None = None) -> int:
    """A version of ``model`` whose training run on ``data`` recorded exactly ``metrics``; its number."""
    spec = parse_spec({"dataset": data.ref, "target": target, "model": "linear", "model_name": model,
                       "task": task})
    with transaction(factory) as session:
        run_id = runs.start(session, job_id=None, spec=spec, dataset_version_id=data.id, dataset_name=data.name,
                            dataset_version=data.version, sha256=data.sha256, task=task, params={},
                            code_version="test", created_by=trainer.name)
    store = mlflow_store.store_for(settings)
    tags = {f"{mlflow_store.TAG_PREFIX}training_run": run_id, f"{mlflow_store.TAG_PREFIX}dataset": data.ref,
            f"{mlflow_store.TAG_PREFIX}model_name": model}
    mlflow_run = mlflow_store.start_run(store, experiment=mlflow_store.experiment_name(model),
                                        run_name=f"{model}-{run_id}", tags=tags, params={"task": task})
    with transaction(factory) as session:
        runs.note_mlflow(session, run_id=run_id, mlflow_run_id=mlflow_run,
                         experiment_id=mlflow_store.run_info(store, mlflow_run)["experiment_id"])
    mlflow_store.log_results(store, mlflow_run, metrics=metrics, files={})
    version = _register(store, model=model, mlflow_run=mlflow_run, tags=tags)
    mlflow_store.end_run(store, mlflow_run, status="FINISHED")
    with transaction(factory) as session:
        runs.complete(session, run_id=run_id, actor=trainer, params={}, metrics=metrics, baseline={},
                      fairness=fairness or {}, plots={}, reference={}, search=None, model_version=version,
                      model_uri=f"models:/{model}/{version}")
    return version


def _register(store: mlflow_store.MlflowStore, *, model: str, mlflow_run: str, tags: dict[str, Any]) -> int:
    """A new version of ``model`` in the store, registered from ``mlflow_run`` (which logged no model files)."""
    from mlflow.exceptions import MlflowException

    client = mlflow_store.client(mlflow_store.MlflowStore(store.uri, ""))
    try:
        client.create_registered_model(model)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    source = f"{client.get_run(mlflow_run).info.artifact_uri}/model"
    found = client.create_model_version(model, source=source, run_id=mlflow_run,
                                        tags={k: str(v) for k, v in tags.items()})
    return int(found.version)
