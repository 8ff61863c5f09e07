"""MLflow model aliases (champion, challenger): the registry's part of promotion and rollback.

Aliases are MLflow's own, so `mlflow ui` and `models:/NAME@champion` see the same truth.
"""

from __future__ import annotations

from core.errors import NotFound
from core.platform import mlflow_store

CHAMPION, CHALLENGER = "champion", "challenger"
# The ``alias`` of a prediction-log row the challenger made in the shadow of a champion request (same
# request id): never an alias in MLflow, never returned to a client, left out of every champion reader.
SHADOW = "shadow"


def get(uri: str, *, model: str, alias: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        return int(mlflow_store.client(uri).get_model_version_by_alias(model, alias).version)
    except MlflowException as exc:
        if mlflow_store.is_not_found(exc):
            return None
        raise mlflow_store.unavailable(exc) from exc


def check_version(uri: str, *, model: str, version: int) -> None:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_store.client(uri).get_model_version(model, str(version))
    except MlflowException as exc:
        if mlflow_store.is_not_found(exc):
            raise NotFound(f"model {model!r} has no version {version}") from None
        raise mlflow_store.unavailable(exc) from exc


def move(uri: str, *, model: str, alias: str, version: int | None) -> None:
    """Point ``alias`` at ``version`` (None removes it)."""
    from mlflow.exceptions import MlflowException

    try:
        if version is None:
            mlflow_store.client(uri).delete_registered_model_alias(model, alias)
        else:
            mlflow_store.client(uri).set_registered_model_alias(model, alias, str(version))
    except MlflowException as exc:
        if version is None and mlflow_store.is_not_found(exc):
            return
        raise mlflow_store.unavailable(exc) from exc


def all_for(uri: str, *, model: str) -> dict[str, int]:
    """alias → version for one registered model ({} when MLflow does not know the model)."""
    from mlflow.exceptions import MlflowException

    try:
        found = mlflow_store.client(uri).get_registered_model(model).aliases
    except MlflowException as exc:
        if mlflow_store.is_not_found(exc):
            return {}
        raise mlflow_store.unavailable(exc) from exc
    return {alias: int(version) for alias, version in found.items()}


def champions(uri: str) -> dict[str, int]:
    """model → its champion version, for every registered model that has one (MLflow's alias is the truth)."""
    from mlflow.exceptions import MlflowException

    found: dict[str, int] = {}
    token = None
    try:
        while True:
            page = mlflow_store.client(uri).search_registered_models(max_results=500, page_token=token)
            found |= {m.name: int(m.aliases[CHAMPION]) for m in page if CHAMPION in (m.aliases or {})}
            token = page.token
            if not token:
                return found
    except MlflowException as exc:
        raise mlflow_store.unavailable(exc) from exc
