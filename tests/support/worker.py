"""Running queued jobs the way the worker does (``jobs.runner.run_next``), until the queue is empty."""

from __future__ import annotations

from typing import Any

from jobs import runner


def drain(factory: Any, settings: Any, *, limit: int = 20) -> list[int]:
    """Run every queued job (and the jobs they queue) in this thread; returns the ids in the order run."""
    done = []
    while len(done) < limit and (job_id := runner.run_next(factory, settings, "test-worker")) is not None:
        done.append(job_id)
    return done
