"""Who is signed in: login form, session cookie, idle expiry, logout. Pages call ``actor()``.

A browser signs in through the login route (ui/auth_routes.py), which sets an HttpOnly cookie; every
run checks that cookie's session in the database (core/accounts/sessions.py), so a reload, a new tab or a
restarted dashboard stays signed in, and a logout, an expiry or an admin's change applies at the next
action in every tab. Without a cookie (AppTest, which cannot send one) the signed-in user is the
``user_id`` that server code put in ``st.session_state``, with the idle limit kept there.
"""

from __future__ import annotations

import html
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import streamlit as st

from core.accounts import auth, sessions
from core.actors import Actor
from core.errors import LeanOpsError
from core.platform.database import transaction
from ui import auth_routes, oidc_routes, resources


def session_cookie() -> str | None:
    """The session id the browser sent when this tab connected (HttpOnly: no script on the page sees it)."""
    return _cookie(sessions.COOKIE)


def _cookie(name: str) -> str | None:
    value = st.context.cookies.get(name)
    return value if isinstance(value, str) and value else None  # AppTest's context holds no real cookies


def current(*, touch: bool = True) -> Actor | None:
    """The signed-in actor, reloaded each run (so a role change or deactivation applies at once).
    ``touch=False``: the check does not count as the user's activity (a live panel's own refresh)."""
    plain = session_cookie()
    if plain is not None:
        return _from_cookie(plain, touch=touch)
    state = st.session_state
    user_id = state.get("user_id")
    if user_id is None:
        return None
    idle = time.time() - state.get("last_seen", 0)
    limit = resources.settings().session_idle_minutes
    factory = resources.session_factory()
    if idle > limit * 60:
        with transaction(factory) as session:
            actor = auth.current_actor(session, user_id)
            if actor is not None:
                auth.logout(session, actor=actor, reason="idle")
        _clear(f"Your session expired after {limit} minutes without activity. Please log in again.")
        return None
    with factory() as session:
        actor = auth.current_actor(session, user_id)
    if actor is None:
        _clear("Your account was deactivated. Ask an admin.")
        return None
    if touch:
        state["last_seen"] = time.time()
    return actor


def _from_cookie(plain: str, *, touch: bool = True) -> Actor | None:
    state = st.session_state
    s = resources.settings()
    with transaction(resources.session_factory()) as session:
        check = sessions.resolve(session, session_id=plain, idle_minutes=s.session_idle_minutes, touch=touch)
    if check.actor is not None:
        state["user_id"] = check.actor.user_id
        return check.actor
    state.pop("user_id", None)
    ended = {
        "idle": f"Your session expired after {s.session_idle_minutes} minutes without activity. "
                "Please log in again.",
        "expired": f"Your session reached its {s.session_max_hours}-hour limit. Please log in again.",
        "deactivated": "Your account was deactivated. Ask an admin.",
        "revoked": "You were signed out: a logout (maybe in another tab), a change to your password, role or "
                   "account, or an admin ended this session. Please log in again.",
    }
    message = ended.get(check.reason)
    if message and "login_message" not in state:  # your own logout says so itself
        state["login_message"] = message
    return None


def actor() -> Actor:
    """For pages: the signed-in actor (app.py guarantees there is one)."""
    found = current()
    if found is None:
        st.stop()
    return found


def recheck(*, touch: bool = False) -> Actor:
    """The session checked again now, for every live panel (``st.fragment(run_every=…)``) at its top and
    every write (``ui.components.act``) before it runs: a fragment rerun does not run the page script, so
    the actor the page read may have been revoked, logged out or deactivated since. A session that ended
    reruns the whole app, whose gate then shows the login page; nothing after this call runs.
    ``touch``: count the check as the user's activity (a click does; a panel's timer does not)."""
    found = current(touch=touch)
    if found is None:
        st.rerun(scope="app")
    assert found is not None
    return found


def _clear(message: str) -> None:
    for key in ("user_id", "last_seen"):
        st.session_state.pop(key, None)
    st.session_state["login_message"] = message


def password_change_due(who: Actor) -> bool:
    """Whether the signed-in user must replace a generated password before seeing anything else."""
    if who.user_id is None:
        return False
    with resources.session_factory()() as session:
        return auth.password_change_due(session, who.user_id)


def change_password_page() -> None:
    """The only page of a user whose password was generated (shown once): choose your own first."""
    who = actor()
    st.title("Choose a new password")
    st.info("The password you signed in with was generated and shown once. Choose your own password to go on.")
    with st.form("change-password"):
        current = st.text_input("Current password", type="password", key="change-current")
        new = st.text_input("New password", type="password", key="change-new",
                            help=f"at least {auth.MIN_PASSWORD} characters")
        repeat = st.text_input("Repeat the new password", type="password", key="change-repeat")
        submitted = st.form_submit_button("Change password", type="primary")
    if not submitted:
        return
    if new != repeat:
        st.error("The two new passwords differ.")
        return
    plain = session_cookie()
    try:
        with transaction(resources.session_factory()) as session:
            auth.change_password(session, actor=who, current=current, new=new,  # this browser stays signed in
                                 keep_session_hash=sessions.digest(plain) if plain else None)
    except LeanOpsError as exc:
        st.error(str(exc))
        return
    st.session_state["password_changed"] = True
    st.rerun()


