"""The model cache against a real MLflow registry: load, follow the alias, keep serving through failures."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.errors import InvalidInput, NotFound
from core.serving import cache as serving
from core.serving.cache import ModelCache, load_version
from tests.support import mlflow_models


@pytest.fixture(scope="module")
def store() -> mlflow_models.Store:
    return mlflow_models.store()


@pytest.fixture
def name(store: mlflow_models.Store) -> str:
    name = store.fresh_name()
    store.register("lr", name)
    store.register("rf20", name)
    store.move(name, 1)
    return name


class Events(list):
    def __call__(self, kind: str, details: dict) -> None:
        self.append((kind, details))

    def kinds(self) -> list[str]:
        return [k for k, _ in self]


def test_loads_the_champion_once_and_predicts(store, name: str) -> None:
    calls: list[int] = []

    def counting_loader(uri, **kw) -> serving.LoadedModel:  # the real loader, counted
        calls.append(kw["version"])
        return load_version(uri, **kw)

    events = Events()
    cache = ModelCache(registry=store.registry, reload_seconds=60, on_event=events, loader=counting_loader)
    assert cache.peek(name, "champion") is None
    threads = [threading.Thread(target=cache.get, args=(name, "champion")) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    model = cache.get(name, "champion")
    assert calls == [1] and model.version == 1 and model.flavor == "sklearn"
    assert model.classes == [0, 1] and model.schema.typed
    assert cache.served() == {(name, "champion"): 1}
    assert events.kinds() == ["serving.model_loaded"]
    columns = model.schema.coerce(mlflow_models.records(4)).columns
    result = model.predict(columns, probabilities=True)
    assert result.outputs.shape == (4,) and result.probabilities.shape == (4, 2)


def test_refresh_swaps_in_the_new_version_and_leaves_the_old_object_alone(store, name: str) -> None:
    events = Events()
    cache = ModelCache(registry=store.registry, reload_seconds=60, on_event=events)
    old = cache.get(name, "champion")
    assert cache.refresh() == []
    store.move(name, 2)
    assert cache.refresh() == [(name, "champion", 1, 2)]
    assert cache.peek(name, "champion").version == 2
    assert old.version == 1  # a request holding it finishes on it
    old.predict(old.schema.coerce(mlflow_models.records(1)).columns)
    assert events[-1] == ("serving.model_loaded", {"model": name, "alias": "champion", "version": 2, "previous": 1})


def test_the_follower_thread_picks_up_a_promotion(store, name: str) -> None:
    cache = ModelCache(registry=store.registry, reload_seconds=0.1)
    cache.get(name, "champion")
    cache.start()
    try:
        store.move(name, 2)
        from tests.support.waiting import wait_until

        wait_until(lambda: cache.peek(name, "champion").version == 2, timeout=5)
    finally:
        cache.stop()


def test_alias_moved_hook_refreshes_at_once(store, name: str) -> None:
    cache = ModelCache(registry=store.registry, reload_seconds=3600)
    cache.get(name, "champion")
    store.move(name, 2)
    serving.alias_moved(name)
    assert cache.peek(name, "champion").version == 2


def test_a_version_that_fails_to_load_is_reported_once_and_the_old_one_serves(store, name: str) -> None:
    from mlflow import MlflowClient

    broken = store.register_uri(mlflow_models.log_model(store.uri, store.artifacts, "lr"), name)
    location = Path(MlflowClient(store.uri, store.uri).get_model_version_download_uri(name, str(broken)))
    (location / "model.skops").write_bytes(b"garbage")
    events = Events()
    cache = ModelCache(registry=store.registry, reload_seconds=60, on_event=events)
    cache.get(name, "champion")
    store.move(name, broken)
    assert cache.refresh() == [] and cache.refresh() == []
    assert cache.peek(name, "champion").version == 1
    failed = [d for k, d in events if k == "serving.reload_failed"]
    assert len(failed) == 1 and failed[0]["version"] == broken and failed[0]["serving"] == 1
    assert "could not be loaded" in failed[0]["error"]
    store.move(name, 2)
    assert cache.refresh() == [(name, "champion", 1, 2)]
    fresh = ModelCache(registry=store.registry, reload_seconds=60)
    store.move(name, broken)
    from core.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable, match=f"v{broken} could not be loaded"):
        fresh.get(name, "champion")  # nothing to fall back on: 503, not a crash


def test_a_removed_alias_stops_being_served(store, name: str) -> None:
    events = Events()
    cache = ModelCache(registry=store.registry, reload_seconds=60, on_event=events)
    store.move(name, 2, alias="challenger")
    cache.get(name, "challenger")
    store.move(name, None, alias="challenger")
    assert cache.refresh() == [(name, "challenger", 2, None)]
    assert cache.peek(name, "challenger") is None and "serving.alias_removed" in events.kinds()
    with pytest.raises(NotFound, match="no version with alias 'challenger'"):
        cache.get(name, "challenger")


def test_unknown_names_and_bad_aliases(store) -> None:
    cache = ModelCache(registry=store.registry, reload_seconds=60)
    with pytest.raises(NotFound, match="no registered model named 'ghost'"):
        cache.get("ghost", "champion")
    with pytest.raises(InvalidInput, match="alias"):
        cache.get("ghost", "not an alias")
