"""MLflow model aliases (champion, challenger): the registry's part of promotion and rollback.

Aliases are MLflow's own, so `mlflow ui` and `models:/NAME@champion` see the same truth.
"""

from __future__ import annotations

from functools import cache

from core.errors import NotFound, StoreUnavailable

CHAMPION, CHALLENGER = "champion", "challenger"


@cache
def _client(uri: str):  # noqa: ANN202 - mlflow is imported lazily
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _not_found(exc: Exception) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower()


def get(uri: str, *, model: str, alias: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        return int(_client(uri).get_model_version_by_alias(model, alias).version)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise StoreUnavailable(f"MLflow registry at {uri} failed: {exc}") from exc


def check_version(uri: str, *, model: str, version: int) -> None:
    from mlflow.exceptions import MlflowException

    try:
        _client(uri).get_model_version(model, str(version))
    except MlflowException as exc:
        if _not_found(exc):
            raise NotFound(f"model {model!r} has no version {version}") from None
        raise StoreUnavailable(f"MLflow registry at {uri} failed: {exc}") from exc


def move(uri: str, *, model: str, alias: str, version: int | None) -> None:
    """Point ``alias`` at ``version`` (None removes it)."""
    from mlflow.exceptions import MlflowException

    try:
        if version is None:
            _client(uri).delete_registered_model_alias(model, alias)
        else:
            _client(uri).set_registered_model_alias(model, alias, str(version))
    except MlflowException as exc:
        if version is None and _not_found(exc):
            return
        raise StoreUnavailable(f"MLflow registry at {uri} failed to move {model}@{alias}: {exc}") from exc


def all_for(uri: str, *, model: str) -> dict[str, int]:
    """alias → version for one registered model ({} when MLflow does not know the model)."""
    from mlflow.exceptions import MlflowException

    try:
        found = _client(uri).get_registered_model(model).aliases
    except MlflowException as exc:
        if _not_found(exc):
            return {}
        raise StoreUnavailable(f"MLflow registry at {uri} failed: {exc}") from exc
    return {alias: int(version) for alias, version in found.items()}
