"""Who is acting: a user, a token, the CLI, or the system. Kept apart so audit and auth share it."""

from __future__ import annotations

from dataclasses import dataclass

ROLES: tuple[str, ...] = ("viewer", "scientist", "approver", "admin")


@dataclass(frozen=True)
class Actor:
    name: str
    role: str
    kind: str = "user"  # user | token | cli | system
    user_id: int | None = None

    def at_least(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def cli_actor() -> Actor:
    import getpass

    return Actor(name=f"cli:{getpass.getuser()}", role="admin", kind="cli")


def system_actor(job: str) -> Actor:
    return Actor(name=f"system:{job}", role="admin", kind="system")
