"""Training: launching a spec, checking its data, and the sklearn pipeline that is fit on raw columns.

The pipeline is ``ColumnTransformer(numeric: impute + scale; categorical: impute + one-hot ignoring
unknown categories) → estimator``, so the logged model takes raw records (text categories, missing
values) and returns predictions. Evaluation lives in ``core.training.evaluation``, MLflow in
``core.platform.mlflow_store``, the order of the steps in ``core.training.workflow``.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from core.accounts.auth import require
from core.actors import Actor
from core.data import datasets
from core.errors import InvalidInput
from core.platform import job_queue
from core.training import integrity
from core.training.catalog import ModelKind, check_params, detect_task, get_kind
from core.training.spec import TrainingSpec, check_columns
from db.models import Job

Progress = Callable[[float, str], None]
MIN_TRAIN_ROWS = 10
MIN_TEST_ROWS = 5
ID_MIN_DISTINCT, ID_SHARE = 100, 0.5  # a text column with more distinct values than both is an identifier
PRIMARY_SCORING = {"classification": "f1_macro", "regression": "r2"}


def _noop(fraction: float, stage: str) -> None:
    return None


# -- launching -----------------------------------------------------------------------------------

def launch(session: Session, *, actor: Actor, spec: TrainingSpec) -> Job:
    """Check the spec against the dataset, pin its version, and queue a ``train`` job. Returns at once."""
    require(session, actor, "training.launch", f"dataset:{spec.dataset_name}")
    version = datasets.resolve(session, ref=spec.dataset)
    check_columns(spec, version.columns, version.ref)
    integrity.check_for_data(session, spec, dtypes=version.dtypes)
    pinned = replace(spec, dataset=version.ref)
    return job_queue.enqueue(session, actor=actor, kind="train", params=pinned.as_dict())


# -- data ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    """The checked training data: features as raw columns, the target, and what kind of columns they are."""

    X: pd.DataFrame
    y: pd.Series
    task: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    classes: tuple[Any, ...]
    sensitive: pd.Series | None
    notes: tuple[str, ...]


def prepare(frame: pd.DataFrame, spec: TrainingSpec, *, ref: str) -> Prepared:
    """Check ``frame`` against the spec; every refusal names the columns and says what to change."""
    columns = [str(c) for c in frame.columns]
    check_columns(spec, columns, ref)
    notes: list[str] = []
    y_all = frame[spec.target]
    keep = y_all.notna().to_numpy()
    if not keep.all():
        notes.append(f"{int((~keep).sum())} rows without a target value were left out")
    data = frame.loc[keep].reset_index(drop=True)
    y = data[spec.target]
    if data.empty:
        raise InvalidInput(f"target {spec.target!r} has no values in {ref}")
    task = spec.task if spec.task != "auto" else detect_task(y)
    classes: tuple[Any, ...] = ()
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise InvalidInput(f"target {spec.target!r} is {y.dtype} (e.g. {y.iloc[0]!r}); regression needs a "
                               "numeric target: choose task classification or another column")
        y = y.astype(float)
    else:
        counts = y.value_counts()
        if len(counts) < 2:
            only = _plain(counts.index[0])
            raise InvalidInput(f"target {spec.target!r} has one class ({only!r}) in all {len(y)} rows; "
                               "classification needs at least two")
        rare = counts[counts < 2]
        if len(rare):
            shown = ", ".join(repr(_plain(v)) for v in rare.index[:10])
            raise InvalidInput(f"target {spec.target!r} has {len(rare)} class(es) with a single row ({shown}); "
                               "a stratified split needs at least 2 rows per class — use more data, or regression "
                               "if the target is a measurement")
        classes = tuple(sorted(counts.index.tolist(), key=str))
    features = [c for c in columns if c != spec.target and c not in spec.exclude]
    dropped = [c for c in features if pd.api.types.is_datetime64_any_dtype(data[c])
               or pd.api.types.is_timedelta64_dtype(data[c])]
    if dropped:
        notes.append(f"date/time column(s) {', '.join(dropped)} were left out (the pipeline does not use them)")
        features = [c for c in features if c not in dropped]
    if not features:
        raise InvalidInput(f"no feature columns are left in {ref} after the target and the excluded columns")
    empty = [c for c in features if data[c].isna().all()]
    constant = [c for c in features if c not in empty and data[c].nunique(dropna=True) <= 1]
    if empty or constant:
        parts = ([f"all-null: {', '.join(empty)}"] if empty else []) + (
            [f"constant: {', '.join(constant)}"] if constant else [])
        flags = " ".join(f"--exclude {c}" for c in empty + constant)
        raise InvalidInput(f"column(s) carry no signal in {ref} ({'; '.join(parts)}); exclude them "
                           f"(Training page: 'Exclude columns'; CLI: {flags})")
    X = data[features]
    numeric = tuple(c for c in features if pd.api.types.is_numeric_dtype(X[c]))
    infinite = [c for c in (*numeric, spec.target) if pd.api.types.is_float_dtype(data[c])
                and np.isinf(data[c].to_numpy()).any()]
    if infinite:
        raise InvalidInput(f"column(s) {', '.join(infinite)} in {ref} hold infinite values, which no model can "
                           "use; replace them in a new dataset version, or exclude the columns")
    categorical = tuple(c for c in features if c not in numeric)
    # One-hot encoding a column that is different in most rows (an ID, a free-text note) makes one
    # feature per row: slow, huge, and it learns nothing that carries over to new rows.
    limit = max(ID_MIN_DISTINCT, int(len(X) * ID_SHARE))
    ids = [c for c in categorical if X[c].nunique(dropna=True) > limit]
    if ids:
        flags = " ".join(f"--exclude {c}" for c in ids)
        raise InvalidInput(f"column(s) {', '.join(ids)} in {ref} look like identifiers or free text (a different "
                           f"value in most rows); exclude them (Training page: 'Exclude columns'; CLI: {flags})")
    sensitive = None
    if spec.sensitive:
        sensitive = data[spec.sensitive].astype("object").where(data[spec.sensitive].notna(), "(missing)").astype(str)
    return Prepared(X=X, y=y, task=task, numeric=numeric, categorical=categorical, classes=classes,
                    sensitive=sensitive, notes=tuple(notes))


@dataclass(frozen=True)
class Split:
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series
    sensitive_test: pd.Series | None


def split(prepared: Prepared, spec: TrainingSpec) -> Split:
    """Holdout split (stratified for classification); refuses data too small for the split or the CV folds."""
    from sklearn.model_selection import train_test_split

    n = len(prepared.y)
    n_test = math.ceil(n * spec.holdout)
    n_classes = len(prepared.classes)
    need_test = max(MIN_TEST_ROWS, n_classes)
    if n - n_test < MIN_TRAIN_ROWS or n_test < need_test:
        need = max(MIN_TRAIN_ROWS + need_test, math.ceil(need_test / spec.holdout))
        raise InvalidInput(f"too few rows: {n} with a target; a {spec.holdout:.0%} holdout needs at least {need} "
                           f"({MIN_TRAIN_ROWS} to train, {need_test} to test)")
    index = np.arange(n)
    stratify = prepared.y if prepared.task == "classification" else None
    train_idx, test_idx = train_test_split(index, test_size=n_test, random_state=spec.seed, stratify=stratify)
    y_train = prepared.y.iloc[train_idx]
    if spec.search is not None:
        folds = spec.search.folds
        if prepared.task == "classification":
            smallest = y_train.value_counts()
            if smallest.min() < folds:
                rare = _plain(smallest.idxmin())
                raise InvalidInput(f"too few rows for {folds}-fold cross-validation: class {rare!r} has "
                                   f"{int(smallest.min())} training rows; use fewer folds or more data")
        elif len(train_idx) < 2 * folds:
            raise InvalidInput(f"too few rows for {folds}-fold cross-validation: {len(train_idx)} training rows; "
                               "use fewer folds or more data")
    sens = prepared.sensitive.iloc[test_idx].reset_index(drop=True) if prepared.sensitive is not None else None
    return Split(X_train=prepared.X.iloc[train_idx].reset_index(drop=True),
                 X_test=prepared.X.iloc[test_idx].reset_index(drop=True),
                 y_train=y_train.reset_index(drop=True), y_test=prepared.y.iloc[test_idx].reset_index(drop=True),
                 sensitive_test=sens)


# -- the pipeline --------------------------------------------------------------------------------

def build_pipeline(prepared: Prepared, kind: ModelKind, params: dict[str, Any], seed: int) -> Any:
    """Raw columns in, predictions out: impute + scale numbers, impute + one-hot categories, then the model."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    # Missing text arrives as NaN (files) or None (JSON records): impute both the same way.
    categorical = Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                            ("impute_none", SimpleImputer(missing_values=None, strategy="most_frequent")),
                            ("onehot", OneHotEncoder(handle_unknown="ignore"))])
    prep = ColumnTransformer([("numeric", numeric, list(prepared.numeric)),
                              ("categorical", categorical, list(prepared.categorical))])
    return Pipeline([("prep", prep), ("model", kind.build(prepared.task, params, seed))])


