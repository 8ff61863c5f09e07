"""The prediction log on SQLite and PostgreSQL: batched writer, back-pressure, flush on stop; feedback on logged
rows (``core/serving/feedback.py``); retention."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from core import audit
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.platform import job_queue
from core.platform.database import transaction
from core.platform.prediction_log import parquet, reads, retention
from core.platform.prediction_log.writer import LogFull, LogWriter, Served, canonical, input_hash, rows_of
from core.platform.storage import LocalStore
from core.serving.feedback import feedback_for, record_feedback
from db.models import PredictionLog, utcnow
from jobs.runner import run_next
from tests.support.factories import admin_actor, make_user

NO_PARTITIONS = LocalStore(Path(__file__).parent / "no-partitions")  # (no such folder) every row here is hot


def served(rows: int = 1, *, model: str = "churn", ts=None, request_id: str | None = None, **columns) -> Served:
    cols = columns or {"age": np.arange(rows, dtype=np.float64) + 20.5,
                       "plan": np.array(["basic"] * rows, dtype=object)}
    return Served(request_id or uuid.uuid4().hex, ts or utcnow(), model, "champion", 3, cols,
                  [i % 2 for i in range(rows)], 4.2)


def test_rows_hold_the_record_its_hash_and_the_output(factory) -> None:
    writer = LogWriter(factory, capacity=1000)
    writer.start()
    item = served(3)
    assert writer.offer(item)
    assert writer.drain(10)
    writer.stop()
    with factory() as session:
        rows = reads.by_request(session, request_id=item.request_id, store=NO_PARTITIONS)
    assert [(r.record_index, r.output, r.version) for r in rows] == [(0, 0, 3), (1, 1, 3), (2, 0, 3)]
    assert {r.alias for r in rows} == {"champion"}
    assert rows[1].inputs == {"age": 21.5, "plan": "basic"}
    assert rows[1].input_hash == input_hash({"plan": "basic", "age": 21.5})  # key order does not matter
    assert canonical(rows[1].inputs) == b'{"age":21.5,"plan":"basic"}'
    assert rows[0].latency_ms == 4.2 and rows[0].ts.tzinfo is not None


def test_awkward_values_are_written_not_retried_forever(factory) -> None:
    """NaN, NUL characters, unicode and numpy scalars must not poison the writer on either backend."""
    writer = LogWriter(factory, capacity=1000)
    writer.start()
    item = served(2, age=np.array([math.nan, 1e308]), plan=np.array(["nul\x00here", "ünï ✓"], dtype=object),
                  flag=np.array([True, False]))
    writer.offer(item)
    assert writer.drain(15), "the writer is stuck on a row it cannot write"
    writer.stop()
    with factory() as session:
        rows = reads.by_request(session, request_id=item.request_id, store=NO_PARTITIONS)
    assert rows[0].inputs["age"] is None and rows[1].inputs["age"] == 1e308
    assert rows[1].inputs["plan"] == "ünï ✓" and rows[0].inputs["flag"] is True
    assert writer.failures == 0


def test_many_requests_are_written_in_few_transactions(factory) -> None:
    batches: list[int] = []
    writer = LogWriter(factory, capacity=100_000, batch_rows=500, on_written=lambda rows, s: batches.append(rows))
    for _ in range(1200):
        assert writer.offer(served(1))
    writer.start()
    assert writer.drain(30)
    writer.stop()
    with factory() as session:
        assert reads.count(session, store=NO_PARTITIONS) == 1200
    assert sum(batches) == 1200 and len(batches) <= 4


def test_a_full_queue_pushes_back_instead_of_dropping(factory) -> None:
    writer = LogWriter(factory, capacity=10)
    assert writer.offer(served(6))
    assert writer.offer(served(4))
    assert not writer.offer(served(1))  # full: the caller must wait
    assert writer.depth == 10
    with pytest.raises(LogFull, match="no room"):
        writer.put(served(1), timeout=0.2)
    late = served(1)
    threading.Timer(0.3, writer.start).start()  # room appears once the writer runs
    writer.put(late, timeout=10)
    assert writer.drain(10)
    writer.stop()
    with factory() as session:
        assert reads.count(session, store=NO_PARTITIONS) == 11


def test_a_request_bigger_than_the_queue_waits_for_it_to_empty(factory) -> None:
    writer = LogWriter(factory, capacity=5)
    assert writer.offer(served(50))  # an empty queue always takes one request, however big
    assert not writer.offer(served(1))
    writer.start()
    writer.put(served(1), timeout=10)
    writer.stop()
    with factory() as session:
        assert reads.count(session, store=NO_PARTITIONS) == 51


def test_stop_writes_everything_queued(factory) -> None:
    writer = LogWriter(factory, capacity=100_000, linger=0.5)
    writer.start()
    ids = [served(5) for _ in range(300)]
    for item in ids:
        writer.put(item, timeout=10)
    writer.stop()  # like SIGTERM: no drain first
    with factory() as session:
        assert reads.count(session, store=NO_PARTITIONS) == 1500
    with pytest.raises(LogFull, match="shutting down"):
        writer.offer(served(1))


# -- feedback ------------------------------------------------------------------------------------

def _logged(factory, rows: int = 3, model: str = "churn", requested_by: str | None = "sci") -> str:
    writer = LogWriter(factory, capacity=1000)
    writer.start()
    item = dataclasses.replace(served(rows, model=model), requested_by=requested_by)
    writer.offer(item)
    writer.stop()
    return item.request_id


def test_feedback_is_stored_per_record_and_replaced_on_resubmission(factory) -> None:
    request_id = _logged(factory)
    scientist = make_user(factory, "sci", "scientist")
    with transaction(factory) as session:
        assert record_feedback(session, actor=scientist, model="churn", request_id=request_id,
                               labels=[1, 0, "yes"], store=NO_PARTITIONS) == 3
    with transaction(factory) as session:
        record_feedback(session, actor=scientist, model="churn", request_id=request_id, labels=[0, 0, 1],
                        store=NO_PARTITIONS)
    with factory() as session:
        assert feedback_for(session, request_id=request_id) == [0, 0, 1]
        assert audit.recent(session, limit=1)[0].action == "prediction.feedback"


def test_feedback_refusals(factory) -> None:
    request_id = _logged(factory)
    scientist = make_user(factory, "sci", "scientist")
    viewer = make_user(factory, "viv", "viewer")
    cases = [
        (scientist, "churn", "nope", [1, 0, 1], NotFound, "request_id 'nope'"),
        (scientist, "other", request_id, [1, 0, 1], NotFound, "model 'other'"),
        (scientist, "churn", request_id, [1], InvalidInput, "1 value(s) but request"),
        (scientist, "churn", request_id, [], InvalidInput, "non-empty"),
        (scientist, "churn", request_id, [1, [0], 1], InvalidInput, "labels[1]"),
        (viewer, "churn", request_id, [1, 0, 1], PermissionDenied, "feedback.write"),
    ]
    for actor, model, rid, labels, error, words in cases:
        with pytest.raises(error, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
            with transaction(factory) as session:
                record_feedback(session, actor=actor, model=model, request_id=rid, labels=labels,
                                store=NO_PARTITIONS)


# -- retention -----------------------------------------------------------------------------------

def test_purge_deletes_old_rows_in_chunks_and_keeps_recent_ones(factory) -> None:
    now = utcnow()
    writer = LogWriter(factory, capacity=100_000)
    # ids made as the API makes them (time first): a label goes with a prediction older than the cutoff even
    # when that prediction is no longer in the table (compacted, or purged before its label)
    old = [served(1, ts=now - timedelta(days=91, minutes=i),
                  request_id=parquet.new_request_id(now - timedelta(days=91, minutes=i))) for i in range(23)]
    young = [served(1, ts=now - timedelta(days=89)) for _ in range(4)]
    for item in old + young:
        writer.offer(item)
    writer.start()
    writer.stop()
    with transaction(factory) as session:
        record_feedback(session, actor=admin_actor(), model="churn", request_id=old[0].request_id,
                        labels=[1], store=NO_PARTITIONS)
    seen: list[int] = []
    result = retention.purge(factory, actor=admin_actor(), days=90, chunk=5, now=now, progress=seen.append)
    assert result["predictions"] == 23 and result["feedback"] == 1
    assert seen[:5] == [5, 10, 15, 20, 23]
    with factory() as session:
        assert reads.count(session, store=NO_PARTITIONS) == 4
        left = set(session.scalars(select(PredictionLog.request_id)))
        assert left == {y.request_id for y in young}
        event = audit.recent(session, limit=1)[0]
    assert event.action == "predictions.purged" and event.details["predictions"] == 23
    with pytest.raises(InvalidInput):
        retention.purge(factory, actor=admin_actor(), days=0)


def test_retention_runs_as_a_job_with_the_setting(factory, settings) -> None:
    writer = LogWriter(factory, capacity=1000)
    writer.offer(served(2, ts=utcnow() - timedelta(days=400)))
    writer.offer(served(1))
    writer.start()
    writer.stop()
    with transaction(factory) as session:
        job = job_queue.enqueue(session, actor=admin_actor(), kind="predictions.retention", params={})
    assert run_next(factory, settings, "test-worker") == job.id
    with factory() as session:
        done = job_queue.get(session, job.id)
        remaining = session.scalar(select(func.count()).select_from(PredictionLog))
    assert done.status == "succeeded", done.error
    assert done.result["predictions"] == 2 and done.result["days"] == settings.prediction_retention_days == 183
    assert remaining == 1


def test_the_default_workspace_schedules_retention(factory, settings) -> None:
    from core.platform import schedules
    from core.workspace.bootstrap import init_workspace

    init_workspace(factory, settings, demo=False)
    with factory() as session:
        found = {s.name: s for s in schedules.list_schedules(session)}
    assert found["prediction-retention"].kind == "predictions.retention"


def test_writer_keeps_up_with_a_steady_stream(factory) -> None:
    writer = LogWriter(factory, capacity=50_000)
    writer.start()
    started = time.monotonic()
    for _ in range(2000):
        writer.put(served(1), timeout=10)
    assert writer.drain(30)
    writer.stop()
    assert time.monotonic() - started < 30
    with factory() as session:
        assert reads.count(session, store=NO_PARTITIONS) == 2000


def test_column_wise_hash_equals_the_canonical_record_hash() -> None:
    """rows_of encodes column by column for speed; it must agree with canonical() for every dtype."""
    first = served(3, f64=np.array([1.5, np.nan, -0.0]), f32=np.array([0.1, 2.0, np.inf], dtype=np.float32),
                   i64=np.array([1, -2, 2**62]), flag=np.array([True, False, True]),
                   text=np.array(["a\"b\\c", None, "ünï\x00✓"], dtype=object),
                   mixed=np.array([None, np.float64(3.25), np.int64(7)], dtype=object),
                   at=np.array(["2026-01-02T03:04:05", "NaT", "2026-06-01"], dtype="datetime64[ns]"))
    second = served(2, f64=np.array([4.0, 5.0]), f32=np.array([1, 2], dtype=np.float32), i64=np.array([3, 4]),
                    flag=np.array([False, False]), text=np.array(["x", "y"], dtype=object),
                    mixed=np.array(["s", None], dtype=object),
                    at=np.array(["2026-01-01", "2026-01-02"], dtype="datetime64[ns]"))
    other_dtypes = served(1, f64=np.array([7]))  # int where the others have float: encoded apart
    rows = rows_of([first, second, other_dtypes])
    assert len(rows) == 6
    for row in rows:
        assert row["input_hash"] == input_hash(row["inputs"]), row["inputs"]
    by_request = {(r["request_id"], r["record_index"]): r for r in rows}
    assert by_request[(first.request_id, 1)]["inputs"]["f64"] is None
    assert by_request[(first.request_id, 2)]["inputs"]["at"] == "2026-06-01T00:00:00"
    assert by_request[(first.request_id, 1)]["inputs"]["at"] is None
    assert by_request[(other_dtypes.request_id, 0)]["inputs"] == {"f64": 7}
    assert [by_request[(second.request_id, i)]["output"] for i in range(2)] == [0, 1]
