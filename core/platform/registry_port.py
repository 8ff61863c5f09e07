"""The registry port: what LeanOps asks of MLflow's model registry, in one place.

Where an alias points is *not* MLflow's to say: LeanOps' DB owns it (``core/registry/state.py``), and
MLflow's aliases are a projection the ``aliases.sync`` job keeps in step (so ``models:/NAME@champion``
keeps working for anyone outside LeanOps). This port is the only code that reads or sets MLflow's aliases,
reads a version's tags and files, and hashes a logged model: serving, compliance and the state's sync
call it instead of MLflow's client.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import NotFound
from core.platform import mlflow_store
from core.platform.mlflow_store import MlflowStore

CHAMPION, CHALLENGER = "champion", "challenger"
# The ``alias`` of a prediction-log row the challenger made in the shadow of a champion request (same
# request id): never an alias in MLflow, never returned to a client, left out of every champion reader.
SHADOW = "shadow"
OWNED = (CHAMPION, CHALLENGER)  # the aliases LeanOps owns (other MLflow aliases are the team's own)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    run_id: str | None
    source: str
    status: str
    tags: dict[str, str]


@dataclass(frozen=True)
class RegistryPort:
    """MLflow's registry at ``store`` (its URI and artifact root)."""

    store: MlflowStore

    @property
    def uri(self) -> str:
        return self.store.uri

    def _client(self) -> Any:
        return mlflow_store.client(self.store)

    # -- aliases (the projection) ----------------------------------------------------------------

    def aliases(self, model: str) -> dict[str, int]:
        """alias → version as MLflow has them for one model ({} when MLflow does not know the model)."""
        from mlflow.exceptions import MlflowException

        try:
            found = self._client().get_registered_model(model).aliases
        except MlflowException as exc:
            if mlflow_store.is_not_found(exc):
                return {}
            raise mlflow_store.unavailable(exc) from exc
        return {alias: int(version) for alias, version in found.items()}

    def champions(self) -> dict[str, int]:
        """model → the version MLflow's ``champion`` alias names, for a store LeanOps' DB does not know
        (a tool serving straight from MLflow); LeanOps' own flows read ``state.champions``."""
        from mlflow.exceptions import MlflowException

        found: dict[str, int] = {}
        token = None
        try:
            while True:
                page = self._client().search_registered_models(max_results=500, page_token=token)
                found |= {m.name: int(m.aliases[CHAMPION]) for m in page if CHAMPION in (m.aliases or {})}
                token = page.token
                if not token:
                    return found
        except MlflowException as exc:
            raise mlflow_store.unavailable(exc) from exc

    def set_alias(self, model: str, alias: str, version: int | None) -> None:
        """Point MLflow's ``alias`` at ``version`` (None removes it)."""
        from mlflow.exceptions import MlflowException

        try:
            if version is None:
                self._client().delete_registered_model_alias(model, alias)
            else:
                self._client().set_registered_model_alias(model, alias, str(version))
        except MlflowException as exc:
            if version is None and mlflow_store.is_not_found(exc):
                return
            raise mlflow_store.unavailable(exc) from exc

    def ping(self) -> None:
        """Raise StoreUnavailable unless the registry answers (readiness: a server is not ready without it)."""
        from mlflow.exceptions import MlflowException

        try:
            self._client().search_registered_models(max_results=1)
        except MlflowException as exc:
            raise mlflow_store.unavailable(exc) from exc

    # -- versions and their files ----------------------------------------------------------------

    def has_model(self, model: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self._client().get_registered_model(model)
        except MlflowException as exc:
            if mlflow_store.is_not_found(exc):
                return False
            raise mlflow_store.unavailable(exc) from exc
        return True

    def version(self, model: str, version: int) -> VersionInfo:
        """A registered version's run, source, status and tags.

        Raises:
            NotFound: MLflow has no such version.
            StoreUnavailable: the store did not answer.
        """
        from mlflow.exceptions import MlflowException

        try:
            mv = self._client().get_model_version(model, str(version))
        except MlflowException as exc:
            if mlflow_store.is_not_found(exc):
                raise NotFound(f"model {model!r} has no version {version}") from None
            raise mlflow_store.unavailable(exc) from exc
        return VersionInfo(model, int(mv.version), mv.run_id, mv.source or "", mv.status or "", dict(mv.tags or {}))

    def download(self, model: str, version: int, dst: Path) -> tuple[VersionInfo, Path]:
        """Copy a version's model files into the folder ``dst`` (always a copy, also from a local store:
        what is checked is then exactly what is loaded); its info and the copy's folder."""
        from mlflow.exceptions import MlflowException

        info = self.version(model, version)
        try:
            location = self._client().get_model_version_download_uri(model, str(version))
        except MlflowException as exc:
            raise mlflow_store.unavailable(exc) from exc
        return info, mlflow_store.download_model_files(location, dst)

    def hash_logged_model(self, model_uri: str) -> tuple[str, int]:
        """sha256 and file count of a logged model's files (in place when local, else a temporary copy)."""
        from urllib.parse import unquote, urlparse

        from mlflow.artifacts import download_artifacts

        if model_uri.startswith("models:/m-"):
            location = self._client().get_logged_model(model_uri.removeprefix("models:/")).artifact_location
            parsed = urlparse(location)
            local = Path(unquote(parsed.path)) if parsed.scheme in ("", "file") else None
            if local is not None and local.is_dir():
                return mlflow_store.hash_directory(local)
        with tempfile.TemporaryDirectory() as tmp:
            folder = download_artifacts(artifact_uri=model_uri, dst_path=tmp, tracking_uri=self.store.uri)
            return mlflow_store.hash_directory(Path(folder))
