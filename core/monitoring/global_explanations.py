"""What the model leans on, then and now: mean |contribution| per input column over a sample of the training data
(the reference) and of the logged predictions of a recent window (the current), with the champion's explanation
method (``core.serving.explain``). A column whose share grows is one the model now relies on more."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from core.errors import NotFound
from core.platform.database import reading
from core.settings import Settings
from db.models import utcnow

SAMPLE = 300  # records explained per side: mean |contribution| settles well before this


@dataclass(frozen=True)
class GlobalExplanation:
    model: str
    version: int
    table: pd.DataFrame  # column, reference, current (mean |contribution|), change
    reference_rows: int
    current_rows: int
    explained: str
    method: str


def mean_contributions(factory: sessionmaker[Session], settings: Settings, *, model: str, hours: float = 24,
                       sample: int = SAMPLE) -> GlobalExplanation:
    """Mean |contribution| per column of ``model``'s champion on its training data and on the last ``hours`` of
    logged predictions (each a random sample of at most ``sample`` records).

    Raises:
        NotFound: no champion, or no training run to take the reference from.
    """
    from core.data import datasets
    from core.platform.prediction_log import reads
    from core.registry import state
    from core.serving import batch
    from core.serving.explain import explain
    from core.training import runs

    with reading(factory) as session:
        version = state.current(session, model=model).get("champion")
        if version is None:
            raise NotFound(f"{model} has no champion to explain")
        run = runs.row_for_version(session, model=model, version=version)
        if run is None:
            raise NotFound(f"{model} v{version} has no LeanOps training run: no reference data to explain")
        _, training = datasets.load_frame(session, store=settings.data_store,
                                          ref=f"{run.dataset_name}:{run.dataset_version}", verify=False)
    loaded = batch.load_model(factory, settings, model=model, version=version)
    names = loaded.schema.names if loaded.schema is not None else [c for c in training.columns]
    reference = training[[c for c in names if c in training.columns]]
    reference = reference.sample(min(sample, len(reference)), random_state=0) if len(reference) else reference
    window = reads.window(factory, settings.data_store, model=model, since=utcnow() - timedelta(hours=hours),
                          features=names)
    current = window[[c for c in names if c in window.columns]]
    current = current.sample(min(sample, len(current)), random_state=0) if len(current) else current

    def mean_abs(frame: pd.DataFrame) -> tuple[dict[str, float], Any]:
        if frame.empty:
            return {}, None
        schema = loaded.schema
        rows = schema.frame(schema.coerce(_records(frame)).columns) if schema is not None else frame
        why = explain(loaded.model, rows)
        return dict(zip(why.columns, np.abs(why.values).mean(axis=0).tolist(), strict=True)), why

    ref, why = mean_abs(reference)
    cur, why_now = mean_abs(current)
    table = pd.DataFrame({"column": names, "reference": [ref.get(c) for c in names],
                          "current": [cur.get(c) for c in names]})
    table["change"] = table["current"] - table["reference"]
    table = table.sort_values("reference", ascending=False, ignore_index=True)
    found = why or why_now
    return GlobalExplanation(model, version, table, len(reference), len(current),
                             found.explained if found else "", found.method if found else "")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-like records (missing values as None), as a request's records are."""
    return [{k: (None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else v)
             for k, v in row.items()} for row in frame.astype(object).to_dict("records")]
