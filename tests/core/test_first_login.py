"""Every account whose password an admin set must replace it at its first login (a new account, a reset)."""

from __future__ import annotations

from core.accounts import auth
from core.actors import cli_actor
from core.platform.database import transaction


def test_an_admin_set_password_must_be_changed_at_first_login(factory) -> None:
    with transaction(factory) as s:
        ann = auth.create_user(s, actor=cli_actor(), username="ann", role="approver", password="set-by-admin-1")
        own = auth.create_user(s, actor=cli_actor(), username="cy", role="viewer", password="typed-by-cy-1",
                               must_change_password=False)
    with factory() as s:
        assert auth.password_change_due(s, ann.id) and not auth.password_change_due(s, own.id)
    with transaction(factory) as s:
        auth.change_password(s, actor=auth.actor_for(s.get(type(ann), ann.id)), current="set-by-admin-1",
                             new="anns-own-pass-2")
    with factory() as s:
        assert not auth.password_change_due(s, ann.id)
    with transaction(factory) as s:  # an admin resets it: asked again
        auth.reset_password(s, actor=cli_actor(), username="ann", password="reset-by-admin-3")
    with factory() as s:
        assert auth.password_change_due(s, ann.id)
