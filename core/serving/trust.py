"""What serving may load: model files LeanOps vouches for, and alias moves LeanOps recorded.

Loading a model file can run code from it, so before anything in a version's files is deserialised
they are checked (``vetted``): the ``sklearn`` flavour saved as ``skops``, never pickle, cloudpickle or
another flavour through pyfunc, and files that still hash to the sha256 recorded when LeanOps trained
the version. The model is then read with skops and LeanOps' own trusted types (``load_skops``), never
the list the artifact's MLmodel file carries.

Which version an alias names is not MLflow's to say either (anyone with access to MLflow can move its
alias): serving reads LeanOps' own record (``core/registry/state.py``), and the ``Record`` here holds each
training run's sha256 of its model files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.actors import system_actor
from core.errors import StoreUnavailable
from core.platform import mlflow_store

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from core.settings import Settings

log = logging.getLogger("leanops.serving")
ONLY = "LeanOps serves only skops sklearn models it trained"
ACTOR = system_actor("serving")
MLFLOW_META = "registered_model_meta"  # the file MLflow adds to a version's folder when it is loaded by its name
UNVERIFIED = "no sha256 recorded at training (trained before hashes were recorded); retrain to get one"
CONDITION = "integrity"  # the alert condition of refused model files


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
    """The estimator in a skops file, trusting only skops' defaults, LeanOps' own vetted types and the classes
    of the import allow-list (``core.training.model_files.allowed_type``: what an imported model may hold)."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    from core.training.model_files import allowed_type

    try:
        listed = skops.io.get_untrusted_types(file=path)  # lists the types without loading anything
        trusted = [*mlflow_store.SKOPS_TRUSTED_TYPES, *(t for t in listed if allowed_type(t))]
        model = skops.io.load(path, trusted=trusted)
    except UntrustedTypesFoundException as exc:
        raise Refused(f"{label} could not be loaded: its model file holds types LeanOps does not trust "
                      f"({str(exc)[:500]}); {ONLY}") from None
    except Exception as exc:  # noqa: BLE001 - any load failure means "cannot serve this version"
        raise StoreUnavailable(f"{label} could not be loaded: {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(model, "predict", None)):
        raise Refused(f"{label} could not be loaded: its model file holds a {type(model).__name__}, not an "
                      f"estimator; {ONLY}")
    return model


class Record:
    """What LeanOps itself recorded about what may be served: the sha256 of each version's model files
    (its training run's record in LeanOps' DB). Also audits and alerts what serving refused or could not check.
    """

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory, self.settings = factory, settings

    def sha256(self, name: str, version: int) -> str | None:
        """The sha256 of ``name`` v``version``'s model files recorded when LeanOps trained it.

        None when its training run recorded none (trained before LeanOps recorded hashes).

        Raises:
            Refused: LeanOps has no training run that made this version.
        """
        from core.platform.database import reading
        from core.training import runs
        from db.models import TrainingRun

        with reading(self.factory) as session:
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

    def refused_files(self, details: dict[str, Any]) -> None:
        """Alert model files refused although LeanOps moved the alias to their version (changed after
        training, or not a model LeanOps trained): someone with write access to the artifacts did this."""
        from core.alerts import notify

        name, version = details["model"], details["version"]
        title = f"{name}: v{version}'s model files refused"
        try:
            notify.notify(self.factory, self.settings, condition=CONDITION, model=name, severity="critical",
                          title=title, details=details,
                          message=f"{details['error']}. v{details['serving']} keeps serving." if details.get("serving")
                          else f"{details['error']}.")
        except Exception:  # noqa: BLE001 - the refusal is logged and reported anyway
            log.exception("could not alert: %s", title)