def login_notices(pending: str | None, refused: str | None) -> list[tuple[str, str]]:
    """What the login page shows above its form, as Markdown: why the session ended, why the last sign-in was
    refused. Both can carry text from outside (a provider's ``error_description`` in the OIDC callback, a typed
    name): shown through ``ui.components.message``, never as a link, image or HTML."""
    from ui.components import message

    return [(kind, message(text)) for kind, text in (("info", pending), ("error", refused)) if text]


def login_page() -> None:
    """The login form: a plain HTML form posting to the login route, which sets the session cookie.

    It posts back the path of the page it is shown on, so after the login the browser lands there.
    """
    st.title("LeanOps")
    st.caption("Data, training, registry, serving and monitoring for lean ML teams.")
    refused = (value := _cookie(auth_routes.MESSAGE_COOKIE)) and auth_routes.decode_message(value)
    for kind, text in login_notices(st.session_state.pop("login_message", None), refused or None):
        st.info(text) if kind == "info" else st.error(text)
    with resources.session_factory()() as session:
        if not auth.count_users(session):
            st.info("No account exists yet. Run `python cli.py init` in a terminal: it creates the admin and "
                    "shows its password once (or set LEANOPS_ADMIN_PASSWORD before starting the dashboard).")
    if not auth_routes.MOUNTED:
        st.warning("This dashboard was started without its login route: start it with "
                   "`streamlit run dashboard.py` (or `make run`).")
    st.html(_login_form(_here()))
    if (provider := resources.settings().oidc_provider()) is not None:  # single sign-on, when configured
        st.html(_sso_link(provider.name, _here()))


def _here() -> str:
    """The path of the page this tab shows with its selection (``st.context.url`` names the page without
    the query, ``st.query_params`` holds the query; AppTest has no URL)."""
    url = st.context.url
    if not isinstance(url, str):
        return "/"
    query = urlencode(st.query_params.to_dict())
    path = urlsplit(url).path
    return auth_routes.safe_next(f"{path}?{query}" if query else path)


_FIELD = ("display:block;width:100%;box-sizing:border-box;margin:0.25rem 0 1rem;padding:0.5rem 0.75rem;"
          "border:1px solid rgba(49,51,63,0.2);border-radius:0.5rem;font:inherit;background:#f0f2f6")
_BUTTON = ("padding:0.4rem 0.9rem;border:none;border-radius:0.5rem;background:#ff4b4b;color:#fff;"
           "font:inherit;cursor:pointer")


def _login_form(next_path: str) -> str:
    return (f'<form method="post" action="{auth_routes.LOGIN_PATH}" style="max-width:28rem">'
            '<label for="login-username">Username</label>'
            f'<input id="login-username" name="username" autocomplete="username" required style="{_FIELD}">'
            '<label for="login-password">Password</label>'
            '<input id="login-password" name="password" type="password" autocomplete="current-password" '
            f'required style="{_FIELD}">'
            f'<input type="hidden" name="next" value="{html.escape(next_path)}">'
            f'<button type="submit" style="{_BUTTON}">Log in</button></form>')


def _sso_link(provider_name: str, next_path: str) -> str:
    """A plain link to the SSO start route (a navigation, so the provider's redirects and cookies just work)."""
    href = html.escape(f"{oidc_routes.START_PATH}?{urlencode({'next': next_path})}")
    return (f'<p style="margin:0.5rem 0">or</p><a href="{href}" role="button" '
            f'style="{_BUTTON};display:inline-block;text-decoration:none;background:#31333f">'
            f'Sign in with {html.escape(provider_name)}</a>')


def logout_button(who: Actor) -> None:
    if st.sidebar.button("Log out", key="logout"):
        plain = session_cookie()
        with transaction(resources.session_factory()) as session:
            if plain:  # this cookie, and any copy of it, stops working in every tab at once
                sessions.end(session, session_id=plain)
            auth.logout(session, actor=who)
        _clear("You are logged out.")
        st.rerun()


def live_sessions() -> list[dict[str, Any]]:
    """Signed-in browsers for the Admin page (never the id itself: only its row number)."""
    with resources.session_factory()() as session:
        return [{"id": v.id, "user": v.user, "created": v.created, "last seen": v.last_seen, "expires": v.expires,
                 "client": v.client, "user agent": v.user_agent} for v in sessions.list_live(session)]
