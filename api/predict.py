"""Predict and feedback routes."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentActor, require
from api.errors import responses, status_of
from core.errors import InvalidInput, LeanOpsError, NotFound
from core.platform.database import transaction
from core.serving import predictions

router = APIRouter(prefix="/v1/models", tags=["predictions"])

ModelName = Annotated[str, Path(min_length=1, max_length=255, description="registered model name")]
REQUEST_ID = r"^[A-Za-z0-9_-]{1,64}$"
ERRORS = responses(404, 413, 422, 503)


class PredictAnswer(BaseModel):
    model: str
    version: int
    predictions: list[Any]
    request_id: str
    alias: str
    probabilities: list[dict[str, float]] | None = Field(None, description="class → probability, when asked")
    ignored_columns: list[str] | None = Field(None, description="columns the model does not use")


PREDICT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["records"], "additionalProperties": False,
    "properties": {"records": {
        "type": "array", "minItems": 1, "description": "one object per row: column name → value",
        "items": {"type": "object", "additionalProperties": True},
        "example": [{"tenure_months": 12, "contract": "month-to-month"}]}}}}}}}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _TooLarge(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


class _TooLarge(LeanOpsError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the body is over {limit / 2**20:.0f} MB ({size} bytes); split the records "
                         "into several requests")


@router.post("/{name}/predict", response_model=PredictAnswer, openapi_extra=PREDICT_BODY, responses=ERRORS)
async def predict(request: Request, name: ModelName, actor: CurrentActor,
                  alias: Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$",
                                              description="the alias to serve, e.g. challenger")] = "champion",
                  probabilities: Annotated[bool, Query(description="add class probabilities")] = False) -> Response:
    """Predict ``records`` with the version the alias (default ``champion``) points at now.

    Every prediction is logged with the request_id. Records are checked against the model's
    signature: a missing column or a value that cannot be cast is a 422 naming the record and
    the column; columns the model does not use are ignored and listed in ``ignored_columns``.
    """
    rt = request.app.state.runtime
    started = time.perf_counter()
    await require(request, actor, "predict")
    request_id = uuid.uuid4().hex
    try:
        raw = await _read_body(request, rt.settings.max_upload_mb * 2**20)
        try:
            body = pydantic_core.from_json(raw)
        except ValueError as exc:
            raise InvalidInput(f"the body is not valid JSON ({exc}); send {{\"records\": [...]}}") from None
        decoded = time.perf_counter() - started
        answer = await rt.predictor.predict(name=name, alias=alias, body=body, probabilities=probabilities,
                                            request_id=request_id)
    except _TooLarge as exc:
        rt.predictor.refused(request_id=request_id, name=name, alias=alias, status=413, message=str(exc))
        return JSONResponse({"detail": str(exc), "field": "records"}, status_code=413)
    except LeanOpsError as exc:
        rt.predictor.refused(request_id=request_id, name=name, alias=alias, status=status_of(exc), message=str(exc))
        raise
    stage = rt.metrics.stage
    stage.labels(name, "parse").observe(decoded + answer.timings["validate"])
    stage.labels(name, "predict").observe(answer.timings["predict"])
    stage.labels(name, "log").observe(answer.timings["log"])
    rt.metrics.observe_predictions(name, answer.version, answer.predictions)
    return Response(pydantic_core.to_json(answer.as_dict(), inf_nan_mode="null"), media_type="application/json")


class FeedbackIn(BaseModel):
    request_id: str = Field(pattern=REQUEST_ID, description="the request_id a predict answer carried")
    labels: list[bool | int | float | str] = Field(min_length=1, description="the true label of each record, in order")


class FeedbackAnswer(BaseModel):
    request_id: str
    stored: int


@router.post("/{name}/feedback", response_model=FeedbackAnswer, responses=ERRORS)
async def feedback(request: Request, name: ModelName, body: FeedbackIn, actor: CurrentActor) -> FeedbackAnswer:
    """Ground truth for a logged prediction (one label per record), for performance monitoring."""
    rt = request.app.state.runtime

    def store() -> int:
        with transaction(rt.factory) as session:
            return predictions.record_feedback(session, actor=actor, model=name, request_id=body.request_id,
                                               labels=list(body.labels))

    try:
        stored = await run_in_threadpool(store)
    except NotFound:
        if rt.writer is None or not rt.writer.depth:
            raise
        await run_in_threadpool(rt.writer.drain, 10.0)  # the prediction may still be on its way to the log
        stored = await run_in_threadpool(store)
    return FeedbackAnswer(request_id=body.request_id, stored=stored)
