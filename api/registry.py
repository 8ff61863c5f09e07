"""Promotion and rollback over HTTP, for CI pipelines: the same core calls as the Registry page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.auth import CurrentActor, require
from api.errors import responses
from api.predict import ModelName
from core.monitoring import shadow_comparison
from core.promotion import gates, moves

router = APIRouter(prefix="/v1/models", tags=["registry"])


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=2**31 - 1)
    reason: str = Field("", max_length=2000)
    force: bool = Field(False, description="admin only: promote despite failed gates (reason required)")


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000)


@router.post("/{name}/promote", responses=responses(403, 404, 409, 422, 503))
async def promote(request: Request, name: ModelName, body: PromoteIn, actor: CurrentActor) -> JSONResponse:
    """Move `champion` to `version` if every policy gate passes; 409 with the checks when blocked."""
    await require(request, actor, "models.force_promote" if body.force else "models.promote")
    runtime = request.app.state.runtime
    try:
        change = await run_in_threadpool(lambda: moves.promote(
            runtime.factory, runtime.settings, actor=actor, model=name, version=body.version, reason=body.reason,
            force=body.force))
    except gates.GatesFailed as exc:
        return JSONResponse({"promoted": False, "detail": str(exc), **exc.result.as_dict()}, status_code=409)
    return JSONResponse({"promoted": True, "model": name, "from_version": change.from_version,
                         "to_version": change.to_version, "forced": change.forced,
                         "checks": (change.checks or {}).get("checks", [])})


@router.post("/{name}/rollback", responses=responses(403, 404, 409, 422, 503))
async def rollback(request: Request, name: ModelName, body: RollbackIn, actor: CurrentActor) -> JSONResponse:
    """Move `champion` back to the previous champion."""
    await require(request, actor, "models.rollback")
    runtime = request.app.state.runtime
    change = await run_in_threadpool(lambda: moves.rollback(
        runtime.factory, runtime.settings, actor=actor, model=name, reason=body.reason))
    return JSONResponse({"model": name, "from_version": change.from_version, "to_version": change.to_version})


@router.get("/{name}/shadow", responses=responses(403, 404, 422, 503))
async def shadow(request: Request, name: ModelName, actor: CurrentActor) -> JSONResponse:
    """The champion/challenger shadow comparison (as `cli.py shadow`): records compared, agreement, each
    one's realised metric on the labelled ones with a paired test (McNemar / Wilcoxon), and the policy's
    decision (none, wait, promote, discard)."""
    await require(request, actor, "read")
    runtime = request.app.state.runtime

    # Shared per window and computed off the request path: a viewer calling in a loop costs one comparison
    # a minute, not a read of every paired record each time (issue 27).
    return JSONResponse((await run_in_threadpool(lambda: shadow_comparison.shared(
        runtime.factory, runtime.settings, actor=actor, model=name))).as_dict())
