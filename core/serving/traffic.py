"""What the dashboard shows of serving, read from the prediction log (the API may run elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import desc, func, select
from sqlalchemy.orm import Session

from core.platform.aliases import SHADOW
from core.serving.predictions import PredictionView, recent
from db.models import PredictionError, PredictionLog, utcnow


@dataclass(frozen=True)
class ModelTraffic:
    """One model's serving over a recent window."""

    model: str
    served_version: int | None  # the version the latest logged prediction came from
    requests: int
    records: int
    requests_per_second: float
    p50_ms: float | None
    p95_ms: float | None
    errors: int
    error_rate: float | None  # refused requests / all requests
    last_prediction_at: datetime | None


def traffic(session: Session, *, window_minutes: int = 15, now: datetime | None = None,
            max_requests: int = 100_000) -> list[ModelTraffic]:
    """Per model: requests/s, p50/p95 latency, error rate over the last ``window_minutes``."""
    now = now or utcnow()
    since = now - timedelta(minutes=window_minutes)
    per_request = session.execute(
        select(PredictionLog.model, PredictionLog.request_id, func.max(PredictionLog.latency_ms), func.count())
        .where(PredictionLog.ts >= since, PredictionLog.alias != SHADOW)
        .group_by(PredictionLog.model, PredictionLog.request_id)
        .limit(max_requests)).all()
    errors = dict(session.execute(select(PredictionError.model, func.count()).where(PredictionError.ts >= since)
                                  .group_by(PredictionError.model)).all())
    latencies: dict[str, list[float]] = {}
    records: dict[str, int] = {}
    for model, _request, latency, rows in per_request:
        latencies.setdefault(model, []).append(latency)
        records[model] = records.get(model, 0) + rows
    seconds = window_minutes * 60
    out = []
    for model in sorted(set(latencies) | set(errors)):
        served = latencies.get(model, [])
        latest = session.execute(select(PredictionLog.version, PredictionLog.ts).where(PredictionLog.model == model,
                                                                                       PredictionLog.alias != SHADOW)
                                 .order_by(desc(PredictionLog.ts)).limit(1)).first()
        failed = errors.get(model, 0)
        total = len(served) + failed
        out.append(ModelTraffic(
            model=model, served_version=latest.version if latest else None, requests=len(served),
            records=records.get(model, 0), requests_per_second=round(len(served) / seconds, 3),
            p50_ms=round(float(np.percentile(served, 50)), 2) if served else None,
            p95_ms=round(float(np.percentile(served, 95)), 2) if served else None,
            errors=failed, error_rate=round(failed / total, 4) if total else None,
            last_prediction_at=latest.ts if latest else None))
    return out


def recent_predictions(session: Session, *, limit: int = 20) -> list[PredictionView]:
    return recent(session, limit=limit)
