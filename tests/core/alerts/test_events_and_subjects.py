"""Alerts that arrive and explain: production changes and approval requests are events (no cooldown); an
incident's cooldown is per condition and subject, so one failing job kind does not silence another."""

from __future__ import annotations

import pytest

from core.alerts import notify
from core.errors import PolicyBlocked
from core.platform.failures import clean_traceback, reason_of


def _raise(factory, settings, condition, model="loans", subject=None, title="t"):
    return notify.notify(factory, settings, condition=condition, model=model, title=title, message="m",
                         subject=subject)


@pytest.mark.parametrize("condition", ["promotion", "rollback", "approval"])
def test_events_are_never_held_back(factory, settings, condition) -> None:
    for n in range(3):
        _raise(factory, settings, condition, title=f"change {n}")
    with factory() as s:
        assert [a.suppressed for a in notify.recent(s)] == [False, False, False]


def test_the_cooldown_is_per_condition_and_subject(factory, settings) -> None:
    _raise(factory, settings, "job_failure", subject="job:retrain:loans")
    _raise(factory, settings, "job_failure", subject="job:drift.check:loans")  # another subject: sent
    _raise(factory, settings, "job_failure", subject="job:retrain:loans")  # the same one: held back
    _raise(factory, settings, "drift")  # another condition on the model: sent
    _raise(factory, settings, "drift")  # subject defaults to the model: held back
    with factory() as s:
        assert [a.suppressed for a in reversed(notify.recent(s))] == [False, False, True, False, True]


def test_a_failure_reason_is_one_line_in_words_and_the_traceback_has_no_server_paths(settings) -> None:
    assert reason_of(PolicyBlocked("dataset loans:4's certificate failed\n(dtype x)")) == \
        "dataset loans:4's certificate failed (dtype x)"
    assert reason_of(KeyError("col")) == "'col' (unexpected KeyError; the traceback is kept for admins)"
    try:
        open(settings.home / "nowhere" / "x.parquet")  # noqa: SIM115 - raises
    except OSError:
        import traceback

        text = clean_traceback(traceback.format_exc(), folders=[settings.home])
    assert str(settings.home) not in text and "<workspace>/nowhere/x.parquet" in text
    assert "<leanops>/tests/core/alerts/test_events_and_subjects.py" in text  # the code's folder, not where it is
