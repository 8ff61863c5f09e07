"""Builders for the live-performance tests: a training run's row, and logged predictions with feedback."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import insert, update

from core.platform.database import transaction
from db.models import Feedback, PredictionLog, TrainingRun, utcnow


def add_run(factory, *, model="m", version=1, task="classification", metrics=None):
    with transaction(factory) as s:
        s.add(TrainingRun(dataset_name="d", dataset_version=1, dataset_sha256="0" * 64, model_name=model,
                          model_version=version, model_kind="linear", task=task, target="y", params={}, spec={},
                          seed=1, metrics=metrics or {}, status="succeeded", code_version="test",
                          created_by="sam"))


def log_predictions(factory, *, model="m", version=1, outputs, labels, start=None, labelled=None):
    """One request per record, a minute apart (oldest first); feedback for the first ``labelled``."""
    start = start or utcnow() - timedelta(days=1)
    labelled = len(labels) if labelled is None else labelled
    ids = [uuid.uuid4().hex for _ in outputs]
    with transaction(factory) as s:
        # A version serves only after its training run started (live performance reads no older hour): a run
        # made after these back-dated predictions is dated back before them.
        s.execute(update(TrainingRun)
                  .where(TrainingRun.model_name == model, TrainingRun.model_version == version,
                         TrainingRun.started_at > start).values(started_at=start - timedelta(hours=1)))
        s.execute(insert(PredictionLog), [
            {"request_id": rid, "record_index": 0, "ts": start + timedelta(minutes=i), "model": model,
             "alias": "champion", "version": version, "input_hash": "h", "inputs": {}, "output": out,
             "latency_ms": 1.0} for i, (rid, out) in enumerate(zip(ids, outputs, strict=True))])
        pairs = list(zip(ids, labels, strict=True))[:labelled]
        s.execute(insert(Feedback), [{"request_id": rid, "record_index": 0, "model": model, "label": lab,
                                      "created_by": "sam"} for rid, lab in pairs])
