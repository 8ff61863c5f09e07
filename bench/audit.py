"""Audit log at 100,000 events: verification throughput and page render vs 100 events.

Run: .venv/bin/python bench/audit.py. Goals (issue 8): verify ≥ 100k events/s; the Audit log page
renders at 100k events within 1.5× its time at 100 events.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fill(factory, n: int) -> None:
    from core import audit
    from core.actors import cli_actor
    from core.platform.database import transaction

    actor = cli_actor()
    done = 0
    while done < n:
        with transaction(factory) as s:
            for i in range(done, min(n, done + 10_000)):
                audit.record(s, actor, "bench.event", f"model:m{i % 50}", {"i": i, "note": "x" * 40})
        done = min(n, done + 10_000)


def render_seconds(home: Path, db_url: str, user_id: int, rounds: int = 5) -> float:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ.update(LEANOPS_HOME=str(home), LEANOPS_DB_URL=db_url, LEANOPS_SCHEDULER="off")
    st.cache_resource.clear()
    times = []
    for _ in range(rounds):
        st.cache_data.clear()
        at = AppTest.from_file(str(ROOT / "app_pages/audit.py"), default_timeout=120)
        at.session_state["user_id"], at.session_state["last_seen"] = user_id, time.time()
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        assert not at.exception, at.exception
    return statistics.median(times[1:])


def main() -> None:
    from core import audit
    from core.accounts import auth
    from core.actors import cli_actor
    from core.platform.database import migrate, transaction
    from db.session import make_engine, make_session_factory

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (100, 100_000):
            url = f"sqlite:///{tmp}/audit-{n}.db"
            migrate(url)
            factory = make_session_factory(make_engine(url))
            with transaction(factory) as s:
                user_id = auth.create_user(s, actor=cli_actor(), username="bench", role="viewer",
                                           password="bench-pass-1").id
            fill(factory, n - 2)
            with factory() as s:
                start = time.perf_counter()
                result = audit.verify(s)
                verify_s = time.perf_counter() - start
            assert result.ok, result
            results[n] = (verify_s, result.checked, render_seconds(Path(tmp), url, user_id))
    verify_s, checked, big = results[100_000]
    small = results[100][2]
    print(f"verify: {checked:,} events in {verify_s:.2f} s = {checked / verify_s:,.0f} events/s (goal >= 100,000/s)")
    print(f"audit page render: {small * 1000:.0f} ms at 100 events, {big * 1000:.0f} ms at 100,000 events")
    print(f"render ratio (100k / 100 events): {big / small:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
