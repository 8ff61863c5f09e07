"""Bearer tokens → actors. Roles are enforced in core; this only says who is calling."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.boundary import ACTOR_KEY
from core.accounts import auth
from core.actors import Actor
from core.errors import AuthError
from core.platform.database import transaction

bearer = HTTPBearer(auto_error=False,
                    description="An API token from `python cli.py token create --role ROLE --owner USER`")


class TokenCache:
    """Known tokens for a few seconds, so a prediction does not cost a database round trip.

    Only successful look-ups are kept; a revoked token stops working within ``ttl`` seconds.
    """

    def __init__(self, factory: sessionmaker[Session], ttl: float) -> None:
        self.factory, self.ttl = factory, ttl
        self._known: dict[str, tuple[Actor, float]] = {}
        self._lock = threading.Lock()

    def _lookup(self, token: str) -> Actor:
        with transaction(self.factory) as session:
            return auth.actor_for_token(session, token)

    async def actor(self, token: str) -> Actor:
        key = hashlib.sha256(token.encode()).hexdigest()
        hit = self._known.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        found = await run_in_threadpool(self._lookup, token)
        if self.ttl > 0:
            with self._lock:
                if len(self._known) > 10_000:
                    self._known.clear()
                self._known[key] = (found, now + self.ttl)
        return found


async def current_actor(request: Request,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
    """The caller: the trust boundary (api.boundary) has checked the token before the body was read."""
    checked = request.scope.get(ACTOR_KEY)
    if isinstance(checked, Actor):
        return checked
    if credentials is None or not credentials.credentials:
        raise AuthError("this route needs a header 'Authorization: Bearer <token>'; "
                        "create a token with `python cli.py token create --role ROLE --owner USER`")
    return await request.app.state.runtime.tokens.actor(credentials.credentials)


async def require(request: Request, actor: Actor, permission: str) -> None:
    """core.accounts.auth.require, off the event loop only when it has to write (a refusal is audited)."""
    if actor.at_least(auth.PERMISSIONS[permission]):
        return
    factory = request.app.state.runtime.factory

    def _check() -> None:
        with transaction(factory) as session:  # a refusal is audited once this rolls back
            auth.require(session, actor, permission)

    await run_in_threadpool(_check)


CurrentActor = Annotated[Actor, Depends(current_actor)]
