"""Serving loads only what LeanOps vouches for (issue 14, item 5).

A model file that runs code when it is loaded (cloudpickle, pickle, a pyfunc model, or a skops file whose own
MLmodel trusts a type LeanOps does not) is never loaded; neither are model files changed after training, nor a
version an alias was moved to outside LeanOps. In every case the old champion keeps answering.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.accounts import auth
from core.actors import Actor, cli_actor
from core.alerts import notify
from core.errors import NotFound
from core.platform import mlflow_store
from core.platform.database import transaction
from core.promotion import moves
from core.registry import state
from core.serving import cache as serving
from core.serving import trust
from core.serving.cache import ModelCache, Refused, load_version
from db.models import AuditEvent
from tests.support import mlflow_models
from tests.support.api import bearer, serving_settings
from tests.support.factories import admin_actor
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn
from tests.support.versions import STRONGER, WEAKER, trained

APPROVER = Actor("ann", "approver")
RAN = "code from the model file ran"


class Payload:
    """Unpickling this writes ``marker``: what a pickled model's file can do to the process that loads it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return Path.write_text, (Path(self.marker), RAN)


class Beacon:
    """skops calls ``__setstate__`` when it builds an object of a type it was told to trust: this one then
    writes its marker (any type an artifact lists as trusted can do as much)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text(RAN)
        self.__dict__.update(state)


class Events(list):
    def __call__(self, kind: str, details: dict) -> None:
        self.append((kind, details))

    def of(self, kind: str) -> list[dict]:
        return [d for k, d in self if k == kind]


def fitted_with(payload: object) -> Any:
    """A fitted churn pipeline carrying ``payload`` as an attribute (so it is serialised with the model)."""
    X, y = mlflow_models.churn_data(400)
    model = mlflow_models.pipeline("lr").fit(X, y)
    model.payload = payload
    return model


def log_payload_model(uri: str, artifacts: str, form: str, marker: Path) -> Any:
    """Log a model whose loading writes ``marker``: sklearn as cloudpickle/pickle, a pyfunc model, or skops
    listing its own class as trusted in its MLmodel. Returns MLflow's ModelInfo."""
    import mlflow
    import skops.io

    with mlflow_models._registry_uri(uri):
        experiment = mlflow.get_experiment_by_name("untrusted")
        exp_id = experiment.experiment_id if experiment else mlflow.create_experiment("untrusted",
                                                                                      artifact_location=artifacts)
        with mlflow.start_run(experiment_id=exp_id):
            if form == "pyfunc":
                class Wrapped(mlflow.pyfunc.PythonModel):
                    def __init__(self) -> None:
                        self.payload = Payload(marker)

                    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
                        return model_input

                info = mlflow.pyfunc.log_model(name="model", python_model=Wrapped(), pip_requirements=["mlflow"])
            elif form == "skops":
                model = fitted_with(Beacon(marker))
                own = skops.io.get_untrusted_types(data=skops.io.dumps(model))
                assert any(t.endswith(".Beacon") for t in own)
                info = mlflow.sklearn.log_model(model, name="model", serialization_format="skops",
                                                skops_trusted_types=own, pip_requirements=["scikit-learn", "skops"])
            else:
                info = mlflow.sklearn.log_model(fitted_with(Payload(marker)), name="model",
                                                serialization_format=form, pip_requirements=["scikit-learn"])
    marker.unlink(missing_ok=True)  # whatever MLflow did while logging is not what is tested here
    return info


