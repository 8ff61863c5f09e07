"""A model name stands for one question: its target, task and input schema are bound at its first version.

Without this a new dataset version with one more column could make the next "version" of the
classifier ``credit`` a regressor on another column, served beside the classifier champion. So a
new version must predict the same target with the same task as the model's first version (else:
train under a new model name), and a change of its input columns (added, removed, or of another
kind) is refused unless the spec confirms it (``allow_schema_change``). The schema is compared
with the model's newest version, so a change confirmed once is the model's schema from then on.

Checked when a run is queued (``pipeline.launch``), when the data is loaded in the workflow, and
again under the model's lock in the transaction that records a new version: two queued jobs that
race for a new model name cannot both bind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import desc, func, select
from sqlalchemy.orm import Session

from core.data import datasets
from core.errors import InvalidInput
from core.platform import locks
from core.training.spec import TrainingSpec
from db.models import TrainingRun

NUMBER, TEXT, DATETIME = "number", "text", "date/time"


@dataclass(frozen=True)
class Binding:
    """What a model name stands for: its first version's target and task, its newest version's inputs."""

    model: str
    first_version: int
    target: str
    task: str
    schema_version: int
    schema: Mapping[str, str] | None  # input column → number | text | date/time (None: data no longer known)


def column_kind(dtype: str) -> str:
    """The kind of a column as the pipeline treats it, from its pandas dtype name."""
    import pandas as pd

    try:
        parsed = pd.api.types.pandas_dtype(dtype)
    except TypeError:
        return TEXT
    if pd.api.types.is_datetime64_any_dtype(parsed) or pd.api.types.is_timedelta64_dtype(parsed):
        return DATETIME
    return NUMBER if pd.api.types.is_numeric_dtype(parsed) else TEXT


def input_schema(dtypes: Mapping[str, str], *, target: str, exclude: Sequence[str] = ()) -> dict[str, str]:
    """The input columns a spec takes from a dataset version (all but the target and excluded ones)."""
    return {column: column_kind(dtype) for column, dtype in dtypes.items()
            if column != target and column not in exclude}


def binding(session: Session, *, model: str) -> Binding | None:
    """The facts model ``model`` is bound to; None for a name without a version yet."""
    registered = (TrainingRun.model_name == model, TrainingRun.model_version.is_not(None),
                  TrainingRun.status == "succeeded")
    first = session.scalar(select(func.min(TrainingRun.model_version)).where(*registered))
    if first is None:
        return None
    bound = session.scalar(select(TrainingRun).where(*registered, TrainingRun.model_version == first)
                           .order_by(desc(TrainingRun.id)).limit(1))
    newest = session.scalar(select(TrainingRun).where(*registered).order_by(desc(TrainingRun.model_version))
                            .limit(1))
    assert bound is not None and newest is not None and newest.model_version is not None  # min() found a row
    schema = None
    data = (datasets.version_by_id(session, version_id=newest.dataset_version_id) if newest.dataset_version_id
            else None)
    if data is not None:
        excluded = session.scalar(select(TrainingRun.spec).where(TrainingRun.id == newest.id)) or {}
        schema = input_schema(data.dtypes, target=newest.target, exclude=excluded.get("exclude") or ())
    return Binding(model=model, first_version=first, target=bound.target, task=bound.task,
                   schema_version=newest.model_version, schema=schema)


def schema_changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """What differs between two input schemas, in words (empty: the same)."""
    added = [c for c in after if c not in before]
    removed = [c for c in before if c not in after]
    changed = [f"{c} ({before[c]} → {after[c]})" for c in after if c in before and before[c] != after[c]]
    return ([f"added: {', '.join(added)}"] if added else []) + (
        [f"removed: {', '.join(removed)}"] if removed else []) + (
        [f"changed kind: {', '.join(changed)}"] if changed else [])


def check(bound: Binding | None, spec: TrainingSpec, *, schema: Mapping[str, str], task: str | None = None) -> None:
    """Refuse ``spec`` as a new version of ``bound`` if it predicts something else or silently takes other inputs.

    ``task`` is the task the run will train (the spec's, or the one detected from the data); an
    ``auto`` task not yet detected is left to the later check.
    """
    if bound is None:
        return
    task = task or (spec.task if spec.task != "auto" else None)
    if spec.target != bound.target or (task is not None and task != bound.task):
        asked = f"target {spec.target!r}" + (f" ({task})" if task else "")
        raise InvalidInput(f"model {bound.model!r} predicts target {bound.target!r} ({bound.task}) since its "
                           f"version {bound.first_version}; this run asks for {asked}. A model name keeps its "
                           "target and task: train under a new model name instead")
    if bound.schema is None or spec.allow_schema_change:
        return
    changes = schema_changes(bound.schema, schema)
    if changes:
        raise InvalidInput(f"the input columns of {bound.model!r} would change from its version "
                           f"{bound.schema_version} ({'; '.join(changes)}); confirm the schema change "
                           "(allow_schema_change; CLI --allow-schema-change; Training page checkbox) "
                           "or train under a new model name")


def check_for_data(session: Session, spec: TrainingSpec, *, dtypes: Mapping[str, str], task: str | None = None,
                   lock: bool = False) -> None:
    """``check`` against the model's stored binding, for a run on data with these ``dtypes``.

    ``lock`` holds the model's binding lock for the rest of the transaction first (the recording
    transaction of a new version), so two runs cannot both bind a new name.
    """
    if lock:
        locks.hold(session, f"model-binding:{spec.registered_name}"[:255])
    check(binding(session, model=spec.registered_name), spec,
          schema=input_schema(dtypes, target=spec.target, exclude=spec.exclude), task=task)


def schema_changes_for(session: Session, *, model: str, ref: str, target: str, exclude: Sequence[str] = ()
                       ) -> list[str]:
    """How a run on dataset version ``ref`` would change model ``model``'s input columns (for the form)."""
    from core.data import datasets

    bound = binding(session, model=model)
    if bound is None or bound.schema is None:
        return []
    dtypes = datasets.resolve(session, ref=ref).dtypes
    return schema_changes(bound.schema, input_schema(dtypes, target=target, exclude=exclude))
