"""Admin forms keep what was typed on an error, and a new token's secret stays until it is dismissed."""

from __future__ import annotations

from core.accounts import auth
from db.models import ApiToken


def _click(at, label: str):
    return next(b for b in at.button if b.label == label).click().run()


def _field(at, label: str):
    return next(t for t in at.text_input if t.label == label)


def test_a_short_password_keeps_the_username_and_role_for_the_retry(open_page, factory):
    at = open_page("app_pages/admin.py")
    _field(at, "New username").input("dave")
    next(s for s in at.selectbox if s.label == "Role").select("approver")
    _field(at, "Initial password").input("short")
    _click(at, "Add user")
    assert "at least 8 are required" in at.error[0].value
    # Before: clear_on_submit wiped the form, and the retry failed with "username '' is not allowed".
    assert _field(at, "New username").value == "dave"
    assert next(s for s in at.selectbox if s.label == "Role").value == "approver"

    _field(at, "Initial password").input("dave-pass-123")
    _click(at, "Add user")
    assert not at.error
    assert at.success[0].value == "User dave (approver) added."
    with factory() as s:
        assert {u.username: u.role for u in auth.list_users(s)}["dave"] == "approver"
    # After a success the form starts empty.
    assert _field(at, "New username").value == ""


def test_a_token_error_keeps_the_name_and_role(open_page, factory):
    at = open_page("app_pages/admin.py")
    _field(at, "Token name").input("ci")
    _click(at, "Create token")
    _field(at, "Token name").input("ci")  # the same name again: refused
    next(s for s in at.selectbox if s.label == "Token role").select("scientist")
    _click(at, "Create token")
    assert "a token named 'ci' already exists" in at.error[0].value
    assert _field(at, "Token name").value == "ci"
    assert next(s for s in at.selectbox if s.label == "Token role").value == "scientist"


def test_the_secret_is_shown_every_time_of_twenty_until_dismissed(open_page, factory):
    """The lost-token case: a token created but its one-time secret never shown. Twenty creations, each shown."""
    at = open_page("app_pages/admin.py")
    for n in range(20):
        _field(at, "Token name").input(f"token-{n}")
        _click(at, "Create token")
        assert not at.error, at.error[0].value
        secrets_shown = [c.value for c in at.code if c.value.startswith("lo_")]
        assert len(secrets_shown) == 1, f"creation {n}: the secret was not shown"
        assert f"Token token-{n} created" in at.success[0].value
        assert _field(at, "Token name").value == "", "the form empties after a success"
        at.run()  # any other rerun (a click elsewhere, a refresh of the tab) keeps the secret on screen
        assert [c.value for c in at.code if c.value.startswith("lo_")] == secrets_shown
        with factory() as s:
            row = s.query(ApiToken).filter_by(name=f"token-{n}").one()
        assert row.prefix == secrets_shown[0][:9]
        _click(at, "I have copied it, hide the token")
        assert not [c for c in at.code if c.value.startswith("lo_")], "dismissed: the secret is gone"
