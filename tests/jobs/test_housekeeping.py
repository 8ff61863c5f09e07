"""The housekeeping sweep runs once per process and database, and stops when asked (jobs/housekeeping.py)."""

from __future__ import annotations

import threading

from jobs import housekeeping


def _sweeps() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "leanops-housekeeping"]


def test_one_sweep_per_database_and_stop_all_ends_it(settings, factory) -> None:
    before = len(_sweeps())
    first = housekeeping.start(factory, settings)
    assert housekeeping.start(factory, settings) is first  # a second start in this process shares the first
    assert len(_sweeps()) == before + 1

    housekeeping.stop_all()

    assert first.is_set()
    assert len(_sweeps()) == before
    again = housekeeping.start(factory, settings)  # stopped: a later start runs a new sweep
    assert again is not first and not again.is_set()
    housekeeping.stop_all()
