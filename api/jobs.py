"""Jobs over HTTP: read a job's status, progress and result (a training job's, say)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentActor, require
from api.errors import responses
from core.platform import job_queue

router = APIRouter(prefix="/v1")
ERRORS = responses(404, 409, 422, 503)


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


def job_answer(view: job_queue.JobView) -> JobAnswer:
    return JobAnswer(id=view.id, kind=view.kind, status=view.status, progress=view.progress, stage=view.stage,
                     error=view.error, result=view.result, params=view.params, created_by=view.created_by,
                     created_at=view.created_at, started_at=view.started_at, finished_at=view.finished_at,
                     url=f"/v1/jobs/{view.id}")


@router.get("/jobs/{job_id}", tags=["jobs"], response_model=JobAnswer, responses=ERRORS)
async def job_status(request: Request, actor: CurrentActor,
                     job_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> JobAnswer:
    """A job's status, progress, stage, error and result."""
    await require(request, actor, "read")
    factory = request.app.state.runtime.factory

    def read() -> job_queue.JobView:
        with factory() as session:
            return job_queue.get(session, job_id)

    return job_answer(await run_in_threadpool(read))
