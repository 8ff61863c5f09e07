"""Retraining a champion that was imported (``core.training.imports``) rather than trained from a LeanOps spec.

A scikit-learn estimator or pipeline (the XGBoost/LightGBM wrappers included) is refittable: the retrain loads
the champion through serving's trust path (its files must still hash to what was recorded at import), fits a
``sklearn.base.clone`` (same hyperparameters, no fitted state) on the newest certified version of its dataset,
and enters it like an import, gates included (audited ``model.refit``). A bare booster has no preprocessing and
no training recipe LeanOps could repeat: the retrain raises a ``retrain`` alert saying it needs a new import,
audits ``retrain.needs_import``, and ends without failing the job.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.actors import Actor, system_actor
from core.alerts import notify
from core.platform.database import transaction
from core.platform.registry_port import CHAMPION
from core.promotion import imports as promotion_imports
from core.serving import cache, trust
from core.settings import Settings
from core.training import imports, workflow
from db.models import TrainingRun

NEEDS_IMPORT = "needs a new import"


def record_of(session: Session, run: TrainingRun) -> imports.ImportRecord | None:
    """The import record of the champion's version (``run``: its training run); None for a trained one."""
    if run.model_kind != imports.KIND or run.model_version is None:
        return None
    return imports.of_version(session, model=run.model_name, version=run.model_version)


def needs_import(factory: sessionmaker[Session], settings: Settings, *, record: imports.ImportRecord, trigger: str,
                 reason: str, job_id: int | None, log: workflow.Log) -> dict[str, Any]:
    """The retrain of a champion that cannot be refitted: an alert and an audit event, not a failed job."""
    model, version = record.model, record.version
    why = (f"{model} v{version} is a {record.estimator} imported from {record.file_name}: LeanOps has no training "
           f"recipe to refit it on new data, so the {trigger} retrain ({reason}) {NEEDS_IMPORT}")
    with transaction(factory) as session:
        audit.record(session, system_actor("retrain"), "retrain.needs_import", f"model:{model}",
                     {"job_id": job_id, "trigger": trigger, "reason": reason, "champion": version,
                      "format": record.format, "estimator": record.estimator})
    notify.notify(factory, settings, condition="retrain", model=model, severity="warning",
                  title=f"{model}: champion v{version} {NEEDS_IMPORT}",
                  message=why + ". Train it again in the notebook on the newest data and import it "
                                "(Registry: Import a model; cli.py model import).",
                  details={"version": version, "trigger": trigger, "job_id": job_id, "outcome": "needs_import",
                           "format": record.format})
    log(why)
    return {"model": model, "model_name": model, "model_version": None, "from_version": version,
            "outcome": "needs_import", "trigger": trigger, "reason": reason, "message": why}


def refit(factory: sessionmaker[Session], settings: Settings, *, record: imports.ImportRecord, run: TrainingRun,
          dataset: str, actor: Actor, job_id: int | None, progress: workflow.Progress | None,
          log: workflow.Log) -> dict[str, Any]:
    """A clone of the imported champion fitted on the newest certified version of its dataset, entered and gated."""
    from sklearn.base import clone

    expected = trust.Record(factory, settings).sha256(record.model, record.version)
    loaded = cache.load_version(settings.registry, name=record.model, alias=CHAMPION, version=record.version,
                                expected_sha256=expected, from_tag=False)
    log(f"refitting a clone of {record.model} v{record.version} ({record.estimator}) with its hyperparameters")
    return promotion_imports.refit(factory, settings, actor=actor, champion=record, estimator=clone(loaded.model),
                                   features=[str(c) for c in loaded.model.feature_names_in_],
                                   dataset=dataset, target=run.target, sensitive=run.sensitive,
                                   job_id=job_id, progress=progress, log=log)
