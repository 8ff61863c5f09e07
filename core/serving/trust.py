"""What serving may load: model files LeanOps vouches for, and alias moves LeanOps recorded.

Loading a model file can run code from it, so before anything in a version's files is deserialised
they are checked (``vetted``): the ``sklearn`` flavour saved as ``skops``, never pickle, cloudpickle or
another flavour through pyfunc, and files that still hash to the sha256 recorded when LeanOps trained
the version. The model is then read with skops and LeanOps' own trusted types (``load_skops``), never
the list the artifact's MLmodel file carries.

MLflow's alias is not the authority either: anyone with access to MLflow can move it, skipping gates,
approvals and the audit log. The ``Ledger`` reads what LeanOps itself recorded in its metadata DB (the
alias history that promotion, rollback and registration write, and each training run's sha256 of its
model files) and audits and alerts an alias moved outside LeanOps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.actors import system_actor
from core.errors import StoreUnavailable
from core.platform import aliases, mlflow_store

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from core.settings import Settings

log = logging.getLogger("leanops.serving")
ONLY = "LeanOps serves only skops sklearn models it trained"
ACTOR = system_actor("serving")
MLFLOW_META = "registered_model_meta"  # the file MLflow adds to a version's folder when it is loaded by its name
UNVERIFIED = "no sha256 recorded at training (trained before hashes were recorded); retrain to get one"
CONDITION = "integrity"  # the alert condition of a refused alias move or refused model files


class Refused(StoreUnavailable):
    """LeanOps will not serve this version: its files or its alias move are not ones LeanOps vouches for.

    A ``StoreUnavailable`` (a request that has no other version to fall back on gets a 503) whose
    message says why: ``<name> v<n> could not be loaded: <reason>`` (``<name>@<alias> could not be
    loaded: …`` for an alias LeanOps did not move).
    """


def vetted(local: Path, *, label: str, recorded: str | None) -> tuple[Any, Path]:
    """The MLmodel metadata and the model file of a version copied to ``local``, if LeanOps may load it.

    Reads only the MLmodel file (YAML, safely parsed) and the files' bytes for the hash: nothing is
    deserialised here. No ``recorded`` sha256 (a version trained before LeanOps recorded one): the hash
    is not checked, the other checks are.

    Raises:
        Refused: another flavour or format, no model file, or files that no longer hash to ``recorded``.
    """
    from mlflow.models import Model

    try:
        meta = Model.load(str(local))
    except Exception as exc:  # noqa: BLE001 - no readable MLmodel: not a model LeanOps logged
        raise Refused(f"{label} could not be loaded: its MLmodel file is missing or unreadable "
                      f"({type(exc).__name__}); {ONLY}") from None
    flavors = dict(meta.flavors or {})
    if "sklearn" not in flavors:
        kinds = ", ".join(sorted(k for k in flavors if k != "python_function")) or "python_function"
        raise Refused(f"{label} could not be loaded: it is a {kinds} model, not an sklearn one; {ONLY}")
    conf = flavors["sklearn"] or {}
    form = str(conf.get("serialization_format") or "pickle")  # MLflow's own default for a missing entry
    if form != "skops":
        raise Refused(f"{label} could not be loaded: it is a {form} model (loading it would run code from its "
                      f"file); {ONLY}")
    file_name = str(conf.get("pickled_model") or "")
    model_file = local / file_name
    if not file_name or Path(file_name).name != file_name or not model_file.is_file():
        raise Refused(f"{label} could not be loaded: its MLmodel file names no model file inside the model "
                      f"({file_name!r}); {ONLY}")
    if recorded is None:
        return meta, model_file
    found, _ = mlflow_store.hash_directory(local)
    meta_file = local / MLFLOW_META
    if found != recorded and meta_file.is_file():
        # Written into a local store by whoever loaded ``models:/<name>/<version>`` with MLflow after training
        # (``mlflow models serve``, a notebook): MLflow's note of the name and version, never read by LeanOps.
        meta_file.unlink()  # from the copy
        found, _ = mlflow_store.hash_directory(local)
    if found != recorded:
        raise Refused(f"{label} could not be loaded: its model files changed after training (sha256 "
                      f"{found[:12]}…, recorded {recorded[:12]}…); {ONLY}")
    return meta, model_file


def load_skops(path: Path, *, label: str) -> Any:
    """The estimator in a skops file, trusting only skops' defaults and LeanOps' own vetted types."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        model = skops.io.load(path, trusted=list(mlflow_store.SKOPS_TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise Refused(f"{label} could not be loaded: its model file holds types LeanOps does not trust "
                      f"({str(exc)[:500]}); {ONLY}") from None
    except Exception as exc:  # noqa: BLE001 - any load failure means "cannot serve this version"
        raise StoreUnavailable(f"{label} could not be loaded: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(model, "predict", None)):
        raise Refused(f"{label} could not be loaded: its model file holds a {type(model).__name__}, not an "
                      f"estimator; {ONLY}")
    return model


class Ledger:
    """What LeanOps itself recorded, in its metadata DB, about what may be served.

    Where each alias should point: the newest row of the alias history (written by promotion, forced
    promotion, rollback and registration under the model's lock, in one unit with MLflow's move). And
    the sha256 of each version's model files: its training run's record.
    """

    def __init__(self, factory: sessionmaker[Session], *, mlflow_uri: str, settings: Settings | None = None) -> None:
        self.factory, self.uri, self.settings = factory, mlflow_uri, settings

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        from sqlalchemy.exc import DBAPIError

        from core.platform.database import describe_db_error

        try:
            with self.factory() as session:
                yield session
        except DBAPIError as exc:
            raise StoreUnavailable(describe_db_error(exc)) from exc

    def recorded(self, name: str, alias: str) -> int | None:
        """The version LeanOps last moved ``alias`` of ``name`` to (None: never, or removed)."""
        from core.promotion import moves

        with self._reading() as session:
            return _newest(moves.history(session, model=name, alias=alias, limit=1))

    def sha256(self, name: str, version: int) -> str | None:
        """The sha256 of ``name`` v``version``'s model files recorded when LeanOps trained it.

        None when its training run recorded none (trained before LeanOps recorded hashes).

        Raises:
            Refused: LeanOps has no training run that made this version.
        """
        from core.training import runs
        from db.models import TrainingRun

        with self._reading() as session:
            row = runs.row_for_version(session, model=name, version=version, load=(TrainingRun.reference,))
            found = (row.reference or {}).get(mlflow_store.MODEL_SHA256) if row is not None else None
        if row is None:
            raise Refused(f"{name} v{version} could not be loaded: LeanOps has no training run that made it "
                          f"(it was registered outside LeanOps); {ONLY}")
        return str(found) if found else None

    def note_unverified(self, details: dict[str, Any]) -> None:
        """Audit ``serving.unverified_artifact``: a version served without a recorded sha256 to check."""
        from core import audit
        from core.platform.database import transaction

        with transaction(self.factory) as session:
            audit.record(session, ACTOR, "serving.unverified_artifact", f"model:{details['model']}", details)

    def check_move(self, name: str, alias: str, version: int, serving: int | None) -> dict[str, Any] | None:
        """Decide, under the model's lock, whether MLflow's move of ``alias`` to ``version`` is LeanOps' own.

        The lock waits for a promotion in flight (its history row commits with it), so a move that is
        LeanOps' own is never taken for an outside one. Returns None when LeanOps recorded the move, or the
        alias has moved on meanwhile (look again next round); otherwise audits ``serving.alias_refused``,
        raises the alert once committed, and returns the refusal's details.
        """
        from core import audit
        from core.platform import locks
        from core.platform.database import transaction
        from core.promotion import moves

        with transaction(self.factory) as session:
            locks.hold(session, f"model:{name}")
            recorded = _newest(moves.history(session, model=name, alias=alias, limit=1))
            if recorded == version or aliases.get(self.uri, model=name, alias=alias) != version:
                return None
            details = {"model": name, "alias": alias, "version": version, "recorded": recorded, "serving": serving}
            audit.record(session, ACTOR, "serving.alias_refused", f"model:{name}", details)
        last = f"v{recorded}" if recorded is not None else "no version"
        if serving is not None:
            keeps = f"v{serving} keeps serving"
        elif alias == aliases.CHAMPION and recorded is not None:
            keeps = f"a starting server serves {last}"
        else:
            keeps = "nothing is served for it"
        self._alert(name, title=f"{name}: @{alias} moved to v{version} outside LeanOps; refused",
                    message=f"MLflow's alias @{alias} of {name} points at v{version}, but LeanOps recorded no such "
                            f"move (its last move of @{alias} was to {last}), so serving refuses it and {keeps}. "
                            "Promote the version through LeanOps, or put the alias back.", details=details)
        return details

    def refused_files(self, details: dict[str, Any]) -> None:
        """Alert model files refused although LeanOps recorded the move to their version (changed after
        training, or not a model LeanOps trained): someone with write access to the artifacts did this."""
        name, version = details["model"], details["version"]
        self._alert(name, title=f"{name}: v{version}'s model files refused",
                    message=f"{details['error']}. v{details['serving']} keeps serving." if details.get("serving")
                    else f"{details['error']}.", details=details)

    def _alert(self, name: str, *, title: str, message: str, details: dict[str, Any]) -> None:
        from core.alerts import notify

        try:
            notify.notify(self.factory, self.settings or notify.settings_for(None), condition=CONDITION,
                          model=name, severity="critical", title=title, message=message, details=details)
        except Exception:  # noqa: BLE001 - the refusal is audited and logged anyway
            log.exception("could not alert: %s", title)


def _newest(rows: list[Any]) -> int | None:
    return rows[0].to_version if rows else None