def register_directly(uri: str, name: str, info: Any, *, champion: bool = False) -> int:
    """A version registered (and aliased champion) with MLflow's own client, as anyone with access can."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with mlflow_models._registry_uri(uri):  # MLflow looks the logged model up through the process-wide URI
        version = int(client.create_model_version(name, source=info.model_uri, run_id=info.run_id,
                                                  model_id=info.model_id).version)
    if champion:
        client.set_registered_model_alias(name, "champion", str(version))
    return version


def files_of(uri: str, name: str, version: int) -> Path:
    location = mlflow_store.client(mlflow_store.MlflowStore(uri, "")).get_model_version_download_uri(name, str(version))
    parsed = urlparse(location)
    return Path(unquote(parsed.path)) if parsed.scheme in ("", "file") else Path(location)


# -- without LeanOps' DB: the artifact checks alone --------------------------------------------------------

@pytest.fixture(scope="module")
def store() -> mlflow_models.Store:
    return mlflow_models.store()


@pytest.fixture
def name(store: mlflow_models.Store) -> str:
    name = store.fresh_name()
    store.register("lr", name)
    store.move(name, 1)
    return name


def test_a_cloudpickle_champion_set_directly_in_mlflow_is_never_loaded_and_the_old_one_answers(
        store, tmp_path: Path, sqlite_url: str) -> None:
    from api.app import create_app
    from db.session import make_engine, make_session_factory
    from tests.support.api import LeanOpsStore

    settings = serving_settings(tmp_path / "ws", sqlite_url, store, serving_reload_seconds=3600)
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    # The app serves the aliases LeanOps recorded: v1 is promoted the LeanOps way. The cloudpickle version set
    # directly in MLflow is then never even looked at; so that the artifact checks themselves are tested, its
    # training run and move are recorded as LeanOps' own too.
    leanops = LeanOpsStore(store.uri, store.artifacts, store.logged, factory=factory, settings=settings)
    name = store.fresh_name()
    store.register("lr", name)
    leanops.move(name, 1)
    with transaction(factory) as session:
        token, _ = auth.create_token(session, actor=admin_actor(), role="viewer", name="reader")
    marker = tmp_path / "pwned"
    try:
        with TestClient(create_app(settings, factory=factory)) as client:
            def predict() -> Any:
                return client.post(f"/v1/models/{name}/predict", json={"records": mlflow_models.records(2)},
                                   headers=bearer(token))

            assert predict().json()["version"] == 1
            evil = register_directly(store.uri, name, log_payload_model(store.uri, store.artifacts, "cloudpickle",
                                                                        marker), champion=True)
            runtime = client.app.state.runtime
            # not LeanOps' move: serving follows LeanOps' record, which still says v1
            assert runtime.cache.refresh() == [] and predict().json()["version"] == 1
            store.move(name, 1)
            leanops.move(name, evil)  # recorded as LeanOps' own: now only the artifact checks stand in the way
            assert runtime.cache.refresh() == [] and runtime.cache.refresh() == []
            assert not marker.exists(), "the model file's code ran in the serving process"
            for _ in range(3):
                answer = predict()
                assert answer.status_code == 200 and answer.json()["version"] == 1
            with factory() as session:
                failed = [e for e in session.scalars(select(AuditEvent)) if e.action == "serving.reload_failed"]
            assert len(failed) == 1 and failed[0].details["version"] == evil
            assert (f"{name} v{evil} could not be loaded: it is a cloudpickle model (loading it would run code "
                    "from its file); LeanOps serves only skops sklearn models it trained") == failed[0].details["error"]
        with pytest.raises(Refused, match="is a cloudpickle model"):  # a server starting now: a 503, no code run
            ModelCache(registry=store.registry, reload_seconds=3600).get(name, "champion")
        assert not marker.exists()
    finally:
        engine.dispose()


@pytest.mark.parametrize(("form", "reason"), [
    ("cloudpickle", "it is a cloudpickle model"),
    ("pickle", "it is a pickle model"),
    ("pyfunc", "it is a python_function model, not an sklearn one"),
    ("skops", "its model file holds types LeanOps does not trust"),
])
def test_only_skops_sklearn_with_leanops_own_trusted_types_is_loaded(store, name: str, tmp_path: Path, form: str,
                                                                     reason: str) -> None:
    marker = tmp_path / "pwned"
    info = log_payload_model(store.uri, store.artifacts, form, marker)
    version = store.register_uri(info.model_uri, name)  # even with its files' sha256 recorded like ours
    with pytest.raises(Refused, match=f"{name} v{version} could not be loaded: {reason}.*LeanOps serves only "
                                      "skops sklearn models it trained"):
        load_version(store.registry, name=name, alias="champion", version=version)
    assert not marker.exists(), "the model file's code ran"


def test_model_files_changed_after_training_are_refused_and_the_old_one_serves(store, name: str) -> None:
    import skops.io

    swapped = store.register_uri(mlflow_models.log_model(store.uri, store.artifacts, "lr"), name)
    other = store.register("rf20", name)
    # A valid model file, of the very types the version's own MLmodel trusts, that is not the one trained.
    skops.io.dump(mlflow_models.pipeline("lr").fit(*mlflow_models.churn_data(300)),
                  files_of(store.uri, name, swapped) / "model.skops")
    events = Events()
    cache = ModelCache(registry=store.registry, reload_seconds=3600, on_event=events)
    cache.get(name, "champion")
    store.move(name, swapped)
    assert cache.refresh() == [] and cache.refresh() == []
    assert cache.peek(name, "champion").version == 1
    failed = events.of("serving.reload_failed")
    assert len(failed) == 1 and failed[0]["version"] == swapped
    assert f"{name} v{swapped} could not be loaded: its model files changed after training" in failed[0]["error"]
    with pytest.raises(Refused, match="changed after training"):
        ModelCache(registry=store.registry, reload_seconds=3600).get(name, "champion")
    store.move(name, other)  # an intact version is still picked up
    assert cache.refresh() == [(name, "champion", 1, other)]


def test_loading_a_version_by_name_with_mlflow_does_not_make_it_unservable(store, name: str) -> None:
    """MLflow writes ``registered_model_meta`` into a local store's folder of a version it loads by name
    (``mlflow models serve -m models:/…@champion``, a notebook): that is not a change of the trained files."""
    from mlflow.artifacts import download_artifacts

    version = store.register_uri(mlflow_models.log_model(store.uri, store.artifacts, "lr"), name)
    with mlflow_models._registry_uri(store.uri):
        download_artifacts(f"models:/{name}/{version}")
    assert (files_of(store.uri, name, version) / trust.MLFLOW_META).is_file()
    loaded = load_version(store.registry, name=name, alias="champion", version=version)
    assert loaded.version == version and loaded.unverified is None


def test_a_version_trained_before_hashes_were_recorded_is_served_and_reported_once(store, name: str) -> None:
    """No sha256 recorded at training (a version from before LeanOps recorded one): refusing it would stop every
    existing workspace's models on upgrade, so it is served, if it passes every other check, and reported once."""
    from mlflow import MlflowClient

    version = store.register("rf20", name)
    MlflowClient(store.uri, store.uri).delete_model_version_tag(name, str(version), mlflow_store.MODEL_SHA256_TAG)
    loaded = load_version(store.registry, name=name, alias="champion", version=version)
    assert loaded.version == version and loaded.unverified == trust.UNVERIFIED
    assert loaded.predict(mlflow_models.churn_data(3)[0].to_dict("list")).outputs.shape == (3,)
    events = Events()
    cache = ModelCache(registry=store.registry, reload_seconds=3600, on_event=events)
    assert cache.get(name, "champion").version == 1 and events.of("serving.unverified_artifact") == []
    store.move(name, version)
    assert cache.refresh() == [(name, "champion", 1, version)]
    store.move(name, 1)
    assert cache.refresh() == [(name, "champion", version, 1)]
    store.move(name, version)
    assert cache.refresh() == [(name, "champion", 1, version)]
    assert events.of("serving.unverified_artifact") == [
        {"model": name, "alias": "champion", "version": version,
         "reason": "no sha256 recorded at training (trained before hashes were recorded); retrain to get one"}]


