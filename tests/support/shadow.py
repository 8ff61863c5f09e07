"""Shadow pairs logged as the API logs them: the champion's row and the challenger's ``shadow`` row of each
record, under one request id, with the two real versions' outputs (and, for the first records, labels)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from core.platform.database import transaction
from core.serving.cache import load_version
from db.models import Feedback, PredictionLog

FEATURES = ["customer_age", "tenure_months", "monthly_charges", "total_charges", "support_calls", "contract",
            "payment_method", "region", "gender", "senior"]


def log_pairs(factory, registry, frame: pd.DataFrame, *, ts: datetime, labelled: int = 0,
              champion: int = 1, challenger: int = 2) -> dict[int, np.ndarray]:
    """Log every row of ``frame`` (churn columns) as scored by both versions of ``churn``; the first
    ``labelled`` records get their true label as feedback. Returns each version's outputs."""
    outputs = {v: load_version(registry, name="churn", alias="test", version=v).model.predict(frame[FEATURES])
               for v in (champion, challenger)}
    records = frame[FEATURES].astype(object).where(frame[FEATURES].notna(), None).to_dict("records")  # JSON: no NaN
    records = [{k: (bool(v) if isinstance(v, np.bool_) else v) for k, v in r.items()} for r in records]
    with transaction(factory) as s:
        for i, record in enumerate(records):
            for alias, version, ms in (("champion", champion, 1.0), ("shadow", challenger, 2.0)):
                s.add(PredictionLog(request_id=f"r{i:04d}", record_index=0, ts=ts, model="churn", alias=alias,
                                    version=version, input_hash="x" * 64, inputs=record,
                                    output=int(outputs[version][i]), latency_ms=ms))
            if i < labelled:
                s.add(Feedback(request_id=f"r{i:04d}", record_index=0, model="churn", label=int(frame["churn"][i]),
                               created_by="admin"))
    return outputs
