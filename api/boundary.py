"""The API's trust boundary, checked before any route reads a byte of the body.

FastAPI parses a JSON body and spools a multipart upload before a route's dependencies run, so a
token check in a dependency comes too late: a client without a token could make the server read
(and hold) any amount of data. This pure ASGI middleware runs first and answers at once:

- 401 when a route other than the public ones (``/health``, ``/health/ready``, the docs) is called
  without ``Authorization: Bearer <token>`` or with an unknown or revoked token (the token cache
  of ``api.auth`` answers; the body is never read);
- 413 when the declared ``Content-Length`` is over the route's limit, or, for a body without one
  (chunked), as soon as the bytes streamed in pass it — the body is counted, never buffered whole;
- 5xx for an unexpected exception, in the fixed words of ``api.errors.server_error`` with a
  correlation id (the exception goes to the log, redacted).

Limits: ``JSON_LIMIT`` (1 MB) for the JSON control routes, ``LEANOPS_MAX_UPLOAD_MB`` (plus the multipart
envelope) for dataset uploads, and for predict ``LEANOPS_PREDICT_MAX_MB`` or, when unset,
``PREDICT_BYTES_PER_RECORD`` per record of ``LEANOPS_SERVING_BATCH_LIMIT`` (at least ``PREDICT_MIN_MB``,
at most ``LEANOPS_MAX_UPLOAD_MB``). A refusal sent before the body was read asks the client to close
the connection, so what it still sends is not read either.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import JSONResponse

from api.errors import server_error
from core.errors import AuthError, redact
from core.settings import Settings
from core.training.spec import MODEL_NAME_RE

log = logging.getLogger("leanops.api")

MB = 2**20
JSON_LIMIT = 1 * MB  # feedback, training jobs, promote, rollback … and any other route
UPLOAD_ENVELOPE = 64 * 2**10  # multipart boundaries, headers and the description field around the file
PREDICT_BYTES_PER_RECORD = 2 * 2**10
PREDICT_MIN_MB = 8
PREDICT_ROUTE = "/v1/models/{name}/predict"
UPLOAD_ROUTE = "/v1/datasets/{name}/versions"
BATCH_ROUTE = "/v1/models/{name}/batch-jobs"  # an upload to score: the upload limit
MODEL_UPLOAD_ROUTE = "/v1/models/{name}/versions"  # a model file to import: the upload limit
# The routes with a limit of their own, matched on the path before routing (tests check they exist).
_SPECIAL = ((re.compile(r"^/v1/models/(?P<name>[^/]+)/predict$"), PREDICT_ROUTE),
            (re.compile(r"^/v1/datasets/(?P<name>[^/]+)/versions$"), UPLOAD_ROUTE),
            (re.compile(r"^/v1/models/(?P<name>[^/]+)/batch-jobs$"), BATCH_ROUTE),
            (re.compile(r"^/v1/models/(?P<name>[^/]+)/versions$"), MODEL_UPLOAD_ROUTE))
PUBLIC = frozenset({"/health", "/health/ready"})
ACTOR_KEY = "leanops.actor"  # where the boundary leaves the caller's actor in the ASGI scope
MISSING_TOKEN = ("this route needs a header 'Authorization: Bearer <token>'; "
                 "create a token with `python cli.py token create --role ROLE --owner USER`")


@dataclass(frozen=True)
class Limit:
    size: int  # bytes
    shown: str  # how the limit is named in the 413 message
    hint: str
    field: str


def predict_limit_mb(settings: Settings) -> int:
    """The predict body limit in MB: the setting, or derived from the batch limit."""
    if settings.predict_max_mb is not None:
        return settings.predict_max_mb
    derived = max(PREDICT_MIN_MB, math.ceil(settings.serving_batch_limit * PREDICT_BYTES_PER_RECORD / MB))
    return min(derived, settings.max_upload_mb)


def limits(settings: Settings) -> dict[str | None, Limit]:
    """Route template → its body limit; the ``None`` entry is every other route's."""
    predict_mb = predict_limit_mb(settings)
    return {
        PREDICT_ROUTE: Limit(predict_mb * MB, f"{predict_mb} MB", "split the records into several requests "
                             "(LEANOPS_PREDICT_MAX_MB)", "records"),
        UPLOAD_ROUTE: Limit(settings.max_upload_mb * MB + UPLOAD_ENVELOPE, f"{settings.max_upload_mb} MB",
                            "the upload limit is LEANOPS_MAX_UPLOAD_MB", "file"),
        BATCH_ROUTE: Limit(settings.max_upload_mb * MB + UPLOAD_ENVELOPE, f"{settings.max_upload_mb} MB",
                           "the upload limit is LEANOPS_MAX_UPLOAD_MB", "file"),
        MODEL_UPLOAD_ROUTE: Limit(settings.max_upload_mb * MB + UPLOAD_ENVELOPE, f"{settings.max_upload_mb} MB",
                                  "the upload limit is LEANOPS_MAX_UPLOAD_MB", "file"),
        None: Limit(JSON_LIMIT, "1 MB", "this route takes a small JSON document", "body"),
    }


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a streamed body passes its limit."""


class TrustBoundary:
    """Pure ASGI middleware: token and body size checks before the app reads the body (see the module)."""

    def __init__(self, app: Any, *, runtime: Any, public: Iterable[str | None] = ()) -> None:
        self.app, self.runtime = app, runtime
        self.public = PUBLIC | frozenset(p for p in public if p)
        self.limits = limits(runtime.settings)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":  # the API has none; should one appear, it is behind the token too
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        template, params = _special(scope["path"])
        limit = self.limits[template]
        declared, chunked, authorization = None, False, None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        unread = chunked or bool(declared)  # a body the app has not read: close once answered

        if not self._is_public(scope["path"]):
            token = _bearer(authorization)
            if token is None:
                await _answer(scope, send, 401, {"detail": MISSING_TOKEN}, close=unread, auth=True)
                return
            try:
                scope[ACTOR_KEY] = await self.runtime.tokens.actor(token)
            except AuthError as exc:
                await _answer(scope, send, 401, {"detail": str(exc)}, close=unread, auth=True)
                return
            except Exception as exc:  # noqa: BLE001 - the token store failed: a 5xx in fixed words
                await self._failed(scope, send, exc, close=unread)
                return

        if declared is not None and declared > limit.size:
            await self._too_large(scope, send, limit, declared, template, params, close=True)
            return

        received, over, started, answered = 0, False, False, False

        async def counted() -> dict[str, Any]:
            nonlocal received, over, unread
            if over:
                raise BodyTooLarge
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.size:
                    over = True
                    raise BodyTooLarge
                unread = unread and bool(message.get("more_body", False))
            return message

        async def guarded(message: dict[str, Any]) -> None:
            nonlocal started, answered
            if over:  # whatever the app answers to a cut-off body (FastAPI: a 400), the answer is 413
                if not answered:
                    answered = True
                    await self._too_large(scope, send, limit, received, template, params, close=True)
                return
            if message["type"] == "http.response.start":
                started = True
                if unread:  # answered without reading the whole body: do not read the rest either
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception as exc:  # noqa: BLE001 - never a traceback or an exception's text to the client
            if over:
                if not answered:
                    answered = True
                    await self._too_large(scope, send, limit, received, template, params, close=True)
            elif not started:
                await self._failed(scope, send, exc, close=unread)
            else:  # the answer is under way: nothing to send, but the log gets it (redacted)
                server_error(exc, method=scope.get("method", ""), path=scope.get("path", ""),
                             secrets=self.runtime.secrets)

    async def _websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        authorization = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        token = _bearer(authorization)
        try:
            if token is None:
                raise AuthError("no token")
            scope[ACTOR_KEY] = await self.runtime.tokens.actor(token)
        except Exception:  # noqa: BLE001 - refused before the handshake, whatever the reason
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)

    def _is_public(self, path: str) -> bool:
        return path in self.public or any(path.startswith(p + "/") for p in self.public if p.startswith("/docs"))

    async def _failed(self, scope: dict[str, Any], send: Any, exc: Exception, *, close: bool) -> None:
        response = server_error(exc, method=scope.get("method", ""), path=scope.get("path", ""),
                                secrets=self.runtime.secrets)
        if close:
            response.headers["connection"] = "close"
        await response(scope, _no_receive, send)

    async def _too_large(self, scope: dict[str, Any], send: Any, limit: Limit, size: int, template: str | None,
                         params: dict[str, Any], *, close: bool) -> None:
        detail = f"the body is over {limit.shown} ({size} bytes); {limit.hint}"
        if template == PREDICT_ROUTE:
            self._refused_prediction(scope, params, detail)
        await _answer(scope, send, 413, {"detail": detail, "field": limit.field}, close=close)

    def _refused_prediction(self, scope: dict[str, Any], params: dict[str, Any], detail: str) -> None:
        """A predict request refused for its size still counts in the error rate (as the route's refusals do)."""
        name = str(params.get("name", ""))
        if not MODEL_NAME_RE.match(name):
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        alias = (query.get("alias") or ["champion"])[0][:64]
        try:
            self.runtime.predictor.refused(request_id=uuid.uuid4().hex, name=name, alias=alias, status=413,
                                           message=detail)
        except Exception as exc:  # noqa: BLE001 - counting must not turn a 413 into a 500
            log.warning("could not count the refused prediction: %s", redact(str(exc), self.runtime.secrets))


def _special(path: str) -> tuple[str | None, dict[str, str]]:
    for pattern, template in _SPECIAL:
        found = pattern.match(path)
        if found:
            return template, found.groupdict()
    return None, {}


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def _no_receive() -> dict[str, Any]:  # a refusal never reads the body
    return {"type": "http.disconnect"}


async def _answer(scope: dict[str, Any], send: Any, status: int, body: dict[str, Any], *, close: bool,
                  auth: bool = False) -> None:
    headers = {"WWW-Authenticate": "Bearer"} if auth else {}
    if close:
        headers["Connection"] = "close"
    await JSONResponse(body, status_code=status, headers=headers)(scope, _no_receive, send)
