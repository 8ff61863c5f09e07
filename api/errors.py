"""LeanOps errors → HTTP answers: 4xx with a message naming the field, never a 500 for a bad request.

A 5xx answer says what failed in fixed words and carries a ``correlation_id``; the whole exception
(redacted: no URL password, no configured secret) goes to the server's log under that id. Nothing
internal — a store's location, an exception's text, a traceback — reaches the client.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    AuthError,
    Conflict,
    IntegrityError,
    InvalidInput,
    LeanOpsError,
    NotFound,
    PermissionDenied,
    PolicyBlocked,
    StoreUnavailable,
    redact,
    url_password,
)
from core.serving.signature import RecordError

log = logging.getLogger("leanops.api")

STATUS: tuple[tuple[type[LeanOpsError], int], ...] = (
    (AuthError, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (InvalidInput, 422),
    (PolicyBlocked, 409),
    (IntegrityError, 409),
    (Conflict, 409),
    (StoreUnavailable, 503),
    (LeanOpsError, 400),
)

# What a 503 says, by the start of the store's own message (fixed words only: never the message itself).
_UNAVAILABLE: tuple[tuple[str, str], ...] = (
    ("the metadata database is busy", "the metadata database is busy"),
    ("the metadata database", "the metadata database is unavailable"),
    ("the mlflow store", "the model registry (MLflow) is unavailable"),
    ("the s3 store", "the file store is unavailable"),
    ("the dask scheduler", "the compute cluster is unreachable"),
    ("the prediction log", "the prediction log has no room (is the database down?)"),
    ("another registration", "another change to the same dataset happened at the same moment"),
)


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, and the field it is about when there is one.

    5xx answers carry a ``correlation_id`` instead of details: quote it to whoever runs the server.
    """

    detail: str
    field: str | None = None
    correlation_id: str | None = None


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody, "description": "no or unknown token"},
                                               403: {"model": ErrorBody, "description": "the role may not"},
                                               413: {"model": ErrorBody, "description": "the body is too large"}}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route gives (besides 401/403/413)."""
    return {**AUTH_ERRORS, **{code: {"model": ErrorBody} for code in codes}}


def status_of(exc: LeanOpsError) -> int:
    return next(code for kind, code in STATUS if isinstance(exc, kind))


def known_secrets(settings: Any) -> tuple[str, ...]:
    """The secrets of ``settings`` a log line must never show (beyond what ``redact`` finds by shape)."""
    found = [url_password(settings.db_url), url_password(settings.mlflow_uri)]
    for name in ("s3_secret_access_key", "admin_password"):
        value = getattr(settings, name, None)
        found.append(value.get_secret_value() if value is not None else None)
    return tuple(s for s in found if s)


def _secrets(app: Any) -> Iterable[str]:
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    return getattr(runtime, "secrets", ())


def is_store_failure(exc: BaseException) -> bool:
    """Whether an unexpected exception is a database that cannot be reached (answered 503, not 500)."""
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return isinstance(exc, OperationalError | InterfaceError | PoolTimeout)


def what_failed(exc: BaseException) -> tuple[int, str]:
    """The status and the fixed words a 5xx answer gives for ``exc``."""
    if isinstance(exc, StoreUnavailable):
        start = str(exc).lower()
        for prefix, words in _UNAVAILABLE:
            if start.startswith(prefix):
                return 503, f"{words}; try again later"
        if "could not be loaded" in start or "warm-up" in start:
            return 503, "the model version could not be loaded; try again later"
        return 503, "a store this request needs is unavailable; try again later"
    if is_store_failure(exc):
        return 503, "a database this request needs is unavailable; try again later"
    return 500, "the server failed to handle this request"


def server_error(exc: BaseException, *, method: str, path: str, secrets: Iterable[str] = ()) -> JSONResponse:
    """The 5xx answer for ``exc``: fixed words and a correlation id; the exception is logged under that id."""
    status, words = what_failed(exc)
    correlation_id = uuid.uuid4().hex
    trace = redact("".join(traceback.format_exception(exc)), secrets)
    log.error("%s %s answered %s [correlation_id=%s]\n%s", method, path, status, correlation_id, trace.rstrip())
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse({"detail": f"{words} (correlation id {correlation_id})", "correlation_id": correlation_id},
                        status_code=status, headers=headers)


def error_response(exc: LeanOpsError, request: Request | None = None) -> JSONResponse:
    code = status_of(exc)
    if code >= 500:
        return server_error(exc, method=request.method if request else "", path=request.url.path if request else "",
                            secrets=_secrets(request.app) if request else ())
    body: dict[str, Any] = {"detail": str(exc) or type(exc).__name__}
    if isinstance(exc, RecordError):
        body["field"] = exc.field
        body["errors"] = [{"field": p.field, "detail": str(p)} for p in exc.problems]
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    return JSONResponse(body, status_code=code, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("body",)) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(LeanOpsError)
    async def _leanops(request: Request, exc: LeanOpsError) -> JSONResponse:
        return error_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return not_json(next(e for e in exc.errors() if e.get("type") == "json_invalid").get("msg", ""))
        problems = [f"{_location(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        first = exc.errors()[0] if exc.errors() else {}
        return JSONResponse({"detail": "; ".join(problems) or "the request is malformed",
                             "field": _location(tuple(first.get("loc", ())))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI and Starlette answer 400 for a body they cannot parse at all ("There was an error parsing
        # the body" for bytes that are not text, "Invalid multipart data."); every other malformed body is
        # a 422 naming what is wrong, so these are too. No LeanOps code raises an HTTP 400 itself.
        if exc.status_code == 400:
            cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else None
            return unreadable_body(str(exc.detail) + (f" ({cause})" if cause else ""))
        return await http_exception_handler(request, exc)


def not_json(why: str) -> JSONResponse:
    """The 422 for a body that is not JSON: it names the body (there is no field to name)."""
    return unreadable_body(f"not valid JSON ({why[:200] or 'unreadable'}); send a JSON object")


def unreadable_body(why: str) -> JSONResponse:
    return JSONResponse({"detail": f"body: {why[:300]}", "field": "body"}, status_code=422)
