"""Named errors. Messages say what came in and what was allowed."""


class LeanOpsError(Exception):
    """Base of every error LeanOps raises on purpose; its message is shown to the user.

    ``after_rollback`` holds writes that must survive the failed transaction (e.g. the audit
    record of a refused attempt): ``core.platform.database.transaction`` runs each in a fresh transaction
    once the failed one has rolled back, so they never wait on its locks.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.after_rollback: list = []


class NotFound(LeanOpsError):
    """Something named does not exist."""


class InvalidInput(LeanOpsError):
    """Input is malformed or out of range."""


class PermissionDenied(LeanOpsError):
    """The actor's role does not allow the operation."""


class AuthError(LeanOpsError):
    """Login or token failed."""


class PolicyBlocked(LeanOpsError):
    """A gate or check said no."""


class IntegrityError(LeanOpsError):
    """Stored data failed an integrity check."""


class StoreUnavailable(LeanOpsError):
    """A database or store is locked, down or unreachable."""
