"""Serving models from the registry: load a version, warm it up, and follow its alias as it moves.

A ``ModelCache`` keeps one loaded model per (name, alias). A background thread checks the aliases
every few seconds (one cheap registry query each); when one moved, the new version is loaded and
warmed *before* it is swapped in, so requests never wait for a load and requests already holding
the old model finish on it. A version that fails to load leaves the old one serving and is
reported through ``on_event`` (the API turns that into an audit event, a metric and a log line).

Loading a model file can run code from it, so only what LeanOps vouches for is loaded (``trust``;
``Refused`` otherwise, before any of the file is deserialised): the ``sklearn`` flavour saved as
``skops``, read with LeanOps' own trusted types, from a temporary copy of the version's files that
still hashes to the sha256 recorded when LeanOps trained it (its training run's record in LeanOps'
DB when the cache has the DB, else the version's ``leanops.model_sha256`` tag). A version trained
before LeanOps recorded hashes has none: it is served if it passes every other check, and reported
once per version (``serving.unverified_artifact``), so upgrading LeanOps does not stop every model
already in production.

Which version an alias names comes from an ``AliasSource``: LeanOps' own record (``RecordedAliases``,
``core/registry/state.py``: the DB owns the aliases, MLflow's are a projection), so an alias moved by hand in
MLflow is never served; the ``aliases.sync`` job puts it back and alerts. Tools without LeanOps' DB follow
MLflow's aliases (``MlflowAliases``) and check files against the version's ``leanops.model_sha256`` tag.

A model already loaded is served from memory: the registry is not asked on the request path, so it keeps
serving while the registry is down. A request for a model not loaded yet waits at most ``load_timeout``
for it (``StoreUnavailable`` after that: a 503), and ``preload`` loads and warms every champion before the
API says it is ready, so the first request after a start costs what the hundredth does.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from core.errors import InvalidInput, NotFound, StoreUnavailable
from core.platform import mlflow_store
from core.platform.database import reading
from core.platform.registry_port import CHAMPION, RegistryPort
from core.serving import trust
from core.serving.signature import Columns, InputSchema
from core.serving.trust import Refused
from db.models import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from core.settings import Settings

Key = tuple[str, str]  # (model, alias)

log = logging.getLogger("leanops.serving")
# How long a request waits for a model that is not loaded yet (the registry lookup, the files, the load)
# before it is answered 503: MLflow retries an unreachable SQL store for over a minute. The load goes on
# in the background, and the next request finds it loaded.
LOAD_DEADLINE = 5.0
ALIAS_RULE = "letters, digits, '_' or '-', at most 64, starting with a letter or '_'"
ALIAS_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"  # the API's ``alias`` query schema says the same
_ALIAS_RE = re.compile(ALIAS_PATTERN)
EventSink = Callable[[str, dict[str, Any]], None]
RETRY_FAILED = 30.0  # seconds before a version that failed to load is tried again


@dataclass(frozen=True)
class Prediction:
    """What a model said about some rows: labels or values, and class probabilities when asked."""

    outputs: np.ndarray
    probabilities: np.ndarray | None = None


@dataclass
class LoadedModel:
    """One registered model version, loaded and warmed, ready to predict."""

    name: str
    alias: str
    version: int
    model: Any  # the sklearn estimator (pipeline), as skops loaded it
    schema: InputSchema | None
    flavor: str
    classes: list[Any] | None
    loaded_at: datetime = field(default_factory=utcnow)
    unverified: str | None = None  # why its files' sha256 was not checked (None: they were)
    last_call: float = 0.0  # seconds its last micro-batch call took (bounds how long a batch waits: batching)
    file: bytes | None = field(default=None, repr=False)  # the vetted model file, when asked (``keep_file``)

    def predict(self, columns: Columns, *, probabilities: bool = False) -> Prediction:
        """Predict the rows of ``columns`` (arrays per column, already checked against the schema)."""
        import pandas as pd

        frame = self.schema.frame(columns) if self.schema is not None else pd.DataFrame(columns)
        try:
            outputs = np.asarray(self.model.predict(frame))
            proba = None
            if probabilities:
                if not self.can_explain:
                    raise InvalidInput(f"{self.name} v{self.version} gives no class probabilities "
                                       "(it is not a classifier with predict_proba)")
                proba = np.asarray(self.model.predict_proba(frame))
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidInput(f"{self.name} v{self.version} could not predict these records: "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if outputs.ndim > 1 and outputs.shape[1] == 1:
            outputs = outputs.ravel()
        return Prediction(outputs, proba)

    @property
    def can_explain(self) -> bool:
        return self.classes is not None and hasattr(self.model, "predict_proba")

    def warm(self, example: Columns | None) -> None:
        """Run one prediction so the first real request does not pay for lazy set-up."""
        columns = example if example is not None else (self.schema.example() if self.schema else None)
        if columns is None:
            return
        try:
            self.predict(columns, probabilities=self.can_explain)
        except InvalidInput:
            if example is not None:
                raise  # the model's own input example must work; a made-up row may not


def one_thread_per_call(model: Any) -> None:
    """Make the XGBoost and LightGBM parts of ``model`` predict on the calling thread alone: what serving wants.

    Serving predicts micro-batches of a few rows, several calls side by side (``batching``). XGBoost's and
    LightGBM's OpenMP threads spin-wait between calls, taking the CPU the event loop needs: an imported XGBoost
    pipeline went from 1.11 to 0.69 ms of server CPU per single-record request (934 → 1,270 requests/s at
    concurrency 16 on two cores; ``OMP_WAIT_POLICY=PASSIVE`` instead gave 0.83 ms and 1,066 requests/s). So their
    estimators (in a pipeline or not) and bare boosters get one thread: a single 10,000-record request to such a
    model predicts on one core. scikit-learn's own ``n_jobs`` (joblib, no spinning) stays. Batch scoring and drift
    checks predict big chunks and keep the model's own setting. Only the loaded copy changes: the files (and their
    sha256) stay as they are.
    """
    from core.training.boosters import BoosterModel

    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}

    def openmp(key: str) -> bool:
        owner = params.get(key.rsplit("__", 1)[0]) if "__" in key else model
        return type(owner).__module__.split(".")[0] in ("xgboost", "lightgbm")

    jobs = {k: 1 for k, v in params.items() if k.rsplit("__", 1)[-1] == "n_jobs" and v != 1 and openmp(k)}
    if jobs:
        model.set_params(**jobs)
    for part in (model, *params.values()):
        if isinstance(part, BoosterModel):
            part.one_thread()


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS_RE.match(alias):
        raise InvalidInput(f"alias {alias!r} is not allowed: use {ALIAS_RULE} (e.g. champion, challenger)")
    return alias


def resolve(registry: RegistryPort, source: AliasSource, *, name: str, alias: str) -> int:
    """The version ``alias`` points at. NotFound names what is missing: the model or the alias."""
    version = source.versions([(name, alias)]).get((name, alias))
    if version is not None:
        return version
    if not registry.has_model(name):
        raise NotFound(f"no registered model named {name!r}")
    raise NotFound(f"model {name!r} has no version with alias {alias!r}"
                   + ("; promote a version first" if alias == CHAMPION else ""))


def load_version(registry: RegistryPort, *, name: str, alias: str, version: int, expected_sha256: str | None = None,
                 from_tag: bool = True, keep_file: bool = False) -> LoadedModel:
    """Load ``name`` v``version`` from the registry and warm it up, if it is a model LeanOps vouches for.

    The version's files are copied to a temporary folder and checked there before anything in them is
    deserialised (``trust.vetted``): the ``sklearn`` flavour saved as ``skops``, files hashing to
    ``expected_sha256`` (the sha256 recorded at training). Without it, ``from_tag`` reads the version's
    ``leanops.model_sha256`` tag; the cache, which has LeanOps' own record, passes False (a tag anyone with
    MLflow access can set is not a record). The model is then read from that copy with LeanOps' own trusted
    types. A version with no recorded sha256 (trained before LeanOps recorded one) is loaded all the same,
    its ``unverified`` saying so.

    Raises:
        Refused: another format or flavour, files changed since training, or types LeanOps does not trust.
        StoreUnavailable: the version's files are missing or cannot be loaded.
    """
    label = f"{name} v{version}"
    with tempfile.TemporaryDirectory(prefix="leanops-model-") as tmp:
        try:
            info, local = registry.download(name, version, Path(tmp))
        except NotFound:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to copy the files means "cannot serve this version"
            raise StoreUnavailable(f"{label} could not be loaded: its files could not be read: "
                                   f"{type(exc).__name__}: {exc}") from exc
        recorded = expected_sha256 or (info.tags.get(mlflow_store.MODEL_SHA256_TAG) if from_tag else None) or None
        meta, model_file = trust.vetted(local, label=label, recorded=recorded)
        model = trust.load_skops(model_file, label=label)
        example = _input_example(meta, str(local))
        kept = model_file.read_bytes() if keep_file else None
    names = getattr(model, "feature_names_in_", None)
    schema = InputSchema.from_mlflow(meta.signature, names)
    classes = getattr(model, "classes_", None)
    loaded = LoadedModel(name=name, alias=alias, version=version, model=model, schema=schema, flavor="sklearn",
                         classes=list(np.asarray(classes).tolist()) if classes is not None else None,
                         unverified=None if recorded else trust.UNVERIFIED, file=kept)
    try:
        loaded.warm(example)
    except Exception as exc:  # noqa: BLE001
        raise StoreUnavailable(f"{name} v{version} loaded but failed its warm-up prediction: {exc}") from exc
    return loaded


def _input_example(meta: Any, location: str) -> Columns | None:
    if meta.saved_input_example_info is None or meta.signature is None:
        return None
    try:
        frame = meta.load_input_example(location)
    except Exception:  # noqa: BLE001 - an unreadable example only costs the warm-up
        return None
    if frame is None or not hasattr(frame, "to_dict"):
        return None
    schema = InputSchema.from_mlflow(meta.signature)
    records = frame.to_dict("records")
    return schema.coerce(records).columns if schema is not None else None


class AliasSource(Protocol):
    """Where the served aliases point."""

    def versions(self, keys: list[Key]) -> dict[Key, int]: ...

    def champions(self) -> dict[str, int]: ...


class RecordedAliases:
    """LeanOps' own record of the aliases (its DB owns them): what LeanOps serves."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def versions(self, keys: list[Key]) -> dict[Key, int]:
        from core.registry import state

        with reading(self.factory) as session:
            return state.current_many(session, keys)

    def champions(self) -> dict[str, int]:
        from core.registry import state

        with reading(self.factory) as session:
            return state.champions(session)


