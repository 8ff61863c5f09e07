"""LeanOps errors → HTTP answers: 4xx/503 with a message naming the field, never a 500."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from core.errors import (
    AuthError,
    IntegrityError,
    InvalidInput,
    LeanOpsError,
    NotFound,
    PermissionDenied,
    PolicyBlocked,
    StoreUnavailable,
)
from core.serving.signature import RecordError

STATUS: tuple[tuple[type[LeanOpsError], int], ...] = (
    (AuthError, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (InvalidInput, 422),
    (PolicyBlocked, 409),
    (IntegrityError, 409),
    (StoreUnavailable, 503),
    (LeanOpsError, 400),
)


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, and the field it is about when there is one."""

    detail: str
    field: str | None = None


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody, "description": "no or unknown token"},
                                               403: {"model": ErrorBody, "description": "the role may not"}}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route gives (besides 401/403)."""
    return {**AUTH_ERRORS, **{code: {"model": ErrorBody} for code in codes}}


def status_of(exc: LeanOpsError) -> int:
    return next(code for kind, code in STATUS if isinstance(exc, kind))


def error_response(exc: LeanOpsError) -> JSONResponse:
    code = status_of(exc)
    body: dict[str, Any] = {"detail": str(exc) or type(exc).__name__}
    if isinstance(exc, RecordError):
        body["field"] = exc.field
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    if code == 503:
        headers = {"Retry-After": "5"}
    return JSONResponse(body, status_code=code, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("body",)) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(LeanOpsError)
    async def _leanops(request: Request, exc: LeanOpsError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{_location(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        first = exc.errors()[0] if exc.errors() else {}
        return JSONResponse({"detail": "; ".join(problems) or "the request is malformed",
                             "field": _location(tuple(first.get("loc", ())))}, status_code=422)