def test_a_legacy_version_is_served_through_leanops_and_audited_once(factory, workspace, leanops) -> None:
    """The same with LeanOps' DB: a training run that recorded no sha256 (and a version without the tag)."""
    from mlflow import MlflowClient

    from core.training import runs
    from db.models import TrainingRun

    v1, v2 = leanops
    with transaction(factory) as session:
        row = runs.row_for_version(session, model="m", version=v2, load=(TrainingRun.reference,))
        assert row is not None
        row.reference = {k: v for k, v in (row.reference or {}).items() if k != mlflow_store.MODEL_SHA256}
    uri = workspace.mlflow_uri
    MlflowClient(uri, uri).delete_model_version_tag("m", str(v2), mlflow_store.MODEL_SHA256_TAG)
    events = Events()
    cache = ModelCache(registry=workspace.registry, reload_seconds=3600, on_event=events, factory=factory,
                       settings=workspace)
    assert cache.get("m", "champion").version == v1
    moves.promote(factory, workspace, actor=APPROVER, model="m", version=v2)
    assert cache.refresh() == [("m", "champion", v1, v2)]
    moves.rollback(factory, workspace, actor=APPROVER, model="m")
    assert cache.refresh() == [("m", "champion", v2, v1)]
    moves.promote(factory, workspace, actor=APPROVER, model="m", version=v2)
    assert cache.refresh() == [("m", "champion", v1, v2)]  # loaded again, not reported again
    expected = {"model": "m", "alias": "champion", "version": v2, "reason": trust.UNVERIFIED}
    assert events.of("serving.unverified_artifact") == [expected]
    with factory() as session:
        audited = [e for e in session.scalars(select(AuditEvent)) if e.action == "serving.unverified_artifact"]
    assert [(e.actor, e.subject, e.details) for e in audited] == [("system:serving", "model:m", expected)]


