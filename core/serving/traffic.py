"""What the dashboard shows of serving, read from the prediction log (the API may run elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from core.platform.prediction_log import reads
from core.platform.prediction_log.reads import PredictionView
from core.platform.storage import DataStore
from core.registry import state
from db.models import utcnow


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
    errors: int  # the model's own failures (5xx)
    error_rate: float | None  # model failures / all requests
    last_prediction_at: datetime | None
    client_errors: int = 0  # requests refused as the client's mistake (4xx: a missing column, a bad value)
    client_error_rate: float | None = None  # client errors / all requests


def traffic(session: Session, *, store: DataStore, window_minutes: int = 15, now: datetime | None = None,
            max_requests: int = 100_000) -> list[ModelTraffic]:
    """Per model: requests/s, p50/p95 latency, error rate over the last ``window_minutes``, and the version
    and time of its latest prediction, from the hot table and the partitions in ``store`` (the workspace's
    ``data_store``): a model quiet for an hour has all its predictions compacted."""
    now = now or utcnow()
    since = now - timedelta(minutes=window_minutes)
    per_request = reads.per_request(session, store, since=since, until=now + timedelta(seconds=1),
                                    limit=max_requests)
    errors = reads.errors_by_kind_since(session, since=since)
    # A name no model has (a typo'd URL, one 404) is never listed as a served model: only models that served
    # something in the window or that LeanOps knows (they have a champion) are.
    known = set(state.champions(session))
    latencies: dict[str, list[float]] = {}
    records: dict[str, int] = {}
    for model, _request, latency, rows in per_request:
        latencies.setdefault(model, []).append(latency)
        records[model] = records.get(model, 0) + rows
    seconds = window_minutes * 60
    out = []
    for model in sorted(set(latencies) | (set(errors) & known)):
        served = latencies.get(model, [])
        latest = next(iter(reads.recent(session, store=store, model=model, limit=1)), None)
        failed = errors.get(model, {}).get("model", 0)
        client = errors.get(model, {}).get("client", 0)
        total = len(served) + failed + client
        out.append(ModelTraffic(
            model=model, served_version=latest.version if latest else None, requests=len(served),
            records=records.get(model, 0), requests_per_second=round(len(served) / seconds, 3),
            p50_ms=round(float(np.percentile(served, 50)), 2) if served else None,
            p95_ms=round(float(np.percentile(served, 95)), 2) if served else None,
            errors=failed, error_rate=round(failed / total, 4) if total else None,
            last_prediction_at=latest.ts if latest else None, client_errors=client,
            client_error_rate=round(client / total, 4) if total else None))
    return out


def recent_predictions(session: Session, *, store: DataStore, limit: int = 20) -> list[PredictionView]:
    """The newest predictions of every model, hot or compacted."""
    return reads.recent(session, store=store, limit=limit)
