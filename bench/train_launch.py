"""Launch-to-registered wall time of a LeanOps training job vs. a bare script, side by side in one run.

The job: ``Launch training`` (enqueue) → the worker picks it up → load + verify the dataset version →
checks → split → fit → evaluate (metrics, curves, permutation importance, fairness, baseline) →
reference statistics → MLflow run, artifacts, model → registered version → run row + audit event.
The bare script: read the same Parquet file, split, fit the same pipeline, ``mlflow.sklearn.log_model``
(signature, input example, skops) and register. Both run on a 100k-row demo dataset, alternately,
after one small warm-up each (imports, MLflow store creation). Goal: ratio ≤ 1.5.

Run: ``PYTHONPATH=. .venv/bin/python bench/train_launch.py [--rows 100000] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")


def bare(parquet: Path, mlflow_uri: str, artifacts: Path, name: str, target: str = "churn") -> float:
    """What a data scientist would write by hand: same data, same pipeline, log and register."""
    import mlflow
    import pandas as pd
    import skops.io  # noqa: F401 - part of what the bare script needs
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    started = time.perf_counter()
    frame = pd.read_parquet(parquet)
    y = frame.pop(target)
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric]
    X_train, X_test, y_train, y_test = train_test_split(frame, y, test_size=0.2, random_state=42, stratify=y)
    pipeline = Pipeline([
        ("prep", ColumnTransformer([
            ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
             numeric),
            ("categorical", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                                      ("onehot", OneHotEncoder(handle_unknown="ignore"))]), categorical)])),
        ("model", RandomForestClassifier(n_estimators=100, max_depth=16, min_samples_leaf=2, random_state=42,
                                         n_jobs=-1)),
    ]).fit(X_train, y_train)
    mlflow.set_tracking_uri(mlflow_uri)
    mlflow.set_registry_uri(mlflow_uri)
    experiment = mlflow.get_experiment_by_name("bare")
    experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(
        "bare", artifact_location=str(artifacts / "bare"))
    example = X_train.head(5)
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(
            pipeline, name="model", signature=infer_signature(example, pipeline.predict(example)),
            input_example=example, pip_requirements=["scikit-learn", "skops", "pandas"],
            skops_trusted_types=["numpy.dtype", "sklearn.tree._tree.Tree"])
        mlflow.register_model(info.model_uri, name)
    return time.perf_counter() - started


def leanops(factory, settings, dataset: str) -> float:
    """Launch as the Training page does and wait until the worker has registered the version."""
    from core.actors import Actor
    from core.platform import job_queue
    from core.platform.database import transaction
    from core.training import pipeline as training
    from core.training.spec import parse_spec

    spec = parse_spec({"dataset": dataset, "target": "churn", "sensitive": "gender"})
    started = time.perf_counter()
    with transaction(factory) as session:
        job_id = training.launch(session, actor=Actor("bench", "scientist"), spec=spec).id
    while True:
        with factory() as session:
            job = job_queue.get(session, job_id)
        if job.status in job_queue.FINISHED:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if job.status != "succeeded":
        raise SystemExit(f"training job {job_id} {job.status}: {job.error}\n{job.log}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from core.actors import Actor
    from core.data import datasets
    from core.platform.database import transaction
    from core.settings import get_settings
    from core.workspace.bootstrap import init_workspace
    from core.workspace.demo import churn_frame
    from db.session import make_engine, make_session_factory
    from jobs import scheduler

    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # "skipped: already running" while a job runs
    home = Path(tempfile.mkdtemp(prefix="leanops-bench-"))
    settings = get_settings(home=home, scheduler="embedded", admin_password="bench-pass-123",
                            queue_poll_seconds=0.25)
    factory = make_session_factory(make_engine(settings.db_url))
    init_workspace(factory, settings, demo=False)
    refs = {}
    for name, rows in (("warmup", 2_000), ("churn", args.rows)):
        with transaction(factory) as session:
            refs[name] = datasets.register(session, actor=Actor("bench", "admin"), name=name,
                                           data=churn_frame(rows=rows), store=home, source="bench").version
    scheduler.start(settings, factory, run_schedules=False)
    try:
        artifacts = Path(settings.artifacts)
        print(f"workspace {home}; {args.rows:,} rows; warming up …", flush=True)
        bare(refs["warmup"].file(home), settings.mlflow_uri, artifacts, "bare-warmup")
        leanops(factory, settings, "warmup")
        timings: dict[str, list[float]] = {"bare": [], "leanops": []}
        for round_no in range(1, args.rounds + 1):
            timings["bare"].append(bare(refs["churn"].file(home), settings.mlflow_uri, artifacts, "bare-churn"))
            timings["leanops"].append(leanops(factory, settings, "churn"))
            print(f"round {round_no}: bare {timings['bare'][-1]:.1f} s · LeanOps launch-to-registered "
                  f"{timings['leanops'][-1]:.1f} s", flush=True)
    finally:
        scheduler.stop()
    bare_s, ours_s = statistics.median(timings["bare"]), statistics.median(timings["leanops"])
    paired = statistics.median(o / b for o, b in zip(timings["leanops"], timings["bare"], strict=True))
    print(f"median bare {bare_s:.1f} s · median LeanOps {ours_s:.1f} s · ratio {ours_s / bare_s:.2f}× "
          f"(median of per-round ratios {paired:.2f}×; goal ≤ 1.5×)")


if __name__ == "__main__":
    main()
