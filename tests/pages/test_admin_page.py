"""Admin page: users, tokens shown once, the policy editor (validated, audited with its diff)."""

from __future__ import annotations

from core import policy
from core.accounts import auth
from db.models import ApiToken, AuditEvent


def test_admin_adds_a_user_and_changes_the_role(open_page, factory):
    at = open_page("app_pages/admin.py")
    at.text_input[0].input("carol")
    at.selectbox[0].select("scientist")
    at.text_input[1].input("carol-pass-1")
    next(b for b in at.button if b.label == "Add user").click().run()
    assert at.success[0].value == "User carol (scientist) added."
    with factory() as s:
        assert {u.username: u.role for u in auth.list_users(s)}["carol"] == "scientist"


def test_bad_password_and_duplicate_user_are_explained(open_page):
    at = open_page("app_pages/admin.py")
    at.text_input[0].input("dave")
    at.text_input[1].input("short")
    next(b for b in at.button if b.label == "Add user").click().run()
    assert "at least 8 are required" in at.error[0].value


def test_token_is_shown_once_and_stored_hashed(open_page, factory):
    at = open_page("app_pages/admin.py")
    token_name = next(t for t in at.text_input if t.label == "Token name")
    token_name.input("ci")
    next(b for b in at.button if b.label == "Create token").click().run()
    shown = at.code[0].value
    assert shown.startswith("lo_")
    with factory() as s:
        row = s.query(ApiToken).one()
    assert row.token_hash != shown and shown not in row.token_hash
    at.run()
    assert at.code[0].value == shown, "the token stays on screen until it is dismissed"
    next(b for b in at.button if b.label == "I have copied it, hide the token").click().run()
    assert not [c for c in at.code if c.value.startswith("lo_")], "the token is shown only once"


def test_policy_editor_refuses_bad_yaml_and_audits_a_good_change(open_page, factory, settings):
    at = open_page("app_pages/admin.py")
    editor = at.text_area(key="policy-text")
    editor.input(policy.DEFAULT_POLICY_YAML.replace('f1: ">= 0.85"', 'f1: "high"'))
    next(b for b in at.button if b.label == "Save policy").click().run()
    assert "line 8: default.metrics.classification.f1: rule 'high'" in at.error[0].value
    assert (settings.home / "policies.yaml").read_text() == policy.DEFAULT_POLICY_YAML

    at.text_area(key="policy-text").input(policy.DEFAULT_POLICY_YAML.replace('">= 0.85"', '">= 0.9"'))
    next(b for b in at.button if b.label == "Save policy").click().run()
    assert at.success[0].value == "Policy saved."
    assert '">= 0.9"' in (settings.home / "policies.yaml").read_text()
    with factory() as s:
        event = s.query(AuditEvent).filter_by(action="policy.changed").one()
    assert '+      f1: ">= 0.9"' in event.details["diff"]


def test_viewer_calling_the_admin_page_is_refused_by_core(open_page, factory):
    at = open_page("app_pages/admin.py", role="viewer")
    at.text_input[0].input("eve")
    at.text_input[1].input("eve-pass-123")
    next(b for b in at.button if b.label == "Add user").click().run()
    assert "may not users.manage" in at.error[0].value
