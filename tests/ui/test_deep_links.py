"""A deep link survives the login: the login route sends the browser back to the page *and its selection*,
never to another site."""

from __future__ import annotations

import pytest

from ui.auth_routes import safe_next


@pytest.mark.parametrize(("asked", "lands"), [
    ("/registry?model=loans&version=2", "/registry?model=loans&version=2"),
    ("/drift?model=churn&check=12", "/drift?model=churn&check=12"),
    ("/audit?subject=model%3Achurn&actor=ann", "/audit?subject=model%3Achurn&actor=ann"),
    ("/registry", "/registry"),
    ("/", "/"),
    ("//evil.example/registry?model=x", "/"),  # another site: the first page instead
    ("https://evil.example/?a=b", "/"),
    ("/registry?model=<script>", "/registry"),  # a query that is not plain URL-encoded text is dropped
    ("/registry?next=https://evil.example", "/registry"),
    ("", "/"),
])
def test_the_login_keeps_the_page_and_its_plain_query(asked, lands):
    assert safe_next(asked) == lands
