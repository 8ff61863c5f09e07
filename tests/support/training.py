"""Fixtures and builders shared by the training tests: a real MLflow store and registered datasets.

Import the fixtures into a test module with ``from tests.support.training import *  # noqa: F403``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session, sessionmaker

from core.actors import Actor
from core.data import datasets
from core.platform.database import transaction
from core.settings import Settings
from core.workspace.demo import churn_frame

SCIENTIST = Actor("sam", "scientist")
VIEWER = Actor("vic", "viewer")

__all__ = ["SCIENTIST", "VIEWER", "add_dataset", "mlflow_template", "small_churn", "workspace"]


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its migrations applied once per test session (copied per test)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}")
    client.search_experiments()
    client.search_registered_models()
    return path


@pytest.fixture
def workspace(settings: Settings, mlflow_template: Path) -> Settings:
    """This test's workspace with a fresh (already migrated) MLflow store."""
    settings.home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_template, settings.home / "mlflow.db")
    return settings


def small_churn(rows: int = 600, seed: int = 7) -> pd.DataFrame:
    return churn_frame(rows=rows, seed=seed)


def add_dataset(factory: sessionmaker[Session], settings: Settings, frame: pd.DataFrame, name: str = "churn"
                ) -> datasets.DatasetVersionView:
    """Register ``frame`` as the next version of dataset ``name`` through core."""
    with transaction(factory) as session:
        return datasets.register(session, actor=Actor("data-admin", "admin"), name=name, data=frame,
                                 store=settings.home, source="test").version
