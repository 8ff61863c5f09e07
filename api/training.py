"""Training over HTTP: queue a training job (as the Training page's *Launch training* does)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentActor, require
from api.errors import responses
from api.jobs import JobAnswer, job_answer
from core.data import datasets
from core.platform import job_queue
from core.platform.database import transaction
from core.training.catalog import KINDS
from core.training.spec import MODEL_NAME_RE, parse_spec

router = APIRouter(prefix="/v1")
ERRORS = responses(404, 409, 422, 503)


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

    return job_answer(await run_in_threadpool(launch))
