"""Retention of the prediction log's table: rows, labels and refusals older than the retention period.

The Parquet partitions go by whole hours (``parquet.drop_partitions``); the retention job runs both.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit
from core.actors import Actor
from core.errors import InvalidInput
from core.platform.database import transaction
from db.models import Feedback, PredictionError, PredictionLog, utcnow


def purge(factory: sessionmaker[Session], *, actor: Actor, days: int, chunk: int = 5000,
          now: datetime | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Delete prediction log rows, feedback and refusals older than ``days``, ``chunk`` rows per transaction.

    Small transactions keep the database responsive for the API writing new rows meanwhile.
    """
    if days < 1:
        raise InvalidInput(f"retention of {days} days is not allowed; keep at least 1 day")
    from core.platform.prediction_log.parquet import request_id_before  # pyarrow: imported only when run

    cutoff = (now or utcnow()) - timedelta(days=days)
    deleted = {"predictions": 0, "feedback": 0, "errors": 0}
    # Labels go with their predictions, however recently they were given. A prediction not in the table may
    # be compacted rather than gone, so "not in the table" alone must not delete its label: it goes when its
    # request id says the prediction is older than the cutoff (its hour's partition goes in the same pass).
    orphaned = ~select(PredictionLog.id).where(PredictionLog.request_id == Feedback.request_id).exists()
    for key, table in (("predictions", PredictionLog), ("feedback", Feedback), ("errors", PredictionError)):
        expired = table.ts < cutoff
        if table is Feedback:
            expired = expired | (orphaned & request_id_before(Feedback.request_id, cutoff))
        while True:
            with transaction(factory) as session:
                ids = select(table.id).where(expired).order_by(table.id).limit(chunk)
                # a DML statement gives a CursorResult, typed as Result
                gone = cast(CursorResult[Any], session.execute(delete(table).where(table.id.in_(ids)))).rowcount or 0
            deleted[key] += gone
            if progress is not None:
                progress(sum(deleted.values()))
            if gone < chunk:
                break
    with transaction(factory) as session:
        audit.record(session, actor, "predictions.purged", "prediction_log",
                     {"days": days, "before": cutoff.isoformat(), **deleted})
    return {"before": cutoff.isoformat(), "days": days, **deleted}
