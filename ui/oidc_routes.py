"""Single sign-on routes beside the password login (see core/accounts/oidc.py for the protocol and the account mapping).

``GET /auth/oidc/start`` sends the browser to the provider with an authorization-code request (state,
nonce, PKCE); what the callback must find again rides in a short-lived HttpOnly cookie scoped to
``/auth/oidc/``. ``GET /auth/oidc/callback`` checks the state, trades the code for the ID token, verifies
it, applies the allow-list, maps the identity to a LeanOps user and opens the same ``sessions`` session
as ``POST /auth/login`` (ui/auth_routes.py), so logout, revocation and deactivation end it alike. Any
refusal goes back to the login page with its reason, like a refused password.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from core.accounts import oidc, sessions
from core.errors import LeanOpsError
from core.platform.database import transaction
from ui import auth_routes

START_PATH = "/auth/oidc/start"
CALLBACK_PATH = "/auth/oidc/callback"
FLOW_COOKIE = "leanops_oidc"  # state, nonce and PKCE verifier of the sign-in under way
FLOW_SECONDS = 600  # a sign-in at the provider must finish within this
DISCOVERY_SECONDS = 3600  # the discovery document is read again after this
log = logging.getLogger("leanops.sso")
_discovered: dict[str, tuple[float, oidc.Discovery]] = {}


def routes() -> list[Route]:
    """The routes ``dashboard.py`` hands to ``st.App`` (they answer 404 while SSO is not configured)."""
    return [Route(START_PATH, start, methods=["GET"]), Route(CALLBACK_PATH, callback, methods=["GET"])]


def _discovery(provider: oidc.Provider) -> oidc.Discovery:
    cached = _discovered.get(provider.issuer)
    if cached is None or time.monotonic() - cached[0] > DISCOVERY_SECONDS:
        cached = (time.monotonic(), oidc.discover(provider.issuer))
        _discovered[provider.issuer] = cached
    return cached[1]


def _redirect_uri(request: Request) -> str:
    configured = auth_routes._process()[0].oidc_redirect_url
    return configured or f"{request.url.scheme}://{request.url.netloc}{CALLBACK_PATH}"


def _refused(request: Request, next_path: str, message: str) -> Response:
    log.warning("single sign-on refused: %s", message)
    response = RedirectResponse(auth_routes.safe_next(next_path), status_code=303)
    response.set_cookie(auth_routes.MESSAGE_COOKIE, auth_routes.encode_message(message),
                        max_age=auth_routes.MESSAGE_SECONDS, path="/", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    response.delete_cookie(FLOW_COOKIE, path="/auth/oidc/")
    return response


async def start(request: Request) -> Response:
    provider = auth_routes._process()[0].oidc_provider()
    if provider is None:
        return PlainTextResponse("single sign-on is not configured (LEANOPS_OIDC_ISSUER)", status_code=404)
    next_path = auth_routes.safe_next(request.query_params.get("next", "/"))
    redirect_uri = _redirect_uri(request)
    try:
        discovery = await run_in_threadpool(_discovery, provider)
    except LeanOpsError as exc:
        return _refused(request, next_path, f"{provider.name} sign-in is unavailable: {exc}")
    flow = oidc.begin(provider, discovery, redirect_uri=redirect_uri)
    response = RedirectResponse(flow.url, status_code=303)
    value = auth_routes.encode_message(json.dumps({"state": flow.state, "nonce": flow.nonce,
                                                   "verifier": flow.verifier, "next": next_path,
                                                   "redirect_uri": redirect_uri}))
    # Lax: the provider's redirect back is a top-level GET, which carries it; a script never sees it.
    response.set_cookie(FLOW_COOKIE, value, max_age=FLOW_SECONDS, path="/auth/oidc/", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


async def callback(request: Request) -> Response:
    provider = auth_routes._process()[0].oidc_provider()
    if provider is None:
        return PlainTextResponse("single sign-on is not configured (LEANOPS_OIDC_ISSUER)", status_code=404)
    flow = _flow(request.cookies.get(FLOW_COOKIE, ""))
    next_path = flow.get("next", "/") if flow else "/"
    params = request.query_params
    if flow is None:
        return _refused(request, "/", f"The {provider.name} sign-in expired or was started in another browser; "
                                      "please try again.")
    if error := params.get("error"):
        detail = params.get("error_description", "")[:200]
        return _refused(request, next_path, f"{provider.name} did not sign you in ({error[:60]}{': ' if detail else ''}"
                                            f"{detail}).")
    state = params.get("state", "")
    if not hmac.compare_digest(state.encode(), str(flow.get("state", "")).encode()):
        return _refused(request, next_path, f"The {provider.name} sign-in answer does not belong to this browser's "
                                            "sign-in (state mismatch); please try again.")
    client = auth_routes.client_address(request)  # forwarded headers only when configured
    plain, message = await run_in_threadpool(_finish, provider, params.get("code", ""), flow,
                                             request.headers.get("user-agent", ""), client)
    if plain is None:
        return _refused(request, next_path, message)
    response = RedirectResponse(auth_routes.safe_next(next_path), status_code=303)
    response.delete_cookie(FLOW_COOKIE, path="/auth/oidc/")
    response.delete_cookie(auth_routes.MESSAGE_COOKIE, path="/")
    response.set_cookie(sessions.COOKIE, plain, max_age=auth_routes._process()[0].session_max_hours * 3600,
                        path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


def _flow(value: str) -> dict[str, Any] | None:
    """The sign-in under way, from its cookie (None when absent, expired or not ours)."""
    try:
        flow = json.loads(base64.urlsafe_b64decode(value.encode()).decode()) if value else None
    except (ValueError, UnicodeDecodeError):
        return None
    return flow if isinstance(flow, dict) and {"state", "nonce", "verifier", "redirect_uri"} <= flow.keys() else None


def _finish(provider: oidc.Provider, code: str, flow: dict[str, Any], user_agent: str,
            client: str) -> tuple[str | None, str]:
    """Code → verified ID token → allowed identity → LeanOps user → session: (session id, "") or (None, why)."""
    s, factory = auth_routes._process()
    try:
        discovery = _discovery(provider)
        token = oidc.exchange_code(provider, discovery, code=code, redirect_uri=flow["redirect_uri"],
                                   verifier=flow["verifier"])
        claims = oidc.verify_id_token(token, keys=oidc.fetch_jwks(discovery.jwks_uri), issuer=provider.issuer,
                                      client_id=provider.client_id, nonce=flow["nonce"])
        email = oidc.check_allowed(provider, claims)
        with transaction(factory) as db:
            result = oidc.sign_in(db, provider=provider, claims=claims, email=email)
            if result.actor is None:
                return None, result.message
            return sessions.start(db, actor=result.actor, user_agent=user_agent, client=client,
                                  max_hours=s.session_max_hours), ""
    except LeanOpsError as exc:
        return None, f"{provider.name} sign-in refused: {exc}"
