"""The dashboard's own HTTP route beside Streamlit: the login form posts here, the answer sets the cookie.

Why a route: a Streamlit script talks to the browser over a websocket and cannot set a cookie, let
alone an HttpOnly one. ``dashboard.py`` serves ``app.py`` with ``st.App(..., routes=routes())``, so this
route lives on the dashboard's own origin (one process, one port, nothing to add to a reverse proxy).
``POST /auth/login`` checks the password with ``core.accounts.auth.login``, opens a ``core.accounts.sessions`` session
and answers ``303 See Other`` back to the page the form was on, with the session id in an HttpOnly,
SameSite=Lax cookie (Secure over https). A refusal goes back the same way with the message in a
short-lived HttpOnly cookie that the login page shows. The id never appears in a URL, in the page or
in anything a script on the page can read.
"""

from __future__ import annotations

import base64
import os
import re
from functools import cache
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from core.accounts import auth, sessions
from core.errors import LeanOpsError
from core.platform.database import transaction
from core.settings import Settings
from ui import resources

LOGIN_PATH = "/auth/login"
MESSAGE_COOKIE = "leanops_login_message"  # why the last login was refused, shown once by the login page
MESSAGE_SECONDS = 60
MAX_BODY = 16 * 1024  # a username and a password; anything bigger is not a login
_NEXT_RE = re.compile(r"^/[A-Za-z0-9_\-/]*$")  # a page of this dashboard, never another site
_QUERY_RE = re.compile(r"^[A-Za-z0-9_\-.~%+=&]{1,1000}$")  # its selection (ui/url_state.py), URL-encoded
MOUNTED = False  # set once the routes are served (dashboard.py); the login page warns otherwise


def routes() -> list[Route]:
    """The routes ``dashboard.py`` hands to ``st.App``."""
    global MOUNTED
    MOUNTED = True
    return [Route(LOGIN_PATH, login, methods=["POST"])]


def safe_next(path: str) -> str:
    """Where to go after the login: a path on this dashboard, else its first page (no open redirect).

    The page's query (its selection, ``/registry?model=loans&version=2``) is kept when it is plain
    URL-encoded text, so a deep link opens what it names once the login is done.
    """
    base, _, query = (path or "").partition("?")
    if not _NEXT_RE.match(base) or base.startswith("//"):
        return "/"
    return f"{base}?{query}" if _QUERY_RE.match(query) else base


def encode_message(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_message(value: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(value.encode()).decode()[:300]
    except (ValueError, UnicodeDecodeError):
        return None


async def login(request: Request) -> Response:
    if not _same_origin(request):
        # A form on another site posting here would sign the browser in as the attacker (login CSRF).
        return PlainTextResponse("login refused: the form was not sent from this dashboard", status_code=403)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return PlainTextResponse(f"login refused: the form is over {MAX_BODY} bytes", status_code=413)
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    client = client_address(request)
    plain, message = await run_in_threadpool(
        _check, fields.get("username", "").strip(), fields.get("password", ""),
        request.headers.get("user-agent", ""), client)
    response = RedirectResponse(safe_next(fields.get("next", "/")), status_code=303)
    secure = request.url.scheme == "https"
    if plain is None:
        response.set_cookie(MESSAGE_COOKIE, encode_message(message), max_age=MESSAGE_SECONDS, path="/",
                            httponly=True, samesite="lax", secure=secure)
        return response
    response.delete_cookie(MESSAGE_COOKIE, path="/")
    response.set_cookie(sessions.COOKIE, plain, max_age=_process()[0].session_max_hours * 3600, path="/",
                        httponly=True, samesite="lax", secure=secure)
    return response


def client_address(request: Request) -> str:
    """The address a login is throttled and recorded under: forwarded headers count only when configured.

    uvicorn (under ``streamlit run``) takes ``X-Forwarded-For`` from its trusted hosts, by default loopback,
    before any LeanOps code runs: then anything on this host, or a proxy passing a client's own header through,
    picks the address it is counted under, one fresh address per guess. Unless ``FORWARDED_ALLOW_IPS`` names
    the proxies (set for a real proxy: docs/security.md), a rewritten address is replaced by the loopback peer
    it came from, so every such request shares that one address's backoff."""
    host = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for", "")
    if forwarded and "FORWARDED_ALLOW_IPS" not in os.environ \
            and host == forwarded.rsplit(",", 1)[-1].strip():
        return "127.0.0.1"
    return host


@cache
def _process() -> tuple[Settings, sessionmaker[Session]]:
    """The dashboard process's settings and engine (ui/resources.py), fetched once: a route runs outside
    any script run, where each st.cache_resource call would log a "missing ScriptRunContext" warning."""
    return resources.settings(), resources.session_factory()


def _check(username: str, password: str, user_agent: str, client: str) -> tuple[str | None, str]:
    """The password check and the new session, in one transaction: (session id, "") or (None, message)."""
    s, factory = _process()
    try:
        with transaction(factory) as db:
            result = auth.login(db, username=username, password=password, max_failures=s.login_max_failures,
                                lockout_seconds=s.login_lockout_seconds, client=client)
            if result.actor is None:
                return None, result.message
            return sessions.start(db, actor=result.actor, user_agent=user_agent, client=client,
                                  max_hours=s.session_max_hours), ""
    except LeanOpsError as exc:  # e.g. the database is unreachable: said on the login page
        return None, str(exc)


def _same_origin(request: Request) -> bool:
    """A browser names the page a form came from in ``Origin``; it must be this dashboard's host.

    A request without ``Origin`` (not a browser form post: curl, a test client) is let through: it
    carries no victim's cookies to abuse.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()
