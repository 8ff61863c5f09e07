"""API tokens (api/auth.py): a revoked token stops working, at the latest once the token cache forgets it."""

from __future__ import annotations

from contextlib import contextmanager

from fastapi.testclient import TestClient


@contextmanager
def _viewer_revoked_after_one_answer(tmp_path, sqlite_url, store, model, *, cache_seconds: float):
    """A served app and a viewer token that worked once and has just been revoked: (client, token)."""
    from api.app import create_app
    from core.accounts import auth
    from core.platform.database import transaction
    from db.session import make_engine, make_session_factory
    from tests.support.api import predict, serving_settings
    from tests.support.factories import admin_actor
    from tests.support.mlflow_models import records

    settings = serving_settings(tmp_path / "ws", sqlite_url, store, api_token_cache_seconds=cache_seconds)
    factory = make_session_factory(make_engine(settings.db_url))
    with transaction(factory) as session:
        token, row = auth.create_token(session, actor=admin_actor(), role="viewer")
    with TestClient(create_app(settings, factory=factory)) as client:
        assert predict(client, model.name, token, records(1)).status_code == 200
        with transaction(factory) as session:
            auth.revoke_token(session, actor=admin_actor(), token_id=row.id)
        yield client, token


def test_revoked_token_stops_working(tmp_path, sqlite_url, store, model) -> None:
    from tests.support.api import predict
    from tests.support.mlflow_models import records

    with _viewer_revoked_after_one_answer(tmp_path, sqlite_url, store, model, cache_seconds=0) as (client, token):
        assert predict(client, model.name, token, records(1)).status_code == 401


def test_a_revoked_token_stops_working_once_the_token_cache_forgets_it(tmp_path, sqlite_url, store, model) -> None:
    """docs/security.md: a looked-up token is kept LEANOPS_API_TOKEN_CACHE_SECONDS, never longer."""
    import time

    from tests.support.api import predict
    from tests.support.mlflow_models import records

    with _viewer_revoked_after_one_answer(tmp_path, sqlite_url, store, model, cache_seconds=1.0) as (client, token):
        revoked = time.monotonic()  # the cache took the token before this: it forgets it within 1 s of now
        while True:
            sent = time.monotonic() - revoked
            status = predict(client, model.name, token, records(1)).status_code
            if status != 200:
                break
            assert sent < 1.0, f"a revoked token still worked {sent:.2f} s later, past the cache's TTL"
            time.sleep(0.05)
        assert status == 401


def test_requests_finding_a_token_expired_together_share_one_lookup(api_factory, tokens) -> None:
    """Sixteen requests at once with an uncached token read the database once (not a pooled connection each);
    sixteen with an unknown token are all refused, also by one read; a later request reads again."""
    import asyncio

    from api.auth import TokenCache
    from core.errors import AuthError

    class Counted(TokenCache):
        reads = 0

        def _lookup(self, token: str):
            Counted.reads += 1
            return super()._lookup(token)

    cache = Counted(api_factory, ttl=0)

    async def at_once(token: str) -> list:
        return await asyncio.gather(*(cache.actor(token) for _ in range(16)), return_exceptions=True)

    found = asyncio.run(at_once(tokens["viewer"]))
    assert [a.role for a in found] == ["viewer"] * 16 and Counted.reads == 1
    refused = asyncio.run(at_once("not-a-token"))
    assert all(isinstance(e, AuthError) for e in refused) and Counted.reads == 2
    assert asyncio.run(cache.actor(tokens["viewer"])).role == "viewer" and Counted.reads == 3
    assert not cache._pending
