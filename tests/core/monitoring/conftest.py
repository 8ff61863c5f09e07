"""The trained workspace of the drift tests (test_monitoring.py, test_cli_drift.py).

Training a model costs ~20 s here, so one workspace is trained once per test session (churn v1,
promoted to champion) and copied per test: every test gets its own metadata DB and MLflow store.
"""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.alerts import notify
from core.settings import Settings, get_settings
from db.session import make_engine, make_session_factory
from tests.support import aliases, training
from tests.support.training import add_dataset, small_churn
from tests.support.worker import drain

mlflow_template = training.mlflow_template  # a fixture: trained_template copies its MLflow store


@dataclass(frozen=True)
class Trained:
    settings: Settings
    factory: object


def _checkpoint(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory, _sqlite_template: Path, mlflow_template: Path) -> Path:
    """A workspace with churn v1 trained (reference statistics stored) and promoted to champion."""
    from core.actors import Actor
    from core.promotion.registration import train

    root = tmp_path_factory.mktemp("drift-trained")
    (root / "db").mkdir()
    (root / "ws").mkdir()
    shutil.copyfile(_sqlite_template, root / "db" / "leanops.db")
    shutil.copyfile(mlflow_template, root / "ws" / "mlflow.db")
    settings = _settings(root)
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    add_dataset(factory, settings, small_churn(1500))
    train(factory, settings, {"dataset": "churn", "target": "churn", "model": "random_forest",
                              "params": {"n_estimators": 10}}, actor=Actor("sam", "scientist", "job"),
          log=lambda line: None)
    aliases.move(settings, model="churn", alias="champion", version=1)
    drain(factory, settings)  # the set-up's follow-ups (aliases.sync, retrain.consider): tests start on an empty queue
    engine.dispose()
    _checkpoint(root / "db" / "leanops.db")
    _checkpoint(root / "ws" / "mlflow.db")
    return root


def _settings(root: Path) -> Settings:
    return get_settings(home=root / "ws", db_url=f"sqlite:///{root / 'db' / 'leanops.db'}", scheduler="off",
                        admin_user="admin", admin_password="admin-pass-123")


@pytest.fixture
def trained(trained_template: Path, tmp_path: Path):
    """This test's own copy of the trained workspace (model files stay in the template, read-only)."""
    root = tmp_path / "trained"
    shutil.copytree(trained_template, root)
    settings = _settings(root)
    engine = make_engine(settings.db_url)
    yield Trained(settings, make_session_factory(engine))
    notify.wait_for_deliveries(5)
    engine.dispose()
