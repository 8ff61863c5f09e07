"""Importing a model trained elsewhere over HTTP (as ``cli.py model import`` and the Registry page's panel)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentActor, require
from api.errors import ErrorBody, responses
from core.errors import InvalidInput
from core.training.spec import MODEL_NAME_RE

router = APIRouter(prefix="/v1")
ERRORS = responses(403, 404, 409, 422, 503)


class Gates(BaseModel):
    passed: bool
    checks: list[dict[str, Any]]


class ImportAnswer(BaseModel):
    model: str
    version: int
    format: str = Field(description="skops | xgboost-json | xgboost-ubj | lightgbm-text")
    sha256: str = Field(description="the uploaded file's sha256")
    metrics: dict[str, float | None] = Field(description="LeanOps' own evaluation on the dataset's holdout")
    gates: Gates
    estimator: str
    refittable: bool = Field(description="whether a retrain can refit a clone of it (else it needs a new import)")
    dataset: str
    claimed_metrics: dict[str, float] = Field(description="what the notebook reported: shown, never gated")
    provenance: str


@router.post("/models/{name}/versions", tags=["models"], status_code=201, response_model=ImportAnswer,
             responses={413: {"model": ErrorBody}, **ERRORS})
async def import_model_version(
        request: Request, actor: CurrentActor,
        name: Annotated[str, Path(min_length=1, max_length=64, description="registered model name",
                                  json_schema_extra={"pattern": MODEL_NAME_RE.pattern})],
        file: Annotated[UploadFile, File(description="skops, XGBoost JSON/UBJ or LightGBM text; never pickle")],
        dataset: Annotated[str, Form(min_length=1, max_length=80, description="NAME or NAME:VERSION")],
        target: Annotated[str, Form(min_length=1, max_length=255)],
        sensitive: Annotated[str, Form(max_length=255)] = "",
        description: Annotated[str, Form(max_length=2000)] = "",
        claimed_metrics: Annotated[str, Form(max_length=10_000, description="JSON object name → number")] = ""
) -> JSONResponse:
    """A model trained elsewhere, read safely, evaluated by LeanOps on the dataset's holdout, registered and
    held to the gates (a version that passes them all becomes the challenger)."""
    from core.promotion.imports import import_model

    await require(request, actor, "training.launch")
    runtime = request.app.state.runtime
    try:
        claims = json.loads(claimed_metrics) if claimed_metrics.strip() else None
    except ValueError:
        raise InvalidInput('claimed_metrics is not JSON (e.g. {"f1": 0.93})') from None
    filename = (file.filename or "model").replace("\x00", "")[-200:] or "model"

    def run() -> dict[str, Any]:
        limit = runtime.settings.max_upload_mb * 2**20
        data = file.file.read(limit + 1)
        if len(data) > limit:
            raise InvalidInput(f"model file {filename!r} refused: over the upload limit of "
                               f"{runtime.settings.max_upload_mb} MB (LEANOPS_MAX_UPLOAD_MB)")
        return import_model(runtime.factory, runtime.settings, actor=actor, log=lambda line: None, model=name,
                            file_name=filename, data=data, dataset=dataset, target=target,
                            sensitive=sensitive.strip() or None, description=description.replace("\x00", ""),
                            claimed_metrics=claims)

    result = await run_in_threadpool(run)
    answer = ImportAnswer(**{k: result[k] for k in ImportAnswer.model_fields})
    return JSONResponse(answer.model_dump(), status_code=201)
