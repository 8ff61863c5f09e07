"""Real sklearn pipelines logged once per test process into a temporary MLflow store (SQLite).

Logging a model costs seconds, registering an already-logged model under a new name milliseconds,
so tests get a fresh registered model name each (own versions and aliases) cheaply.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

FEATURES_NUM = ["customer_age", "tenure_months", "monthly_charges", "total_charges", "support_calls"]
FEATURES_CAT = ["contract", "payment_method", "region", "gender", "senior"]
TARGET = "churn"


@dataclass(frozen=True)
class Store:
    uri: str
    artifacts: str
    logged: dict[str, str]  # kind → models:/m-… URI of a logged model

    def register(self, kind: str, name: str) -> int:
        return self.register_uri(self.logged[kind], name)

    def register_uri(self, model_uri: str, name: str) -> int:
        """A new version of ``name`` from ``model_uri``, tagged with its files' sha256 as LeanOps' training does."""
        import mlflow

        from core.platform import mlflow_store

        tags = {mlflow_store.MODEL_SHA256_TAG: _sha256(self.uri, model_uri)}
        with _registry_uri(self.uri):
            return int(mlflow.register_model(model_uri, name, tags=tags).version)

    def fresh_name(self, prefix: str = "churn") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    @property
    def registry(self) -> Any:
        from core.platform.mlflow_store import MlflowStore
        from core.platform.registry_port import RegistryPort

        return RegistryPort(MlflowStore(uri=self.uri, artifacts=self.artifacts))

    def move(self, name: str, version: int | None, alias: str = "champion") -> None:
        """Point MLflow's alias (a store without LeanOps' DB: tools serving straight from MLflow)."""
        self.registry.set_alias(name, alias, version)


@cache
def _sha256(uri: str, model_uri: str) -> str:
    """The sha256 of a logged model's files (a copy of them), taken once per model as training takes it once."""
    return files_sha256(uri, model_uri)


def files_sha256(uri: str, model_uri: str) -> str:
    """``mlflow_store.hash_directory`` of a copy of the logged model ``model_uri``'s files (``models:/m-…``)."""
    from core.platform import mlflow_store

    client = mlflow_store.client(mlflow_store.MlflowStore(uri, ""))
    location = client.get_logged_model(model_uri.removeprefix("models:/")).artifact_location
    with tempfile.TemporaryDirectory(prefix="leanops-test-model-") as tmp:
        return mlflow_store.hash_directory(mlflow_store.download_model_files(location, Path(tmp)))[0]


class _registry_uri:
    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __enter__(self) -> None:
        import mlflow

        self.old = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)

    def __exit__(self, *exc: object) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.old[0])
        mlflow.set_registry_uri(self.old[1])


def churn_data(rows: int = 2000) -> tuple[Any, Any]:  # features, target
    from core.workspace.demo import churn_frame

    frame = churn_frame(rows=rows)
    return frame.drop(columns=TARGET), frame[TARGET]


def pipeline(kind: str) -> Any:  # an unfitted sklearn Pipeline
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    categorical = Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                            ("onehot", OneHotEncoder(handle_unknown="ignore"))])
    prep = ColumnTransformer([("num", numeric, FEATURES_NUM), ("cat", categorical, FEATURES_CAT)])
    model = (LogisticRegression(max_iter=500) if kind == "lr"
             else RandomForestClassifier(n_estimators=int(kind.removeprefix("rf") or 100), random_state=0))
    return Pipeline([("prep", prep), ("model", model)])


def log_model(uri: str, artifacts: str, kind: str) -> str:
    """Fit a ``kind`` pipeline ("lr", "rf", "rf20" …) on the churn demo data and log it; returns its URI."""
    import mlflow
    import skops.io

    X, y = churn_data()
    fitted = pipeline(kind).fit(X, y)
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(fitted))
    with _registry_uri(uri):
        name = "leanops-tests"
        experiment = mlflow.get_experiment_by_name(name)
        exp_id = experiment.experiment_id if experiment else mlflow.create_experiment(name, artifact_location=artifacts)
        with mlflow.start_run(experiment_id=exp_id):
            info = mlflow.sklearn.log_model(fitted, name="model", input_example=X.head(3),
                                            pip_requirements=["scikit-learn", "skops"], skops_trusted_types=trusted)
    return info.model_uri


@cache
def store() -> Store:
    """The process's MLflow store with an "lr" and an "rf20" model logged (built on first use)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    root = Path(tempfile.mkdtemp(prefix="serving-mlflow-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    uri, artifacts = f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts")
    logged = {kind: log_model(uri, artifacts, kind) for kind in ("lr", "rf20")}
    return Store(uri, artifacts, logged)


def records(n: int, start: int = 0) -> list[dict]:
    """``n`` feature rows as JSON-able records (missing values as None)."""
    import json

    X, _ = churn_data()
    rows = X.iloc[start:start + n] if start + n <= len(X) else X.sample(n, replace=True, random_state=start)
    return json.loads(rows.to_json(orient="records"))
