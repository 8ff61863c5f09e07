"""The training workflow: load → certificate → split → fit → evaluate → log → register → record + audit.

Training ends at a registered, recorded version; ``core.promotion.registration.train`` (the ``train``
job, ``cli.py train``, a retrain) runs this and then holds the version to its gates.

Database transactions stay short (none is open during the fit). On any failure the MLflow run ends
FAILED, a version registered before the failure is deleted, and the run row records the reason;
the job wrapper records the job failed with that one-line reason and the traceback in its log.

The version is registered last, and its run row is completed in the same transaction as the caller's
``gate`` (the promotion stage stores the version's gates there): LeanOps never shows a version
without its gates. In MLflow the version carries the ``leanops.pending`` tag from its creation until
that commit (``core.training.pending``: a row recorded before MLflow is asked). A process killed
between the two leaves a pending version only until a sweep finds its job stopped: the reaper's
``clean_up_job`` (the ``train`` and ``retrain`` kinds' clean-up in ``jobs/kinds.py``) or
``pending.sweep``, which every process that opens the workspace runs, deletes it (audited).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.auth import require
from core.actors import Actor
from core.data import datasets
from core.errors import LeanOpsError, NotFound, PolicyBlocked
from core.platform import job_queue, mlflow_store
from core.platform.database import transaction
from core.platform.job_queue import FINISHED, JobCancelled
from core.settings import Settings
from core.training import evaluation, integrity, pending, reference, runs
from core.training import pipeline as training  # the steps of the pipeline itself
from core.training.catalog import check_params, get_kind
from core.training.spec import parse_spec

Progress = Callable[[float, str], None]
Log = Callable[[str], None]
# Called with (session, model, version) inside the transaction that records the run; what it returns
# goes into the result under "gates". If it raises, the version is taken back like any failure.
Gate = Callable[[Session, str, int], dict[str, Any]]


class TrainingFailed(LeanOpsError):
    """Training crashed on something other than bad input; the message is the one-line reason."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def train(factory: sessionmaker[Session], settings: Settings, raw_spec: dict[str, Any], *, actor: Actor,
          job_id: int | None = None, progress: Progress | None = None, log: Log = _stderr,
          gate: Gate | None = None) -> dict[str, Any]:
    """Run one training spec to a registered model version; returns the CLI/job result document.

    ``actor`` is whoever launched it (a job acts for its creator: see ``job_queue.acting_as``);
    ``gate`` runs in the transaction that completes the run (see the module docstring).
    """
    progress = progress or (lambda fraction, stage: None)
    actor_name = actor.name
    store = mlflow_store.store_for(settings)
    spec = parse_spec(raw_spec)
    with transaction(factory) as session:  # a queued job was checked when queued; this holds for direct calls
        require(session, actor, "training.launch", f"dataset:{spec.dataset}")
    progress(0.01, "opening the MLflow store")
    reconcile(factory, store, log=log)

    progress(0.02, "loading dataset")
    with factory() as session:  # reads only
        version, frame = datasets.load_frame(session, store=settings.data_store, ref=spec.dataset)
        certificate = datasets.get_certificate(session, ref=version.ref)
    log(f"loaded {version.ref} (sha256 {version.sha256[:12]}…, {len(frame)} rows, {len(frame.columns)} columns)")
    if not certificate.passed:  # first: a failed certificate is the cause of whatever else looks wrong
        failed = certificate.summary(limit=3)
        if not spec.allow_failed_certificate:
            raise PolicyBlocked(f"dataset {version.ref}'s certificate failed ({failed or 'see Datasets'}); "
                                "fix the data, or allow training on it explicitly (allow_failed_certificate)")
        log(f"warning: {version.ref} failed its quality certificate ({failed}); training anyway as the spec allows")
    with factory() as session:  # a new version predicts what its model predicts (checked again at recording)
        integrity.check_for_data(session, spec, dtypes=version.dtypes)

    progress(0.05, "checking and splitting the data")
    prepared = training.prepare(frame, spec, ref=version.ref)
    for note in prepared.notes:
        log(note)
    kind = get_kind(spec.model)
    params = check_params(kind, prepared.task, spec.params)
    data = training.split(prepared, spec)
    log(f"task {prepared.task}; {len(data.X_train)} training rows, {len(data.X_test)} holdout rows; "
        f"{len(prepared.numeric)} numeric and {len(prepared.categorical)} categorical features")
    with transaction(factory) as session:
        run_id = runs.start(session, job_id=job_id, spec=spec, dataset_version_id=version.id,
                                     dataset_name=version.name, dataset_version=version.version,
                                     sha256=version.sha256, task=prepared.task, params=params,
                                     code_version=training.code_version(), created_by=actor_name)

    name = spec.registered_name
    mlflow_run: str | None = None
    model_version: int | None = None
    stage = "starting the MLflow run"
    try:
        lineage = {"dataset": version.ref, "dataset_sha256": version.sha256, "job_id": job_id or "cli",
                   "training_run": run_id, "code_version": training.code_version(), "model_name": name}
        tags = {mlflow_store.TAG_PREFIX + k: v for k, v in lineage.items()}
        mlflow_run = mlflow_store.start_run(store, experiment=mlflow_store.experiment_name(name),
                                        run_name=f"{name}-{run_id}", tags=tags | {"mlflow.user": actor_name},
                                        params={"model_kind": kind.key, "task": prepared.task, "seed": spec.seed,
                                                "holdout": spec.holdout, "target": spec.target,
                                                "search": spec.search.method if spec.search else "none"} | params)
        with transaction(factory) as session:
            runs.note_mlflow(session, run_id=run_id, mlflow_run_id=mlflow_run,
                                      experiment_id=mlflow_store.run_info(store, mlflow_run)["experiment_id"])
        mlflow_store.log_dataset(store, mlflow_run, frame=frame, name=version.ref, digest=version.sha256,
                             source=settings.data_store.uri(version.path), target=spec.target)

        search_doc = None
        fit_from = 0.1
        if spec.search is not None:
            stage = "searching hyperparameters"
            params, table = training.search(prepared, data, spec, progress=progress, span=(0.1, 0.6),
                                            dask_address=settings.dask_address)
            search_doc = {"method": spec.search.method, "folds": spec.search.folds, "candidates": table,
                          "best": params}
            log(f"search: best of {len(table)} candidates has CV score "
                f"{max(r['mean'] for r in table):.4f} with {params}")
            mlflow_store.log_results(store, mlflow_run, metrics={"search_best_cv_score": max(r["mean"] for r in table)},
                                 files={"search/candidates.json": mlflow_store.dumps(table)})
            fit_from = 0.6

        stage = "fitting"
        started = time.monotonic()
        pipeline = training.build_pipeline(prepared, kind, params, spec.seed)
        training.fit(pipeline, data.X_train, data.y_train, progress=progress, span=(fit_from, 0.8))
        log(f"fit {kind.label} with {params} in {time.monotonic() - started:.1f} s")

        stage = "evaluating"
        progress(0.8, "evaluating on the holdout")
        result = evaluation.evaluate(pipeline, data.X_test, data.y_test, task=prepared.task, seed=spec.seed,
                                     sensitive=data.sensitive_test, sensitive_name=spec.sensitive)
        baseline = evaluation.baseline(prepared.task, data.X_train, data.y_train, data.X_test, data.y_test)
        ref_stats = reference.build(data.X_train, task=prepared.task, predictions=result.predictions,
                                    target=data.y_train, holdout=data.X_test, holdout_target=data.y_test,
                                    proba=result.proba, classes=result.classes,
                                    importance=result.plots.get("importance"))
        log("holdout: " + ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()))

        stage = "logging to MLflow"
        progress(0.88, "logging to MLflow")
        files: dict[str, bytes | str] = {"plots/plots.json": mlflow_store.dumps(result.plots),
                                         "reference/reference.json": mlflow_store.dumps(ref_stats)}
        if png := evaluation.figure_png(result.plots, title=f"{name} · {version.ref}"):
            files[f"plots/{png[0]}"] = png[1]
        mlflow_store.log_results(store, mlflow_run, metrics=result.metrics | {f"baseline_{k}": v
                                                                          for k, v in baseline.items()}, files=files)
        logged = mlflow_store.log_model(store, mlflow_run, pipeline=pipeline, example=data.X_train.head(5))
        # The files' sha256, taken before upload, is recorded with the version (MLflow tag) and the run
        # (LeanOps' DB): serving loads only files that still hash to it.
        model_uri, model_sha256 = logged.uri, logged.sha256

        stage = "registering the model version"
        progress(0.95, "registering the model version")
        with transaction(factory) as session:  # before MLflow is asked: a kill from here on is found and undone
            pending.begin(session, mlflow_run_id=mlflow_run, training_run_id=run_id, job_id=job_id, model_name=name)
        model_version = mlflow_store.register(store, model_uri=model_uri, name=name, tags=tags | {
            mlflow_store.MODEL_SHA256_TAG: model_sha256, pending.TAG: "true"})  # pending until LeanOps commits it
        mlflow_store.end_run(store, mlflow_run, status="FINISHED")

        stage = "recording the run"
        with transaction(factory) as session:
            integrity.check_for_data(session, spec, dtypes=version.dtypes, task=prepared.task, lock=True)
            runs.complete(session, run_id=run_id, actor=actor, params=params, metrics=result.metrics,
                          baseline=baseline, fairness=result.fairness, plots=result.plots,
                          reference=ref_stats | {mlflow_store.MODEL_SHA256: model_sha256}, search=search_doc,
                          model_version=model_version,
                          model_uri=model_uri)
            gates = gate(session, name, model_version) if gate is not None else None
            pending.committed(session, mlflow_run_id=mlflow_run)
    except BaseException as exc:
        _undo(factory, store, run_id=run_id, mlflow_run=mlflow_run, name=name, model_version=model_version,
              exc=exc, log=log)
        if isinstance(exc, (LeanOpsError, JobCancelled)) or not isinstance(exc, Exception):
            raise
        raise TrainingFailed(f"training failed while {stage}: {one_line(exc)}") from exc
    try:
        pending.finish(factory, store, mlflow_run_id=mlflow_run, name=name, version=model_version)
    except Exception as exc:  # noqa: BLE001 - committed already; the next sweep removes the tag
        log(f"could not remove {name} version {model_version}'s pending tag yet ({one_line(exc)}); the next sweep will")
    log(f"registered {name} version {model_version} (MLflow run {mlflow_run})")
    return {
        "run_id": mlflow_run, "training_run": run_id, "model_name": name, "model_version": model_version,
        "dataset": version.ref, "task": prepared.task, "model_kind": kind.key, "params": params,
        "metrics": result.metrics, "baseline": baseline,
    } | ({"gates": gates} if gates is not None else {})


def one_line(exc: BaseException) -> str:
    """``Type: first line`` of an error (a database error's own message, not SQLAlchemy's wrapping)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:500] if first else type(exc).__name__


def clean_up_job(factory: sessionmaker[Session], settings: Settings, *, job_id: int, log: Log = _stderr) -> list[int]:
    """Finish at once what a job's stopped worker left half done: the reaper's clean-up for training kinds.

    For each run row of the (finished) job still ``running``: every version MLflow has from its run is
    deleted, the MLflow run ends FAILED, then the row is failed with the job's reason — the row last,
    so a clean-up that fails half-way (MLflow down) is found and finished by the next one (``reconcile``
    at the next training start). Returns the ids of the run rows it finished.
    """
    return _clean_up(factory, mlflow_store.store_for(settings), job_id=job_id, log=log)


def _clean_up(factory: sessionmaker[Session], store: mlflow_store.MlflowStore, *, job_id: int, log: Log) -> list[int]:
    from db.models import TrainingRun

    with factory() as session:
        job_status = job_queue.status_of(session, job_id=job_id)
        if job_status is None or job_status not in FINISHED:
            return []
        left = [(row.mlflow_run_id, row.model_name) for row in session.scalars(
            select(TrainingRun).where(TrainingRun.job_id == job_id, TrainingRun.status == "running"))]
    for mlflow_run, name in left:
        if mlflow_run is None:  # no MLflow run recorded: no version can exist (reconcile fails a stray run)
            continue
        pending.take_back(factory, store, name=name, mlflow_run_id=mlflow_run, job_id=job_id, log=log,
                          reason=f"its training job {job_id} ended before its gates were stored")
        try:
            status = mlflow_store.run_info(store, mlflow_run)["status"]
        except NotFound:  # deleted in MLflow meanwhile: nothing to end
            status = "FAILED"
        if status not in ("FAILED", "KILLED"):  # FINISHED too: killed after ending it, before the commit
            mlflow_store.end_run(store, mlflow_run, status="FAILED")
            log(f"MLflow run {mlflow_run} of job {job_id}: marked FAILED")
    with transaction(factory) as session:
        finished = runs.reconcile(session, job_id=job_id)
    for row in finished:
        log(f"training run {row.id} (job {job_id}) was left running by a stopped worker: marked {row.status}")
    return [row.id for row in finished]


def _undo(factory: sessionmaker[Session], store: mlflow_store.MlflowStore, *, run_id: int, mlflow_run: str | None,
          name: str, model_version: int | None, exc: BaseException, log: Log) -> None:
    """After a failure: no version stays registered, the MLflow run ends FAILED, the row says why.

    Each step is tried on its own; a failing clean-up is logged and never hides the original error.
    """
    cancelled = isinstance(exc, JobCancelled)
    reason = "cancelled by a user" if cancelled else (str(exc) if isinstance(exc, LeanOpsError) else one_line(exc))
    steps: list[tuple[str, Callable[[], None]]] = []
    if mlflow_run is not None:  # every version of the run (MLflow may have made one whose number never came back)
        steps.append((f"delete {name}'s versions of run {mlflow_run}", lambda: _take_back(
            factory, store, name=name, mlflow_run_id=mlflow_run, reason=f"training failed: {reason}", log=log)))
    elif model_version is not None:
        steps.append((f"delete {name} version {model_version}",
                      lambda: mlflow_store.delete_version(store, name=name, version=model_version)))
    if mlflow_run is not None:
        steps.append((f"mark MLflow run {mlflow_run} {'KILLED' if cancelled else 'FAILED'}",
                      lambda: mlflow_store.end_run(store, mlflow_run, status="KILLED" if cancelled else "FAILED")))

    def _record() -> None:
        with transaction(factory) as session:
            runs.fail(session, run_id=run_id, status="cancelled" if cancelled else "failed", error=reason)

    steps.append(("record the run as failed", _record))
    for what, step in steps:
        try:
            step()
        except Exception as cleanup:  # noqa: BLE001 - reported, the original error goes on
            log(f"clean-up step '{what}' failed: {one_line(cleanup)}")


def _take_back(factory: sessionmaker[Session], store: mlflow_store.MlflowStore, *, name: str, mlflow_run_id: str,
               reason: str, log: Log) -> None:
    pending.take_back(factory, store, name=name, mlflow_run_id=mlflow_run_id, job_id=None, reason=reason, log=log)


def reconcile(factory: sessionmaker[Session], store: mlflow_store.MlflowStore, *, log: Log = _stderr) -> None:
    """Finish what killed workers left: run rows and MLflow runs still 'running' for jobs that ended.

    The reaper does this per job at once (``clean_up_job``); this catches a clean-up that failed then.
    """
    from core.platform import job_queue as core_jobs
    from db.models import Job, TrainingRun

    with factory() as session:
        left = sorted({job_id for job_id in session.scalars(select(TrainingRun.job_id).join(
            Job, Job.id == TrainingRun.job_id).where(TrainingRun.status == "running",
                                                     Job.status.in_(core_jobs.FINISHED))) if job_id is not None})
    for job_id in left:
        try:
            _clean_up(factory, store, job_id=job_id, log=log)
        except Exception as exc:  # noqa: BLE001 - tidying up must not stop a new run; the next one retries
            log(f"could not finish the clean-up of job {job_id}: {one_line(exc)}")

    def finished(job_id: int) -> bool:
        with factory() as session:
            job_status = core_jobs.status_of(session, job_id=job_id)
            return job_status is None or job_status in core_jobs.FINISHED

    try:
        for run in mlflow_store.fail_orphans(store, is_finished=finished):
            log(f"MLflow run {run} was left running by a stopped worker: marked FAILED")
    except Exception as exc:  # noqa: BLE001 - tidying up must not stop a new run
        log(f"could not check for orphaned MLflow runs: {one_line(exc)}")
