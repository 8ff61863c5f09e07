"""Small builders for test data, made through core (never by inserting rows behind its back)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from core.accounts import auth
from core.actors import Actor
from core.platform.database import transaction


def admin_actor() -> Actor:
    """An admin acting from outside the user table (like the CLI), for setting up tests."""
    return Actor("admin-test", "admin")


def make_user(factory: sessionmaker[Session], username: str, role: str, password: str = "password-123") -> Actor:
    """Create an account in its own transaction and return it as an actor."""
    with transaction(factory) as session:
        user = auth.create_user(session, actor=admin_actor(), username=username, role=role, password=password,
                                must_change_password=False)
        return auth.actor_for(user)
