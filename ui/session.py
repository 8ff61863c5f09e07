"""Who is signed in: login form, idle expiry, logout. Pages call ``actor()``."""

from __future__ import annotations

import time

import streamlit as st

from core import auth
from core.actors import Actor
from core.errors import LeanOpsError
from core.platform.database import transaction
from ui import resources


def current() -> Actor | None:
    """The signed-in actor, reloaded each run (so a role change or deactivation applies at once)."""
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
    state["last_seen"] = time.time()
    return actor


def actor() -> Actor:
    """For pages: the signed-in actor (app.py guarantees there is one)."""
    found = current()
    if found is None:
        st.stop()
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
    try:
        with transaction(resources.session_factory()) as session:
            auth.change_password(session, actor=who, current=current, new=new)
    except LeanOpsError as exc:
        st.error(str(exc))
        return
    st.session_state["password_changed"] = True
    st.rerun()


def login_page() -> None:
    st.title("LeanOps")
    st.caption("Data, training, registry, serving and monitoring for lean ML teams.")
    if msg := st.session_state.pop("login_message", None):
        st.info(msg)
    with resources.session_factory()() as session:
        if not auth.count_users(session):
            st.info("No account exists yet. Run `python cli.py init` in a terminal: it creates the admin and "
                    "shows its password once (or set LEANOPS_ADMIN_PASSWORD before starting the dashboard).")
    with st.form("login"):
        username = st.text_input("Username", key="login-username")
        password = st.text_input("Password", type="password", key="login-password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        s = resources.settings()
        with transaction(resources.session_factory()) as session:
            result = auth.login(session, username=username.strip(), password=password,
                                max_failures=s.login_max_failures, lockout_seconds=s.login_lockout_seconds)
        if result.actor is None:
            st.error(result.message)
        else:
            st.session_state["user_id"] = result.actor.user_id
            st.session_state["last_seen"] = time.time()
            st.rerun()


def logout_button(who: Actor) -> None:
    if st.sidebar.button("Log out", key="logout"):
        with transaction(resources.session_factory()) as session:
            auth.logout(session, actor=who)
        _clear("You are logged out.")
        st.rerun()
