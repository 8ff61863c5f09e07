"""Keeping MLflow's aliases a projection of LeanOps' own (the ``aliases.sync`` job).

Every alias move queues this job for its model, in the move's transaction; the ``alias-sync`` schedule
sweeps every model as well, so an alias someone moved by hand in MLflow is put back within one run even
when LeanOps moved nothing meanwhile. A put-back is audited (``model.alias_restored``, by ``state.sync``)
and alerted here once committed. Serving never served such a move: it reads LeanOps' DB.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.alerts import notify
from core.errors import LeanOpsError, StoreUnavailable
from core.platform.database import transaction
from core.registry import state
from core.settings import Settings

log = logging.getLogger("leanops.registry")


def sync_aliases(factory: sessionmaker[Session], settings: Settings, *, model: str | None = None) -> dict[str, Any]:
    """Project the DB's champion and challenger onto MLflow for ``model`` (None: every model LeanOps governs)."""
    if model is None:
        with factory() as session:
            models = state.models_to_sync(session)
    else:
        models = [model]
    restored: list[state.Restored] = []
    failed: list[str] = []
    for name in models:  # one model MLflow cannot take (gone, store down) does not stop the others
        try:
            with transaction(factory) as session:
                found = state.sync(session, settings.registry, model=name)
        except LeanOpsError as exc:
            failed.append(f"{name}: {exc}")
            continue
        restored += found
        for item in found:
            _alert(factory, settings, item)
    if failed:  # the job fails, says which, and is retried
        raise StoreUnavailable(f"MLflow's aliases of {len(failed)} model(s) could not be set: " + "; ".join(failed))
    return {"models": len(models), "restored": [asdict(r) for r in restored]}


def project_now(factory: sessionmaker[Session], settings: Settings, *, model: str) -> None:
    """Project a committed move onto MLflow at once, so ``models:/NAME@champion`` follows without waiting
    for a worker; on failure the queued ``aliases.sync`` job does it (never raises)."""
    try:
        sync_aliases(factory, settings, model=model)
    except Exception as exc:  # noqa: BLE001 - the follow-up job retries; the move itself is committed
        log.warning("MLflow's aliases of %s not updated yet (the aliases.sync job will): %s", model, exc)


def _alert(factory: sessionmaker[Session], settings: Settings, item: state.Restored) -> None:
    was = f"v{item.found}" if item.found is not None else "no version"
    back = f"v{item.restored}" if item.restored is not None else "nothing (LeanOps has no such alias)"
    try:
        notify.notify(factory, settings, condition=state.CONDITION, model=item.model, severity="critical",
                      title=f"{item.model}: @{item.alias} was moved in MLflow outside LeanOps; put back",
                      message=f"MLflow's alias @{item.alias} of {item.model} pointed at {was}, a move LeanOps did not "
                              f"make (no gates, approval or audit), so it was put back to {back}. Serving never "
                              "served it. To change the champion, promote or roll back on the Registry page.",
                      details=asdict(item))
    except Exception:  # noqa: BLE001 - the put-back is audited anyway
        log.exception("could not alert the put-back of %s@%s", item.model, item.alias)