def fit(pipeline: Any, X: pd.DataFrame, y: pd.Series, *, progress: Progress = _noop,
        span: tuple[float, float] = (0.0, 1.0), stage: str = "fitting") -> Any:
    """Fit in place. Forests grow in tenths (warm start gives the same trees) so progress and Cancel work."""
    from sklearn.ensemble._forest import BaseForest

    model = pipeline[-1]
    low, high = span
    if not isinstance(model, BaseForest) or model.n_estimators < 20:
        progress(low, stage)
        pipeline.fit(X, y)
        progress(high, stage)
        return _predict_in_order(pipeline)
    Xt = pipeline[:-1].fit_transform(X, y)
    total = model.n_estimators
    step = max(total // 10, 1)
    model.set_params(warm_start=True)
    for n in range(step, total + step, step):
        model.set_params(n_estimators=min(n, total))
        model.fit(Xt, y)
        progress(low + (high - low) * min(n, total) / total, f"{stage}: {min(n, total)} of {total} trees")
    model.set_params(warm_start=False)
    return _predict_in_order(pipeline)


def _predict_in_order(pipeline: Any) -> Any:
    """Forests sum their trees' votes from several threads in whatever order the threads finish, so
    a row with a tied vote can flip between two predictions. One thread sums in a fixed order: the
    same model gives the same predictions, and a reproduced run the same metrics."""
    if "n_jobs" in pipeline[-1].get_params():
        pipeline[-1].set_params(n_jobs=1)
    return pipeline


def search(prepared: Prepared, data: Split, spec: TrainingSpec, *, progress: Progress = _noop,
           span: tuple[float, float] = (0.0, 1.0), dask_address: str = "",
           ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Cross-validate each candidate (progress per candidate); returns the best params and the table.

    Locally the candidates run in turn, each spreading its folds over this machine's cores; with
    ``dask_address`` they run side by side on that Dask cluster (``core.training.dask_search``), same results.
    """
    from sklearn.model_selection import KFold, ParameterGrid, ParameterSampler, StratifiedKFold, cross_val_score

    assert spec.search is not None
    kind = get_kind(spec.model)
    base = check_params(kind, prepared.task, spec.params)
    searched = [p for p in kind.params_for(prepared.task) if p.grid]
    if spec.search.method == "grid":
        grid = list(ParameterGrid({p.name: list(p.grid) for p in searched}))
        if len(grid) > spec.search.candidates:
            pick = np.random.default_rng(spec.seed).choice(len(grid), spec.search.candidates, replace=False)
            grid = [grid[i] for i in sorted(pick)]
        candidates = grid
    else:
        candidates = list(ParameterSampler({p.name: p.distribution() for p in searched},
                                           n_iter=spec.search.candidates, random_state=spec.seed))
    folds = spec.search.folds
    cv = (StratifiedKFold(folds, shuffle=True, random_state=spec.seed) if prepared.task == "classification"
          else KFold(folds, shuffle=True, random_state=spec.seed))
    low, high = span
    table: list[dict[str, Any]] = []
    checked = [check_params(kind, prepared.task, base | {k: _plain(v) for k, v in c.items()}) for c in candidates]
    pipelines = [build_pipeline(prepared, kind, params, spec.seed) for params in checked]
    scoring = PRIMARY_SCORING[prepared.task]
    if dask_address:
        from core.training.dask_search import cross_validate_all

        results = cross_validate_all(pipelines, data.X_train, data.y_train, cv=cv, scoring=scoring,
                                     address=dask_address)
    else:
        results = (cross_val_score(pipeline, data.X_train, data.y_train, cv=cv, scoring=scoring, n_jobs=-1,
                                   error_score="raise") for pipeline in pipelines)
    for i, (params, scores) in enumerate(zip(checked, results, strict=True)):
        table.append({"candidate": i + 1, "params": params, "mean": float(np.mean(scores)),
                      "std": float(np.std(scores))})
        best = max(row["mean"] for row in table)
        progress(low + (high - low) * (i + 1) / len(candidates),
                 f"search: candidate {i + 1} of {len(candidates)} (best CV score {best:.4f})")
    ranked = sorted(table, key=lambda row: (-row["mean"], row["candidate"]))
    for rank, row in enumerate(ranked, start=1):
        row["rank"] = rank
    return ranked[0]["params"], table


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@cache
def code_version() -> str:
    """The git commit of this code (with ``-dirty`` when it has local changes), or ``unknown``."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit
