"""Webhooks for automation: upload a dataset version, queue training, read a job's status."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentActor, require
from api.errors import ErrorBody, responses
from core.data import datasets
from core.data.tables import TableLimits
from core.platform import job_queue
from core.platform.database import transaction
from core.training.catalog import KINDS
from core.training.spec import MODEL_NAME_RE, parse_spec

router = APIRouter(prefix="/v1")
log = logging.getLogger("leanops.api")
ERRORS = responses(404, 409, 422, 503)


class QualityCheck(BaseModel):
    passed: bool
    checks: list[dict[str, Any]]


class DatasetVersionAnswer(BaseModel):
    name: str
    version: int
    sha256: str
    rows: int
    columns: list[str]
    quality: QualityCheck
    created: bool = Field(description="false when this exact content was already a version (nothing new)")
    retrain_jobs: list[int] = Field(default_factory=list,
                                    description="the retrain.consider job this upload queued: it decides by policy "
                                                "whether to retrain (its result names the retrain job)")


@router.post("/datasets/{name}/versions", tags=["datasets"], status_code=201, response_model=DatasetVersionAnswer,
             responses={200: {"model": DatasetVersionAnswer, "description": "identical content: existing version"},
                        413: {"model": ErrorBody}, **ERRORS})
async def upload_dataset_version(
        request: Request, actor: CurrentActor,
        name: Annotated[str, Path(min_length=1, max_length=64, description="dataset name",
                                  json_schema_extra={"pattern": datasets.NAME_RE.pattern})],
        file: Annotated[UploadFile, File(description="a CSV or Parquet file")],
        description: Annotated[str, Form(max_length=2000)] = "") -> JSONResponse:
    """Register a new version of dataset ``name`` (as the Datasets page does): hashed, certified, profiled."""
    await require(request, actor, "datasets.write")
    settings = request.app.state.runtime.settings
    factory = request.app.state.runtime.factory
    filename = (file.filename or "upload").replace("\x00", "")[-200:] or "upload"

    def register() -> datasets.Registration:
        with transaction(factory) as session:
            return datasets.register(session, actor=actor, name=name, data=file.file, filename=filename,
                                     store_root=settings.data_store, settings=settings,
                                     source=f"{datasets.API_SOURCE}{filename}",
                                     description=description.replace("\x00", ""),
                                     max_bytes=settings.max_upload_mb * 2**20, limits=TableLimits.of(settings))

    reg = await run_in_threadpool(register)
    answer = reg.as_dict() | {"retrain_jobs": [reg.retrain_consider] if reg.retrain_consider else []}
    return JSONResponse(answer, status_code=201 if reg.created else 200)


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["grid", "random"] = "random"
    candidates: int = Field(8, ge=1, le=200)
    folds: int = Field(3, ge=2, le=20)


# The schema says what parse_spec accepts, so a schema-valid request is refused only for what no schema
# can know (a dataset that does not exist, a target column it lacks). The patterns are documented in the
# schema and checked by core, whose refusals name the rule ("dataset name 'x y' is not allowed: use …").
DATASET_REF = datasets.NAME_RE.pattern.removesuffix("$") + r"(:([1-9][0-9]{0,8}|latest))?$"
MODEL_KINDS: list[Any] = [name for kind in KINDS.values() for name in (kind.key, *kind.aliases)]


class TrainingJobIn(BaseModel):
    """What to train: the same settings as `python cli.py train` and the Training page."""

    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(min_length=1, max_length=200, description="NAME or NAME:VERSION (default: latest)",
                         json_schema_extra={"pattern": DATASET_REF})
    target: str = Field(min_length=1, max_length=255, description="the column to predict")
    model: str | None = Field(None, description="the model kind (or one of its aliases)",
                              json_schema_extra={"enum": [*MODEL_KINDS, None]})
    params: dict[str, bool | int | float | str] = Field(default_factory=dict, description="hyperparameters")
    task: Literal["auto", "classification", "regression"] = "auto"
    holdout: float = Field(0.2, ge=0.05, le=0.5)
    seed: int = Field(42, ge=0, le=2**32 - 1)
    sensitive: str | None = Field(None, max_length=255, description="a column to measure fairness on")
    model_name: str | None = Field(None, max_length=64, description="registered model name (default: dataset's)",
                                   json_schema_extra={"pattern": MODEL_NAME_RE.pattern})
    exclude: list[str] = Field(default_factory=list, description="columns to leave out")
    allow_failed_certificate: bool = False
    allow_schema_change: bool = Field(False, description="confirm that this version's input columns differ from "
                                                         "the model's newest version's")
    search: SearchIn | None = None


class JobAnswer(BaseModel):
    id: int
    kind: str
    status: str
    progress: float
    stage: str
    error: str | None
    result: dict[str, Any] | None
    params: dict[str, Any]
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str


def _job(view: job_queue.JobView) -> JobAnswer:
    return JobAnswer(id=view.id, kind=view.kind, status=view.status, progress=view.progress, stage=view.stage,
                     error=view.error, result=view.result, params=view.params, created_by=view.created_by,
                     created_at=view.created_at, started_at=view.started_at, finished_at=view.finished_at,
                     url=f"/v1/jobs/{view.id}")


@router.post("/training-jobs", tags=["jobs"], status_code=202, response_model=JobAnswer, responses=ERRORS)
async def launch_training(request: Request, body: TrainingJobIn, actor: CurrentActor) -> JobAnswer:
    """Queue a training job (as the Training page's `Launch training` does); poll `GET /v1/jobs/{id}`."""
    from core.training import pipeline

    await require(request, actor, "training.launch")
    factory = request.app.state.runtime.factory
    spec = parse_spec(body.model_dump(exclude_none=True))

    def launch() -> job_queue.JobView:
        with transaction(factory) as session:
            return job_queue.JobView.of(pipeline.launch(session, actor=actor, spec=spec))

    return _job(await run_in_threadpool(launch))


@router.get("/jobs/{job_id}", tags=["jobs"], response_model=JobAnswer, responses=ERRORS)
async def job_status(request: Request, actor: CurrentActor,
                     job_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> JobAnswer:
    """A job's status, progress, stage, error and result."""
    await require(request, actor, "read")
    factory = request.app.state.runtime.factory

    def read() -> job_queue.JobView:
        with factory() as session:
            return job_queue.get(session, job_id)

    return _job(await run_in_threadpool(read))