class MlflowAliases:
    """MLflow's own aliases, for a tool serving straight from an MLflow store without LeanOps' DB."""

    def __init__(self, registry: RegistryPort) -> None:
        self.registry = registry

    def versions(self, keys: list[Key]) -> dict[Key, int]:
        found: dict[Key, int] = {}
        for model in sorted({m for m, _ in keys}):
            found |= {(model, alias): v for alias, v in self.registry.aliases(model).items() if (model, alias) in keys}
        return found

    def champions(self) -> dict[str, int]:
        return self.registry.champions()


Loader = Callable[..., LoadedModel]
_CACHES: weakref.WeakSet[ModelCache] = weakref.WeakSet()


def alias_moved(model: str) -> None:
    """Tell every model cache in this process that ``model``'s aliases moved (promotion, rollback)."""
    for cache_ in list(_CACHES):
        cache_.refresh(model)


class ModelCache:
    """Loaded models by (name, alias), following the aliases as they move.

    With ``factory`` and ``settings`` (LeanOps' metadata DB and its alert settings) the aliases are LeanOps'
    own record (``RecordedAliases``) and a version's files must hash to the sha256 its training run recorded
    (if it recorded one). Without them (tools that load one version), the aliases are followed as MLflow
    has them and the files are checked against the version's ``leanops.model_sha256`` tag.
    """

    def __init__(self, *, registry: RegistryPort, reload_seconds: float, on_event: EventSink | None = None,
                 loader: Loader = load_version, factory: sessionmaker[Session] | None = None,
                 settings: Settings | None = None, load_timeout: float | None = None) -> None:
        self.registry, self.reload_seconds, self.loader = registry, reload_seconds, loader
        self.load_timeout = load_timeout
        self.on_event = on_event if on_event is not None else (lambda kind, details: None)
        if factory is not None:
            assert settings is not None, "a cache on LeanOps' DB needs its settings (alerts)"
            self.record: trust.Record | None = trust.Record(factory, settings)
            self.source: AliasSource = RecordedAliases(factory)
        else:
            self.record, self.source = None, MlflowAliases(registry)
        self._models: dict[tuple[str, str], LoadedModel] = {}
        # A version that failed to load: reported once, retried every RETRY_FAILED seconds quietly.
        self._failed: dict[tuple[str, str], tuple[int, float]] = {}
        # Versions served without a recorded sha256 (trained before LeanOps recorded one): reported once each.
        self._unverified: set[tuple[str, int]] = set()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._loading: dict[tuple[str, str], Future[LoadedModel]] = {}  # loads in flight (``load_timeout``)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _CACHES.add(self)

    # -- reading ---------------------------------------------------------------------------------

    def peek(self, name: str, alias: str) -> LoadedModel | None:
        """The loaded model, without touching the registry (the hot path)."""
        return self._models.get((name, alias))

    def get(self, name: str, alias: str) -> LoadedModel:
        """The loaded model; loads it on first use (blocking: call from a worker thread).

        With ``load_timeout``, a caller waits that long for the load at most, then gets StoreUnavailable;
        the load goes on in its own thread (one per key however many callers wait) for the next caller.
        """
        found = self._models.get((name, alias))
        if found is not None:
            return found
        check_alias(alias)
        if self.load_timeout is None:
            return self.load(name, alias)
        with self._lock:
            future = self._loading.get((name, alias))
            if future is None:
                future = self._loading[(name, alias)] = Future()
                threading.Thread(target=self._load_into, args=((name, alias), future), daemon=True,
                                 name=f"leanops-load-{name}@{alias}").start()
        try:
            return future.result(timeout=self.load_timeout)
        except FutureTimeout:
            raise StoreUnavailable(f"the MLflow store did not answer within {self.load_timeout:g} s: {name}@{alias} "
                                   "is not loaded yet") from None

    def _load_into(self, key: tuple[str, str], future: Future[LoadedModel]) -> None:
        try:
            future.set_result(self.load(*key))
        except BaseException as exc:  # noqa: BLE001 - handed to every waiting caller
            future.set_exception(exc)
        finally:
            with self._lock:
                self._loading.pop(key, None)

    def preload(self, alias: str = CHAMPION) -> dict[str, dict[str, Any]]:
        """Load and warm ``alias`` of every model that has one, now (blocking); model → its state.

        A version refused (its files) or gone is reported in the state and not
        waited for: it would never load as things stand. StoreUnavailable (the registry or the files cannot
        be reached) propagates: the caller tries again, and is not ready meanwhile.
        """
        states: dict[str, dict[str, Any]] = {}
        self.registry.ping()  # no champion to load says nothing about a registry that cannot be reached
        for name, version in sorted(self.source.champions().items() if alias == CHAMPION else ()):
            try:
                loaded = self.load(name, alias)
            except (Refused, NotFound, InvalidInput) as exc:
                states[name] = {"version": version, "state": "refused", "reason": str(exc)[:500]}
                continue
            states[name] = {"version": loaded.version, "state": "loaded"}
        return states

    def load(self, name: str, alias: str) -> LoadedModel:
        """The loaded model, loading and warming it now if it is not (blocking, no deadline)."""
        found = self._models.get((name, alias))
        if found is not None:
            return found
        check_alias(alias)
        with self._key_lock((name, alias)):  # one load per key, however many requests wait for it
            found = self._models.get((name, alias))
            if found is None:
                version = resolve(self.registry, self.source, name=name, alias=alias)
                found = self._load((name, alias), version)
                self._swap((name, alias), found, previous=None)
            return found

    def served(self) -> dict[tuple[str, str], int]:
        return {key: m.version for key, m in list(self._models.items())}

    # -- following the aliases -------------------------------------------------------------------

    def refresh(self, name: str | None = None) -> list[tuple[str, str, int | None, int | None]]:
        """Check the aliases of the loaded models (or one model's) now; swap in the ones that moved.

        Returns (name, alias, from, to) for every swap made.
        """
        changes: list[tuple[str, str, int | None, int | None]] = []
        loaded = [(key, m) for key, m in list(self._models.items()) if name is None or key[0] == name]
        if not loaded:
            return changes
        try:
            now = self.source.versions([key for key, _ in loaded])
        except StoreUnavailable as exc:
            log.warning("alias check of %s failed: %s", ", ".join(f"{m}@{a}" for (m, a), _ in loaded), exc)
            return changes
        for key, current in loaded:
            version = now.get(key)
            if version == current.version:
                continue
            if version is None:  # the alias was removed: stop serving it
                with self._lock:
                    if self._models.get(key) is current:
                        del self._models[key]
                self.on_event("serving.alias_removed", {"model": key[0], "alias": key[1],
                                                        "version": current.version})
                changes.append((key[0], key[1], current.version, None))
                continue
            failed = self._failed.get(key)
            if failed is not None and failed[0] == version and time.monotonic() - failed[1] < RETRY_FAILED:
                continue
            try:
                new = self._load(key, version)
            except Exception as exc:  # noqa: BLE001 - keep serving the old version, and say so
                self._failed[key] = (version, time.monotonic())
                if failed is not None and failed[0] == version:
                    continue  # already reported
                log.error("could not load %s v%s for @%s; still serving v%s: %s", key[0], version, key[1],
                          current.version, exc)
                details = {"model": key[0], "alias": key[1], "version": version, "serving": current.version,
                           "error": str(exc)[:2000]}
                self.on_event("serving.reload_failed", details)
                if isinstance(exc, Refused) and self.record is not None:
                    self.record.refused_files(details)
                continue
            self._swap(key, new, previous=current)
            changes.append((key[0], key[1], current.version, version))
        return changes

    def _load(self, key: tuple[str, str], version: int) -> LoadedModel:
        if self.record is None:
            loaded = self.loader(self.registry, name=key[0], alias=key[1], version=version)
        else:
            # LeanOps' record of the files' sha256 (None: trained before it recorded one), never MLflow's tag.
            expected = self.record.sha256(key[0], version)
            loaded = self.loader(self.registry, name=key[0], alias=key[1], version=version, expected_sha256=expected,
                                 from_tag=False)
        if getattr(loaded, "model", None) is not None:
            one_thread_per_call(loaded.model)
        if getattr(loaded, "unverified", None):
            self._report_unverified(key, loaded)
        return loaded

    def _report_unverified(self, key: tuple[str, str], loaded: LoadedModel) -> None:
        """Report, once per version, that it is served without its files' sha256 checked."""
        with self._lock:
            if (key[0], loaded.version) in self._unverified:
                return
            self._unverified.add((key[0], loaded.version))
        details = {"model": key[0], "alias": key[1], "version": loaded.version, "reason": loaded.unverified}
        log.warning("serving %s v%s without checking its files: %s", key[0], loaded.version, loaded.unverified)
        if self.record is not None:
            try:
                self.record.note_unverified(details)
            except Exception:  # noqa: BLE001 - the log line and the event say it anyway
                log.exception("could not audit the unverified files of %s v%s", key[0], loaded.version)
        self.on_event("serving.unverified_artifact", details)

    def _swap(self, key: tuple[str, str], new: LoadedModel, previous: LoadedModel | None) -> None:
        with self._lock:
            self._models[key] = new
            self._failed.pop(key, None)
        log.info("serving %s@%s v%s%s", key[0], key[1], new.version,
                 f" (was v{previous.version})" if previous else "")
        self.on_event("serving.model_loaded", {"model": key[0], "alias": key[1], "version": new.version,
                                               "previous": previous.version if previous else None})

    def _key_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._follow, name="leanops-model-reload", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _follow(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            started = time.monotonic()
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the follower must survive anything; the next round retries
                log.exception("checking the served aliases failed")
            log.debug("alias check took %.3f s", time.monotonic() - started)