# -- with LeanOps' DB: the alias history and the training record --------------------------------------------

@pytest.fixture
def leanops(factory, workspace) -> tuple[int, int]:
    """Model "m" trained twice by LeanOps: v1 promoted through LeanOps (champion), v2 the better challenger."""
    add_dataset(factory, workspace, small_churn(2000))
    v1 = trained(factory, workspace, **WEAKER)
    moves.promote(factory, workspace, actor=APPROVER, model="m", version=v1)
    return v1, trained(factory, workspace, **STRONGER)


def counted(calls: list[int]) -> Any:
    def loader(uri: str, **kw: Any) -> serving.LoadedModel:
        calls.append(kw["version"])
        return load_version(uri, **kw)

    return loader


def test_an_alias_moved_in_mlflow_is_never_served_and_one_sync_run_puts_it_back_audited_and_alerted(
        factory, workspace, leanops) -> None:
    from mlflow import MlflowClient

    from core.registry import projection

    v1, v2 = leanops
    events, calls = Events(), []
    cache = ModelCache(registry=workspace.registry, reload_seconds=3600, on_event=events, loader=counted(calls),
                       factory=factory, settings=workspace)
    assert cache.get("m", "champion").version == v1
    mlflow_client = MlflowClient(workspace.mlflow_uri, workspace.mlflow_uri)
    mlflow_client.set_registered_model_alias("m", "champion", str(v2))  # no gates, no approval, no audit

    for _ in range(3):
        assert cache.refresh() == []
    assert cache.peek("m", "champion").version == v1 and calls == [v1]  # v2 was never even loaded
    # A server starting now serves the champion LeanOps recorded, not MLflow's.
    assert ModelCache(registry=workspace.registry, reload_seconds=3600, factory=factory,
                      settings=workspace).get("m", "champion").version == v1

    done = projection.sync_aliases(factory, workspace)  # one run of the aliases.sync follow-up
    assert done["restored"] == [{"model": "m", "alias": "champion", "found": v2, "restored": v1}]
    assert workspace.registry.aliases("m")["champion"] == v1  # put back in MLflow
    assert projection.sync_aliases(factory, workspace)["restored"] == []  # and only once
    with factory() as session:
        audited = [e for e in session.scalars(select(AuditEvent)) if e.action == "model.alias_restored"]
        alerts = [a for a in notify.recent(session, 50, model="m") if "outside LeanOps" in a.title]
    assert [(e.actor, e.subject, e.details) for e in audited] == [
        ("system:alias-sync", "model:m", {"alias": "champion", "found": v2, "restored": v1})]
    assert len(alerts) == 1 and alerts[0].condition == "integrity" and alerts[0].severity == "critical"
    assert alerts[0].title == "m: @champion was moved in MLflow outside LeanOps; put back"
    assert "Serving never served it" in alerts[0].message

    moves.promote(factory, workspace, actor=APPROVER, model="m", version=v2)  # promoted the LeanOps way
    assert workspace.registry.aliases("m")["champion"] == v2  # projected at once, no alert
    assert cache.refresh() == [("m", "champion", v1, v2)]
    assert cache.peek("m", "champion").version == v2 and calls == [v1, v2]
    assert projection.sync_aliases(factory, workspace)["restored"] == []


