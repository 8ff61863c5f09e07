"""Predict and feedback routes."""

from __future__ import annotations

import time
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from api.auth import CurrentActor, require
from api.boundary import BodyTooLarge
from api.errors import responses, status_of, what_failed
from core.errors import InvalidInput, LeanOpsError, NotFound
from core.platform.database import transaction
from core.platform.prediction_log.parquet import new_request_id
from core.platform.prediction_log.writer import requester
from core.serving.cache import ALIAS_PATTERN
from core.serving.feedback import record_batch_feedback, record_feedback
from core.serving.inference import ARROW, read_arrow, write_arrow
from core.training.spec import MODEL_NAME_RE

router = APIRouter(prefix="/v1/models", tags=["predictions"])
MODEL_NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"


async def model_name(name: Annotated[str, Path(min_length=1, max_length=255,
                                               description=f"registered model name: {MODEL_NAME_RULE}")]) -> str:
    """The ``{name}`` of a model route, checked with core's rule for model names before any store is asked:
    a name no model can have is a 404. Async: FastAPI runs a plain ``def`` dependency on a worker thread,
    a thread hop per request for a regular expression."""
    if not MODEL_NAME_RE.match(name):
        raise NotFound(f"no model can be named {name[:80]!r}: model names are {MODEL_NAME_RULE}")
    return name


ModelName = Annotated[str, Depends(model_name)]
REQUEST_ID = r"^[A-Za-z0-9_-]{1,64}$"
ERRORS = responses(404, 413, 422, 503)


class PredictAnswer(BaseModel):
    model: str
    version: int
    predictions: list[Any]
    request_id: str
    alias: str
    probabilities: list[dict[str, float]] | None = Field(None, description="class → probability, when asked")
    ignored_columns: list[str] | None = Field(None, description="columns the model does not take, let through by "
                                                              "policy serving.unknown_columns: ignore")
    imputed_columns: list[str] | None = Field(None, description="model columns the records lacked, filled by the "
                                              "model's imputer (policy serving.missing_columns: impute)")
    warnings: list[dict[str, Any]] | None = Field(None, description="e.g. unseen_category: records with categories "
                                                                  "the model never saw, per column")


RECORDS = {"type": "object", "required": ["records"], "additionalProperties": False, "properties": {"records": {
    "type": "array", "minItems": 1, "description": "one object per row: column name → value",
    "items": {"type": "object", "additionalProperties": True},
    "example": [{"tenure_months": 12, "contract": "month-to-month"}]}}}
DATAFRAME_SPLIT = {"type": "object", "required": ["dataframe_split"], "additionalProperties": False,
                   "description": "MLflow's pandas split orient, as `mlflow models serve` takes it",
                   "properties": {"dataframe_split": {
                       "type": "object", "required": ["columns", "data"], "additionalProperties": False,
                       "properties": {
                           "columns": {"type": "array", "minItems": 1, "uniqueItems": True,
                                       "items": {"type": "string"}},
                           "data": {"type": "array", "minItems": 1, "items": {"type": "array"},
                                    "description": "one list per row, a value per column"},
                           "index": {"type": "array"}},
                       "example": {"columns": ["tenure_months", "contract"], "data": [[12, "month-to-month"]]}}}}
PREDICT_BODY = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"oneOf": [RECORDS, DATAFRAME_SPLIT]}},
        ARROW: {"schema": {"type": "string", "format": "binary",
                           "description": "an Arrow IPC stream: one column per model input, one row per record"}}}},
    "responses": {"200": {"content": {ARROW: {"schema": {
        "type": "string", "format": "binary",
        "description": "with `Accept: application/vnd.apache.arrow.stream`: an Arrow IPC stream with a "
                       "`prediction` column (and `probability_<class>` columns when asked); request_id, "
                       "model, version and alias in the schema metadata"}}}}}}


