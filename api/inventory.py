"""The model inventory, periodic reviews and signed test reports over HTTP: the same core calls as the
Inventory page and ``cli.py model list`` / ``model review`` / ``model profile`` / ``report verify``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentActor, require
from api.errors import responses
from api.predict import ModelName
from core.compliance import inventory
from core.errors import InvalidInput, NotFound
from core.platform.database import transaction
from core.promotion import test_reports
from core.registry import stewardship
from core.settings import Settings
from core.training import runs

router = APIRouter(prefix="/v1/models", tags=["inventory"])
Sort = Literal["model", "owner", "risk_tier", "next_review_due", "open_alerts", "last_validation"]  # inventory.SORTS


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["continue", "retrain", "retire"]
    notes: str = Field(min_length=1, max_length=stewardship.NOTES_MAX, pattern=r"\S",
                       description="what was looked at and why the outcome (not only spaces)")


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    owner: str = Field("", max_length=64, description="a user account ('' for none)")
    intended_use: str = Field("", max_length=stewardship.NOTES_MAX)
    out_of_scope_use: str = Field("", max_length=stewardship.NOTES_MAX)
    tags: list[Annotated[str, Field(max_length=stewardship.TAG_LEN, pattern=r"^[^,]*$")]] = Field(
        default_factory=list, max_length=stewardship.TAGS_MAX, description="no commas; blank tags are dropped")


@router.get("", responses=responses(422, 503))
async def list_models(request: Request, actor: CurrentActor, search: Annotated[str, Query(max_length=200)] = "",
                      sort: Sort = "model") -> JSONResponse:
    """The model inventory (as `cli.py model list`): owner, risk tier, champion, last validation, reviews, alerts."""
    await require(request, actor, "read")
    unknown = sorted(set(request.query_params) - {"search", "sort"})
    if unknown:  # a misspelt filter must not silently list everything
        raise InvalidInput(f"unknown query parameter(s) {', '.join(map(repr, unknown[:5]))}; this route takes "
                           "search and sort")
    rt = request.app.state.runtime

    def read() -> list[dict[str, Any]]:
        with rt.factory() as session:
            return [r.as_dict() for r in inventory.list_models(session, rt.settings, search=search, sort=sort)]

    return JSONResponse(await run_in_threadpool(read))


@router.get("/{name}/reviews", responses=responses(404, 422, 503))
async def reviews(request: Request, name: ModelName, actor: CurrentActor) -> JSONResponse:
    """The model's review status (tier, interval, next due, overdue) and its reviews, newest first."""
    await require(request, actor, "read")
    rt = request.app.state.runtime

    def read() -> dict[str, Any]:
        with rt.factory() as session:
            row = _row(session, rt.settings, name)
            found = stewardship.status(session, rt.settings.policies.rules_for(name), model=name)
            return {"model": name, **found.as_dict(), "inventory": row,
                    "reviews": [r.as_dict() for r in stewardship.reviews_of(session, model=name)]}

    return JSONResponse(await run_in_threadpool(read))


def _row(session: Session, settings: Settings, name: str) -> dict[str, Any]:

    if not runs.versions_of(session, model=name):
        raise NotFound(f"model {name!r} is not registered")
    return inventory.row_of(session, settings, model=name).as_dict()


@router.post("/{name}/reviews", status_code=201, responses=responses(403, 404, 422, 503))
async def record_review(request: Request, name: ModelName, body: ReviewIn, actor: CurrentActor) -> JSONResponse:
    """Record a periodic review (approver): notes and outcome; the next review falls due by the model's tier."""
    await require(request, actor, "models.approve")
    rt = request.app.state.runtime

    def write() -> dict[str, Any]:
        with transaction(rt.factory) as session:
            return stewardship.record_review(session, rt.settings, actor=actor, model=name, outcome=body.outcome,
                                             notes=body.notes).as_dict()

    return JSONResponse(await run_in_threadpool(write), status_code=201)


@router.put("/{name}/profile", responses=responses(403, 404, 422, 503))
async def save_profile(request: Request, name: ModelName, body: ProfileIn, actor: CurrentActor) -> JSONResponse:
    """Set the model's inventory entry: owner (an active account), intended and out-of-scope use, tags."""
    await require(request, actor, "model_cards.edit")
    rt = request.app.state.runtime

    def write() -> dict[str, Any]:
        with transaction(rt.factory) as session:
            return {"model": name, **stewardship.save_profile(
                session, actor=actor, model=name, owner=body.owner, intended_use=body.intended_use,
                out_of_scope_use=body.out_of_scope_use, tags=body.tags).as_dict()}

    return JSONResponse(await run_in_threadpool(write))


Number = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/{name}/versions/{version}/test-reports", responses=responses(404, 422, 503))
async def version_test_reports(request: Request, name: ModelName, version: Number,
                               actor: CurrentActor) -> JSONResponse:
    """The signed test reports of a version (id, context, passed, time), oldest first."""
    await require(request, actor, "read")
    rt = request.app.state.runtime

    def read() -> list[dict[str, Any]]:
        with rt.factory() as session:
            return [{"id": r.id, "context": r.context, "passed": r.passed, "created_at": r.created_at.isoformat(),
                     "report_sha256": r.report_sha256}
                    for r in test_reports.of_version(session, model=name, version=version)]

    return JSONResponse(await run_in_threadpool(read))


@router.get("/{name}/versions/{version}/test-reports/{report_id}", responses=responses(404, 422, 503))
async def test_report_file(request: Request, name: ModelName, version: Number, report_id: Number,
                           actor: CurrentActor) -> Response:
    """One signed test report file, byte for byte as stored (check it with `cli.py report verify FILE`)."""
    await require(request, actor, "read")
    rt = request.app.state.runtime

    def read() -> bytes:
        with rt.factory() as session:
            found = next((r for r in test_reports.of_version(session, model=name, version=version)
                          if r.id == report_id), None)
        if found is None:
            raise NotFound(f"{name} v{version} has no test report {report_id}")
        return found.document.encode("utf-8")

    return Response(await run_in_threadpool(read), media_type="application/json")