def test_changed_files_and_versions_leanops_did_not_train_are_refused_even_when_promoted(
        factory, workspace, leanops, tmp_path: Path) -> None:
    v1, v2 = leanops
    events = Events()
    cache = ModelCache(registry=workspace.registry, reload_seconds=3600, on_event=events, factory=factory,
                       settings=workspace)
    assert cache.get("m", "champion").version == v1
    uri = workspace.mlflow_uri
    shutil.copyfile(files_of(uri, "m", v1) / "model.skops", files_of(uri, "m", v2) / "model.skops")
    # Whoever can change the files can change MLflow's tags too: the tag is not LeanOps' record.
    logged = mlflow_store.client(mlflow_store.MlflowStore(uri, "")).get_model_version("m", str(v2)).source
    mlflow_store.client(mlflow_store.MlflowStore(uri, "")).set_model_version_tag(
        "m", str(v2), mlflow_store.MODEL_SHA256_TAG, mlflow_models.files_sha256(uri, logged))
    moves.promote(factory, workspace, actor=APPROVER, model="m", version=v2)
    assert cache.refresh() == [] and cache.peek("m", "champion").version == v1
    failed = events.of("serving.reload_failed")
    assert [d["version"] for d in failed] == [v2]
    assert f"m v{v2} could not be loaded: its model files changed after training" in failed[0]["error"]
    with factory() as session:
        alerts = [a for a in notify.recent(session, 50, model="m") if a.condition == trust.CONDITION]
    assert [(a.title, a.severity, a.details["version"]) for a in alerts] == [
        (f"m: v{v2}'s model files refused", "critical", v2)]
    assert "its model files changed after training" in alerts[0].message and f"v{v1} keeps serving" in alerts[0].message

    marker = tmp_path / "pwned"
    evil = register_directly(uri, "m", log_payload_model(uri, str(workspace.artifacts), "cloudpickle", marker))
    with pytest.raises(NotFound, match="no LeanOps training run"):  # promotion itself refuses it, even forced
        moves.promote(factory, workspace, actor=cli_actor(), model="m", version=evil, force=True, reason="fooled")
    # Were a move to it recorded all the same (the alias rows written behind LeanOps' back), serving still
    # refuses a version LeanOps did not train.
    with transaction(factory) as session:
        state.move(session, actor=Actor("intruder", "admin"), model="m", alias="champion", to=evil, action="promote",
                   reason="")
    assert cache.refresh() == [] and cache.peek("m", "champion").version == v1
    assert not marker.exists(), "the model file's code ran"
    failed = events.of("serving.reload_failed")
    assert [d["version"] for d in failed] == [v2, evil]
    assert f"m v{evil} could not be loaded: LeanOps has no training run that made it" in failed[1]["error"]


def test_training_hashes_the_model_files_it_uploads_and_links_the_logged_model_to_its_run(factory, workspace) -> None:
    """The sha256 is taken from the files saved on the training machine, before upload (nothing is read back
    from the artifact store), and it is the hash of what the store then holds; the logged model stays linked
    to its run as ``mlflow.sklearn.log_model`` links it."""
    import tempfile

    from mlflow.models import Model

    from core.training import runs
    from db.models import TrainingRun

    add_dataset(factory, workspace, small_churn(2000))
    version = trained(factory, workspace, **STRONGER)
    with factory() as session:
        row = runs.row_for_version(session, model="m", version=version, load=(TrainingRun.reference,))
        assert row is not None
        recorded, run_id, model_uri = row.reference[mlflow_store.MODEL_SHA256], row.mlflow_run_id, row.model_uri
    mlflow_client = mlflow_store.client(mlflow_store.MlflowStore(workspace.mlflow_uri, ""))
    assert mlflow_client.get_model_version("m", str(version)).tags[mlflow_store.MODEL_SHA256_TAG] == recorded
    with tempfile.TemporaryDirectory() as tmp:
        copy = mlflow_store.download_model_files(
            mlflow_client.get_model_version_download_uri("m", str(version)), Path(tmp))
        assert mlflow_store.hash_directory(copy)[0] == recorded
        meta = Model.load(str(copy))
    logged = mlflow_client.get_logged_model(model_uri.removeprefix("models:/"))
    assert (meta.model_id, meta.run_id, meta.flavors["sklearn"]["serialization_format"]) == (
        logged.model_id, run_id, "skops")
    assert logged.source_run_id == run_id
    assert logged.model_id in [o.model_id for o in mlflow_client.get_run(run_id).outputs.model_outputs]
    assert "f1" in {m.key for m in logged.metrics or []}  # the run's metrics are the model's, as log_model links them
    assert load_version(workspace.registry, name="m", alias="champion", version=version).unverified is None
