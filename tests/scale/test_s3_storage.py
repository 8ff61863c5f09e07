"""Dataset files and MLflow artifacts on S3 (moto's server: the real protocol over HTTP).

Covers the store itself, registration through core on both metadata backends, an unreachable
or failing store (clear error, no row, no object), a rolled-back caller, and a model trained with
its artifacts in the bucket and loaded back with plain MLflow.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.actors import Actor
from core.data import datasets
from core.errors import InvalidInput, NotFound, StoreUnavailable
from core.platform.database import transaction
from core.platform.storage import LocalStore, S3Store, open_store
from core.settings import Settings, get_settings
from db.models import Dataset, DatasetVersion
from tests.support.net import free_port
from tests.support.s3 import S3_KEY, S3_REGION, S3_SECRET, S3Server
from tests.support.training import mlflow_template, small_churn  # noqa: F401 - fixture

ALICE = Actor("alice", "scientist")
MLFLOW_ENV = ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


@pytest.fixture
def s3_settings(tmp_path: Path, db_url: str, s3_server: S3Server, s3_bucket: str,
                monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in MLFLOW_ENV:  # get_settings exports these for MLflow; restore them after the test
        monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(name, "")
    return get_settings(home=tmp_path / "ws", db_url=db_url, scheduler="off", artifacts=f"s3://{s3_bucket}/team/",
                        s3_endpoint_url=s3_server.endpoint, s3_access_key_id=S3_KEY,
                        s3_secret_access_key=S3_SECRET, s3_region=S3_REGION)


@pytest.fixture
def factory_s3(s3_settings: Settings) -> sessionmaker[Session]:
    from db.session import make_engine, make_session_factory

    engine = make_engine(s3_settings.db_url)
    yield make_session_factory(engine)
    engine.dispose()


def frame(rows: int = 50, seed: int = 0) -> pd.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(size=rows), "k": rng.choice(["a", "b"], rows)})


def counts(factory: sessionmaker[Session]) -> tuple[int, int]:
    with factory() as s:
        return (s.scalar(select(func.count()).select_from(Dataset)),
                s.scalar(select(func.count()).select_from(DatasetVersion)))


def register(factory: sessionmaker[Session], store, data: pd.DataFrame, name: str = "d") -> datasets.Registration:
    with transaction(factory) as session:
        return datasets.register(session, actor=ALICE, name=name, data=data, store=store, source="test")


# -- the store -----------------------------------------------------------------------------------

def test_s3_store_round_trip(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    store = S3Store(f"s3://{s3_bucket}/p/q", endpoint_url=s3_server.endpoint, access_key_id=S3_KEY,
                    secret_access_key=S3_SECRET, region=S3_REGION)
    assert not store.exists("a/b.bin")
    store.put("a/b.bin", b"hello")
    source = tmp_path / "c.bin"
    source.write_bytes(b"world" * 1000)
    store.put("a/c.bin", source)
    assert store.read_bytes("a/b.bin") == b"hello"
    assert store.open("a/c.bin").read() == b"world" * 1000
    assert store.uri("a/b.bin") == f"s3://{s3_bucket}/p/q/a/b.bin"
    assert sorted(k for k, _ in store.keys("a")) == ["a/b.bin", "a/c.bin"]
    assert sorted(s3_server.keys(s3_bucket)) == ["p/q/a/b.bin", "p/q/a/c.bin"]
    assert store.delete("a/b.bin") and not store.delete("a/b.bin")
    with pytest.raises(NotFound, match="missing from the S3 store"):
        store.read_bytes("a/b.bin")
    with pytest.raises(InvalidInput):
        store.put("../escape", b"x")


def test_settings_choose_the_store_and_export_mlflow_variables(s3_settings: Settings, tmp_path: Path) -> None:
    import os

    store = open_store(s3_settings)
    assert isinstance(store, S3Store) and store.root.endswith("/team")
    assert os.environ["MLFLOW_S3_ENDPOINT_URL"] == s3_settings.s3_endpoint_url
    assert os.environ["AWS_ACCESS_KEY_ID"] == S3_KEY and os.environ["AWS_SECRET_ACCESS_KEY"] == S3_SECRET
    assert isinstance(get_settings(home=tmp_path).data_store, LocalStore)
    with pytest.raises(InvalidInput, match="LEANOPS_ARTIFACTS"):
        get_settings(home=tmp_path, artifacts="gs://bucket/x")
    with pytest.raises(InvalidInput, match="needs a bucket"):
        get_settings(home=tmp_path, artifacts="s3:///x")


# -- datasets on S3 ------------------------------------------------------------------------------

def test_register_and_load_from_s3(s3_settings: Settings, factory_s3: sessionmaker[Session],
                                   s3_server: S3Server, s3_bucket: str) -> None:
    data = frame()
    reg = register(factory_s3, s3_settings.data_store, data)
    assert reg.created and reg.version.version == 1
    assert s3_server.keys(s3_bucket) == [f"team/datasets/{reg.version.sha256}.parquet"]
    assert not (s3_settings.home / "datasets").exists()  # nothing landed in the local workspace
    again = register(factory_s3, s3_settings.data_store, data)
    assert not again.created and counts(factory_s3) == (1, 1)
    with factory_s3() as session:
        view, loaded = datasets.load_frame(session, store=s3_settings.data_store, ref="d:1")
    pd.testing.assert_frame_equal(loaded.reset_index(drop=True), data.astype({"k": loaded["k"].dtype}),
                                  check_dtype=False)
    assert view.sha256 == reg.version.sha256


def test_unreachable_s3_is_a_clear_error_and_writes_nothing(tmp_path: Path, factory_s3: sessionmaker[Session],
                                                            ) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    store = S3Store("s3://nowhere/ws", endpoint_url=dead, access_key_id=S3_KEY, secret_access_key=S3_SECRET,
                    region=S3_REGION)
    with pytest.raises(StoreUnavailable, match=rf"S3 store s3://nowhere/ws at {dead} could not") as info:
        register(factory_s3, store, frame())
    assert "LEANOPS_S3_ENDPOINT_URL" in str(info.value)
    assert counts(factory_s3) == (0, 0)


def test_upload_failing_after_the_rows_rolls_them_back(factory_s3: sessionmaker[Session], s3_server: S3Server
                                                       ) -> None:
    # The bucket does not exist: the existence check says "no such object", the upload at commit
    # time fails; the rows flushed before it must not survive.
    store = S3Store("s3://no-such-bucket-here/ws", endpoint_url=s3_server.endpoint, access_key_id=S3_KEY,
                    secret_access_key=S3_SECRET, region=S3_REGION)
    with pytest.raises(StoreUnavailable, match="could not write"):
        register(factory_s3, store, frame())
    assert counts(factory_s3) == (0, 0)


def test_rolled_back_caller_leaves_no_object(s3_settings: Settings, factory_s3: sessionmaker[Session],
                                             s3_server: S3Server, s3_bucket: str) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction(factory_s3) as session:
        datasets.register(session, actor=ALICE, name="d", data=frame(seed=3), store=s3_settings.data_store,
                          source="test")
        assert len(s3_server.keys(s3_bucket)) == 1  # uploaded, waiting for the commit
        raise Boom()
    assert counts(factory_s3) == (0, 0)
    assert s3_server.keys(s3_bucket) == []


# -- MLflow artifacts on S3 ----------------------------------------------------------------------

@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_training_puts_mlflow_artifacts_on_s3(s3_settings: Settings, factory_s3: sessionmaker[Session],
                                              mlflow_template: Path, s3_server: S3Server, s3_bucket: str  # noqa: F811
                                              ) -> None:
    import shutil

    import mlflow

    from core.promotion.registration import train

    s3_settings.home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_template, s3_settings.home / "mlflow.db")
    register(factory_s3, s3_settings.data_store, small_churn(rows=200), name="churn")
    result = train(factory_s3, s3_settings, {"dataset": "churn", "target": "churn", "model": "linear"},
                     actor=Actor("sam", "scientist", "job"), log=lambda line: None)
    keys = s3_server.keys(s3_bucket)
    assert any(k.startswith("team/mlflow/") and k.endswith("MLmodel") for k in keys), keys
    assert any(k.endswith("plots/plots.json") for k in keys)
    assert not (s3_settings.home / "artifacts").exists()
    mlflow.set_registry_uri(s3_settings.mlflow_uri)
    model = mlflow.pyfunc.load_model(f"models:/churn/{result['model_version']}")
    frame_ = small_churn(rows=20).drop(columns=["churn"])
    frame_ = frame_.astype({c: float for c in frame_.columns if pd.api.types.is_integer_dtype(frame_[c])})
    assert len(model.predict(frame_)) == 20
