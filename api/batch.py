"""Batch scoring over HTTP: queue a scoring job (as ``cli.py score`` and the Registry page's *Score a file*),
poll it with ``GET /v1/jobs/{id}``, download its output once it succeeded."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentActor, require
from api.errors import responses
from api.jobs import JobAnswer, job_answer
from api.predict import ModelName
from core.errors import InvalidInput
from core.platform import job_queue
from core.platform.database import reading, transaction
from core.serving import batch_jobs

router = APIRouter(prefix="/v1/models", tags=["batch scoring"])
ERRORS = responses(404, 413, 422, 503)


class BatchJobIn(BaseModel):
    """What to score (JSON: a dataset version; multipart: a ``file`` plus these as form fields)."""

    model_config = ConfigDict(extra="forbid")
    dataset: str | None = Field(None, max_length=200, description="NAME or NAME:VERSION (NAME: its trusted default)")
    alias: str | None = Field(None, max_length=64, description="score with the version this alias names "
                                                               "(default champion)")
    version: int | None = Field(None, ge=1, description="score with this version")
    id_column: str | None = Field(None, max_length=255, description="output only this column beside the "
                                                                    "predictions; identifies rows for feedback")
    explain: bool = Field(False, description="add shap_<column> contributions and shap_base")
    format: Literal["parquet", "csv"] = "parquet"


BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": BatchJobIn.model_json_schema()},
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "a CSV or Parquet file"},
        **{k: v for k, v in BatchJobIn.model_json_schema()["properties"].items() if k != "dataset"}}}}}}}


@router.post("/{name}/batch-jobs", status_code=202, response_model=JobAnswer, openapi_extra=BODY,
             responses=ERRORS)
async def queue_batch_job(request: Request, name: ModelName, actor: CurrentActor) -> JobAnswer:
    """Queue batch scoring of an uploaded file (multipart ``file``) or a dataset version (JSON ``dataset``); poll
    ``GET /v1/jobs/{id}``; once it succeeded, ``GET /v1/models/{name}/batch-jobs/{id}/output`` is the file."""
    rt = request.app.state.runtime
    await require(request, actor, "jobs.launch")
    staged, filename = None, None
    if (request.headers.get("content-type") or "").lower().startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=20)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InvalidInput("file: missing; send the CSV or Parquet file to score as the multipart field 'file'")
        fields: dict[str, Any] = {k: v for k, v in form.items() if k != "file" and isinstance(v, str) and v != ""}
        if "explain" in fields:
            fields["explain"] = fields["explain"].lower() in ("1", "true", "yes", "on")
        filename = (upload.filename or "upload").replace("\x00", "")[-200:] or "upload"
        staged = await run_in_threadpool(batch_jobs.stage_upload, rt.settings, filename=filename, data=upload.file,
                                         max_bytes=rt.settings.max_upload_mb * 2**20)
    else:
        try:
            fields = await request.json()
        except ValueError:
            raise InvalidInput("the body is neither JSON {\"dataset\": …} nor a multipart upload with 'file'") from None
        if not isinstance(fields, dict) or not fields.get("dataset"):
            raise InvalidInput("dataset: missing; send {\"dataset\": \"NAME[:VERSION]\"} or upload a 'file'")
    try:
        body = BatchJobIn.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}") from None

    def launch() -> job_queue.JobView:
        with transaction(rt.factory) as session:
            return batch_jobs.queue(session, rt.settings, actor=actor, model=name, staged=staged, filename=filename,
                                    dataset=None if staged else body.dataset, alias=body.alias, version=body.version,
                                    id_column=body.id_column, explain=body.explain, out_format=body.format)

    return job_answer(await run_in_threadpool(launch))


@router.get("/{name}/batch-jobs/{job_id}/output", response_class=StreamingResponse, responses={
    200: {"content": {"application/vnd.apache.parquet": {}, "text/csv": {}}, "description": "the scored rows"},
    **responses(404, 422, 503)})
async def batch_output(request: Request, name: ModelName, actor: CurrentActor,
                       job_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> StreamingResponse:
    """The output of a succeeded batch scoring job (422 while it is queued or running)."""
    rt = request.app.state.runtime
    await require(request, actor, "read")
    store = rt.settings.data_store

    def find() -> tuple[str, str]:
        with reading(rt.factory) as session:
            return batch_jobs.output_of(session, store, model=name, job_id=job_id)

    key, filename = await run_in_threadpool(find)
    handle = await run_in_threadpool(store.open, key)

    def chunks() -> Any:
        with handle:
            yield from iter(lambda: handle.read(1 << 20), b"")

    media = "text/csv" if filename.endswith(".csv") else "application/vnd.apache.parquet"
    return StreamingResponse(chunks(), media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})
