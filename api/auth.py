"""Bearer tokens → actors. Roles are enforced in core; this only says who is calling."""

from __future__ import annotations

import asyncio
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

    Only successful look-ups are kept; a revoked token stops working within ``ttl`` seconds. The requests that
    find a token expired together (sixteen at once under load) share one look-up, not one database round trip
    (and pooled connection) each.
    """

    def __init__(self, factory: sessionmaker[Session], ttl: float) -> None:
        self.factory, self.ttl = factory, ttl
        self._known: dict[str, tuple[Actor, float]] = {}
        self._lock = threading.Lock()
        self._pending: dict[str, asyncio.Future[Actor]] = {}

    def _lookup(self, token: str) -> Actor:
        with transaction(self.factory) as session:
            return auth.actor_for_token(session, token)

    async def actor(self, token: str) -> Actor:
        key = hashlib.sha256(token.encode()).hexdigest()
        hit = self._known.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        pending = self._pending.get(key)
        if pending is not None:  # the same token is being looked up: its answer (or refusal) is this one's
            await asyncio.wait([pending])  # waiting never cancels the shared look-up
            if not pending.cancelled():
                return pending.result()
        pending = self._pending[key] = asyncio.get_running_loop().create_future()
        try:
            found = await run_in_threadpool(self._lookup, token)
        except asyncio.CancelledError:  # its caller went away: anyone waiting looks up for themselves
            pending.cancel()
            raise
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved: no "never retrieved" warning when no one else waited
            raise
        else:
            pending.set_result(found)
        finally:
            if self._pending.get(key) is pending:
                del self._pending[key]
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
