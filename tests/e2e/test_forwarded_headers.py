"""Forwarded headers are trusted only when configured (issue 27 item 5): the login throttle counts per client
address, so a login posted with a made-up ``X-Forwarded-For`` is recorded (and throttled) under the peer's own
address unless ``FORWARDED_ALLOW_IPS`` names the proxy it came through. No browser: plain HTTP to the running
dashboard's login route."""

from __future__ import annotations

import sqlite3

import httpx

from tests.e2e.helpers import ADMIN, Dashboard


def _clients(dashboard: Dashboard) -> list[str]:
    with sqlite3.connect(dashboard.home / "leanops.db") as conn:
        return [row[0] for row in conn.execute("SELECT client FROM sessions ORDER BY id")]


def test_x_forwarded_for_counts_only_from_a_configured_proxy(start_dashboard) -> None:
    """Unconfigured, a made-up X-Forwarded-For is ignored (``ui.auth_routes.client_address``): each forged
    address lands on the loopback peer's one backoff. With ``FORWARDED_ALLOW_IPS`` naming the proxy, uvicorn's
    own ProxyHeadersMiddleware applies it (not re-tested here)."""
    dashboard = start_dashboard(LEANOPS_SCHEDULER="off")
    for forged in ("198.51.100.77", "198.51.100.78"):
        answer = httpx.post(f"{dashboard.url}/auth/login", data={"username": ADMIN[0], "password": ADMIN[1],
                                                                 "next": "/"},
                            headers={"X-Forwarded-For": forged, "Origin": dashboard.url}, timeout=30)
        assert answer.status_code == 303, answer.text
    assert _clients(dashboard) == ["127.0.0.1", "127.0.0.1"]