@router.post("/{name}/predict", response_model=PredictAnswer, openapi_extra=PREDICT_BODY, responses=ERRORS)
async def predict(request: Request, name: ModelName, actor: CurrentActor,
                  alias: Annotated[str, Query(pattern=ALIAS_PATTERN,
                                              description="the alias to serve, e.g. challenger")] = "champion",
                  probabilities: Annotated[bool, Query(description="add class probabilities")] = False,
                  explain: Annotated[bool, Query(description="add each record's per-column contributions "
                                                             "(explanations, base_values; JSON answers)")] = False
                  ) -> Response:
    """Predict ``records`` with the version the alias (default ``champion``) points at now.

    The body is JSON ``{"records": [...]}``, MLflow's ``{"dataframe_split": {"columns", "data"}}``, or an
    Arrow IPC stream (``Content-Type: application/vnd.apache.arrow.stream``); columnar bodies are checked
    column by column. With ``Accept: application/vnd.apache.arrow.stream`` the answer is an Arrow stream.

    Every prediction is logged with the request_id. Records are checked against the model's
    signature: a missing column, a column the model does not take (a typo) or a value that cannot be
    cast is a 422 naming ``records[i].column``. A model's policy may opt in to ``serving.missing_columns:
    impute`` / ``serving.unknown_columns: ignore``; the answer then lists them (``imputed_columns``,
    ``ignored_columns``). Categories the model never saw are counted in ``warnings``.
    """
    rt = request.app.state.runtime
    started = time.perf_counter()
    await require(request, actor, "predict")
    request_id = new_request_id()  # time-prefixed: a lookup reads only that hour's partitions
    try:
        raw = await request.body()  # its size was checked as it streamed in (api.boundary)
        body: Any
        if _media(request.headers.get("content-type")) == ARROW:
            body = read_arrow(raw, limit=rt.settings.serving_batch_limit)
        else:
            try:
                body = pydantic_core.from_json(raw)
            except ValueError as exc:
                raise InvalidInput(f"the body is not valid JSON ({exc}); send {{\"records\": [...]}}") from None
            if isinstance(body, dict) and (unknown := sorted(set(body) - {"records", "dataframe_split"})):
                raise InvalidInput(f"unknown top-level key(s) {', '.join(repr(k)[:80] for k in unknown[:5])}; "
                                   "the body is {\"records\": [...]} or {\"dataframe_split\": {...}} and "
                                   "nothing else")
        decoded = time.perf_counter() - started
        answer = await rt.predictor.predict(name=name, alias=alias, body=body, probabilities=probabilities,
                                            request_id=request_id, requested_by=requester(actor))
    except LeanOpsError as exc:
        status = status_of(exc)
        rt.predictor.refused(request_id=request_id, name=name, alias=alias, status=status, message=str(exc))
        rt.metrics.refused.labels("(not found)" if status == 404 else name, "client" if status < 500 else "model").inc()
        raise
    except (BodyTooLarge, ClientDisconnect):
        raise  # the boundary answers (and counts) a body over the limit; a client that left gets nothing
    except Exception as exc:  # an unexpected failure still counts in the error rate; the boundary answers it
        rt.predictor.refused(request_id=request_id, name=name, alias=alias, status=what_failed(exc)[0],
                             message=f"{type(exc).__name__} (see the server log)")
        rt.metrics.refused.labels(name, "model").inc()
        raise
    stage = rt.metrics.stage
    stage.labels(name, "parse").observe(decoded + answer.timings["validate"])
    stage.labels(name, "predict").observe(answer.timings["predict"])
    stage.labels(name, "log").observe(answer.timings["log"])
    rt.metrics.observe_predictions(name, answer.version, answer.predictions)
    for warning in answer.warnings:
        if warning.get("warning") == "unseen_category":
            rt.metrics.unseen.labels(name, str(warning["column"])[:64]).inc(int(warning["records"]))
    if explain:  # after the prediction is logged: an explanation never delays or changes what was served
        from core.serving.explain import explain_request

        model = await rt.predictor.model(name, alias)
        why = await run_in_threadpool(explain_request, model, body, version=answer.version,
                                      limit=rt.settings.serving_batch_limit)
        return Response(pydantic_core.to_json(answer.as_dict() | why, inf_nan_mode="null"),
                        media_type="application/json")
    if ARROW in request.headers.get("accept", ""):
        return Response(write_arrow(answer), media_type=ARROW)
    return Response(pydantic_core.to_json(answer.as_dict(), inf_nan_mode="null"), media_type="application/json")


class FeedbackIn(BaseModel):
    request_id: str | None = Field(None, pattern=REQUEST_ID, description="the request_id a predict answer carried")
    batch_id: str | None = Field(None, pattern=REQUEST_ID, description="instead of request_id: a batch scoring "
                                                                       "run's batch_id, with ids")
    ids: list[bool | int | float | str] | None = Field(None, min_length=1, description="with batch_id: the id "
                                                       "column's value of each labelled row (row numbers without one)")
    labels: list[bool | int | float | str] = Field(min_length=1, description="the true label of each record, in order")

    @model_validator(mode="after")
    def _one_target(self) -> FeedbackIn:
        if (self.request_id is None) == (self.batch_id is None):
            raise ValueError("send request_id (a predict answer's) or batch_id with ids (a batch run's), not both")
        if self.batch_id is not None and self.ids is None:
            raise ValueError("batch_id needs ids: the id of each labelled row, in the order of labels")
        return self


class FeedbackAnswer(BaseModel):
    request_id: str | None = None
    batch_id: str | None = None
    stored: int


@router.post("/{name}/feedback", response_model=FeedbackAnswer, response_model_exclude_none=True, responses=ERRORS)
async def feedback(request: Request, name: ModelName, body: FeedbackIn, actor: CurrentActor) -> FeedbackAnswer:
    """Ground truth for a logged prediction (one label per record), for performance monitoring.

    Only the token or user that made the prediction may label it, or a role of at least the model's
    policy ``feedback.label_any_request`` (admin by default): anyone else gets a 403 and nothing is stored.
    Replacing earlier labels is audited with their old values.
    """
    rt = request.app.state.runtime

    def store() -> int:
        with transaction(rt.factory) as session:
            if body.batch_id is not None:
                return record_batch_feedback(session, actor=actor, model=name, batch_id=body.batch_id,
                                             ids=list(body.ids or []), labels=list(body.labels),
                                             policies=rt.settings.policies, store=rt.settings.data_store)
            return record_feedback(session, actor=actor, model=name, request_id=str(body.request_id),
                                   labels=list(body.labels), policies=rt.settings.policies,
                                   store=rt.settings.data_store)

    try:
        stored = await run_in_threadpool(store)
    except NotFound:
        if rt.writer is None or not rt.writer.depth:
            raise
        await run_in_threadpool(rt.writer.drain, 10.0)  # the prediction may still be on its way to the log
        stored = await run_in_threadpool(store)
    return FeedbackAnswer(request_id=body.request_id, batch_id=body.batch_id, stored=stored)


def _media(content_type: str | None) -> str:
    """The media type of a Content-Type header, without parameters, lower case."""
    return (content_type or "").split(";", 1)[0].strip().lower()
