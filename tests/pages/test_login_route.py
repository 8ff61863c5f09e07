"""The dashboard's login route (ui/auth_routes.py): the HttpOnly session cookie, refusals, no open redirect."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from core.accounts import sessions
from db.models import BrowserSession
from ui import auth_routes

HOST = "dash.example:8501"


@pytest.fixture
def client(app_env, factory):
    auth_routes._process.cache_clear()  # this test's workspace, not an earlier test's
    with TestClient(Starlette(routes=auth_routes.routes()), base_url=f"http://{HOST}",
                    follow_redirects=False) as c:
        yield c
    auth_routes._process.cache_clear()


def post(client: TestClient, **fields: str):
    headers = {"origin": fields.pop("origin", f"http://{HOST}"), "user-agent": "pytest-browser"}
    return client.post(auth_routes.LOGIN_PATH, data=fields, headers=headers)


def test_a_good_login_sets_an_httponly_cookie_whose_hash_is_a_session(client, factory):
    answer = post(client, username="admin", password="admin-pass-123", next="/registry")
    assert answer.status_code == 303 and answer.headers["location"] == "/registry"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(sessions.COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=43200" in cookie and "Secure" not in cookie
    plain = cookie.split(";")[0].split("=", 1)[1]
    with factory() as s:
        row = s.scalars(select(BrowserSession)).one()
    assert row.id_hash == sessions.digest(plain) and row.user_agent == "pytest-browser"


def test_a_refused_login_sets_no_session_and_says_why_on_the_login_page(client, factory):
    answer = post(client, username="admin", password="wrong-password", next="/jobs")
    assert answer.status_code == 303 and answer.headers["location"] == "/jobs"
    assert sessions.COOKIE not in answer.cookies
    assert auth_routes.decode_message(answer.cookies[auth_routes.MESSAGE_COOKIE]) == "Wrong username or password."
    with factory() as s:
        assert s.scalars(select(BrowserSession)).all() == []


def test_a_form_posted_from_another_site_is_refused(client, factory):
    answer = post(client, username="admin", password="admin-pass-123", origin="https://evil.example")
    assert answer.status_code == 403 and sessions.COOKIE not in answer.cookies
    with factory() as s:
        assert s.scalars(select(BrowserSession)).all() == []


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil.example", "", "javascript:1"])
def test_the_login_only_sends_the_browser_to_a_page_of_this_dashboard(client, target):
    answer = post(client, username="admin", password="admin-pass-123", next=target)
    assert answer.headers["location"] == "/"


def test_an_oversized_form_is_not_read(client):
    assert post(client, username="admin", password="x" * (auth_routes.MAX_BODY + 1)).status_code == 413
