"""The prediction journal: group commit, rotation, replay of a dead process's segments exactly once."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from core.platform.prediction_log import reads
from core.platform.prediction_log.journal import (
    ARROW_FRAME,
    FRAME,
    HEAD,
    Journal,
    JournalFailed,
    _column,
    claim_orphans,
    decode,
    encode,
    read_segment,
)
from core.platform.prediction_log.writer import LogWriter, Served, rows_of
from core.platform.storage import LocalStore
from db.models import utcnow
from tests.support.waiting import wait_until

NO_PARTITIONS = LocalStore(Path(__file__).parent / "no-partitions")  # (no such folder) every row here is hot

ROOT = Path(__file__).resolve().parents[4]


def served(rows: int = 1, *, request_id: str | None = None) -> Served:
    cols = {"age": np.arange(rows, dtype=np.float64) + 20.5, "plan": np.array(["basic"] * rows, dtype=object),
            "n": np.arange(rows, dtype=np.int64)}
    return Served(request_id or uuid.uuid4().hex, utcnow(), "churn", "champion", 3, cols,
                  [i % 2 for i in range(rows)], 4.2, "token:ci")


def test_a_record_reads_back_as_the_same_rows() -> None:
    """Replayed rows are the rows the writer would have stored: same inputs, same sha256, same requester, in
    both layouts (a small request's all-JSON frame, a larger one's Arrow stream)."""
    cols = {"age": np.array([math.nan, 1e308, 0.1]), "plan": np.array(["nul\x00", "ünï ✓", None], dtype=object),
            "flag": np.array([True, False, True]), "n": np.array([1, -2, 3], dtype=np.int32),
            "at": np.array(["2026-01-01T10:00", "NaT", "2026-01-02"], dtype="datetime64[ns]")}
    for times in (1, 11):
        item = Served("r1", utcnow(), "churn", "champion", 3, {k: np.tile(v, times) for k, v in cols.items()},
                      [0.5, "yes", None] * times, 1.25, "alice")
        frame = encode(item)
        assert frame[FRAME.size:][:1] == (b"{" if times == 1 else ARROW_FRAME)
        back = Served(**decode(frame[FRAME.size:]))
        assert rows_of([back]) == rows_of([item])


def test_columns_travel_as_arrow_and_older_json_frames_still_read() -> None:
    """A frame of a larger request holds its columns as an Arrow stream (no text per value on the request's
    path); a column Arrow cannot type (mixed Python values) rides in the JSON head, and an all-JSON frame
    (a small request's, or any of a segment written before) replays the same."""
    cols = {"mixed": np.array([1, "x", None] * 11, dtype=object), "age": np.array([20.5, math.nan, 3.0] * 11),
            "plan": np.array(["a", None, "c"] * 11, dtype=object)}
    item = Served("r2", utcnow(), "churn", "champion", 3, cols, [0, 1, 0] * 11, 1.0, "token:ci")
    frame = encode(item)
    assert encode(Served("r2", utcnow(), "churn", "champion", 3, {k: v[:3] for k, v in cols.items()}, [0, 1, 0],
                         1.0, "token:ci"))[FRAME.size:][:1] == b"{"  # a small request: all JSON
    payload = frame[FRAME.size:]
    assert payload[:1] == ARROW_FRAME
    (size,) = HEAD.unpack_from(payload, 1)
    head = json.loads(payload[1 + HEAD.size:1 + HEAD.size + size])
    assert list(head["c"]) == ["mixed"]  # only the column Arrow cannot type is text
    old = json.dumps({"r": "r2", "t": item.ts.isoformat(), "m": "churn", "a": "champion", "v": 3, "l": 1.0,
                      "b": "token:ci", "o": [0, 1, 0] * 11,
                      "c": {name: _column(values) for name, values in cols.items()}}).encode()
    for got in (decode(payload), decode(old)):
        assert list(got["columns"]) == ["mixed", "age", "plan"]
        assert list(got["columns"]["mixed"]) == [1, "x", None] * 11
        assert list(got["columns"]["plan"]) == ["a", None, "c"] * 11
        assert np.array_equal(got["columns"]["age"], cols["age"], equal_nan=True)
        assert got["columns"]["age"].dtype == np.float64 and got["outputs"] == [0, 1, 0] * 11


def test_an_arrow_requests_own_string_columns_frame_as_the_converted_ones_would() -> None:
    """An Arrow request's string columns are framed as they came (``Coerced.arrow``), not converted back
    from Python objects; the frame replays as exactly the rows the converted columns give."""
    import pyarrow as pa

    from core.serving.signature import Column, Frame, InputSchema

    request = Frame({"plan": pa.chunked_array([["basic", None], ["pro ✓"]]), "age": pa.array([20.5, None, 3.0]),
                     "n": pa.array([1, 2, 3])}, 3)
    schema = InputSchema((Column("plan", "string"), Column("age", "double"), Column("n", "long")), typed=True)
    coerced = schema.coerce_frame(request)
    assert set(coerced.arrow) == {"plan"}  # numbers are cast (long → a number column), so converted
    item = Served("r3", utcnow(), "churn", "champion", 3, coerced.columns, [0, 1, 0], 1.0, "token:ci")
    for frame in (encode(item, coerced.arrow), encode(item)):
        back = Served(**decode(frame[FRAME.size:]))
        assert rows_of([back]) == rows_of([item])
    assert list(Served(**decode(encode(item, coerced.arrow)[FRAME.size:])).columns["plan"]) \
        == ["basic", None, "pro ✓"]


def test_requests_wait_for_one_shared_sync(tmp_path: Path) -> None:
    journal = Journal(tmp_path, durability="fsync")
    journal.start()
    tickets = []
    barrier = threading.Barrier(16)

    def one() -> None:
        barrier.wait()
        ticket = journal.append(encode(served()))
        ticket.wait(10)
        tickets.append(ticket)

    threads = [threading.Thread(target=one) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tickets) == 16 and all(t.future is not None and t.future.done() for t in tickets)
    assert journal.syncs < 16, "every request paid its own fsync: no group commit"
    (path,) = tmp_path.glob("*.seg")
    assert len(list(read_segment(path))) == 16
    journal.committed(16)
    journal.close()
    assert list(tmp_path.iterdir()) == [], "a segment whose records are all stored is deleted on close"


def test_segments_rotate_and_go_once_stored(tmp_path: Path) -> None:
    journal = Journal(tmp_path, durability="batch", segment_seconds=0.05, batch_interval=0.01)
    journal.start()
    for i in range(3):
        journal.append(encode(served()))
        wait_until(lambda: len(list(tmp_path.glob("*.seg"))) >= i + 2, timeout=10,  # noqa: B023 - called now
                   what="a segment with a record to be rotated")
    journal.committed(3)
    wait_until(lambda: len(list(tmp_path.glob("*.seg"))) == 1, timeout=10,
               what="sealed segments whose records are stored to be deleted")
    journal.close()


def test_a_live_process_segment_is_not_claimed_and_a_torn_tail_is_ignored(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.start()
    journal.append(encode(served(2))).wait(10)
    assert claim_orphans(tmp_path) == [], "another process's (here: this journal's) locked segment was claimed"
    (path,) = tmp_path.glob("*.seg")
    with path.open("ab") as fh:
        fh.write(encode(served())[:-3])  # a write cut short by the kill
    journal.close()  # the record is not committed: the segment stays for a replay
    claimed = claim_orphans(tmp_path)
    assert [c.path for c in claimed] == [path]
    assert claim_orphans(tmp_path) == [], "a claimed segment was claimed twice"
    assert [r["outputs"] for r in claimed[0].records()] == [[0, 1]]
    claimed[0].finish()
    assert not path.exists()


def _dead_process_segment(folder: Path, request_ids: list[str]) -> None:
    """A real process appends ``request_ids`` to a journal and is SIGKILLed without closing it."""
    code = f"""
import os, signal, uuid, numpy as np
from core.platform.prediction_log.writer import Served
from core.platform.prediction_log.journal import Journal, encode
from db.models import utcnow
j = Journal({str(folder)!r})
j.start()
for rid in {request_ids!r}:
    j.append(encode(Served(rid, utcnow(), "churn", "champion", 3, {{"age": np.array([1.5, 2.5])}}, [0, 1], 3.0,
                           "token:ci"))).wait(10)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]


def test_a_killed_process_segment_is_replayed_once_skipping_what_the_table_holds(factory, tmp_path: Path) -> None:
    folder = tmp_path / "segments"
    ids = [uuid.uuid4().hex for _ in range(5)]
    _dead_process_segment(folder, ids)
    # The dead writer had already stored the first two requests (killed before deleting the segment).
    early = LogWriter(factory, capacity=1000)
    early.start()
    for fields in list(read_segment(next(folder.glob("*.seg"))))[:2]:
        early.offer(Served(**fields))
    assert early.drain(10)
    early.stop()
    writers = [LogWriter(factory, capacity=1000, journal=Journal(folder)) for _ in range(2)]
    for writer in writers:  # two API processes starting at once: each segment is replayed by one of them
        writer.start()
    for writer in writers:
        writer.stop()
    assert sum(w.replayed for w in writers) == 3
    with factory() as session:
        for rid in ids:
            rows = reads.by_request(session, request_id=rid, store=NO_PARTITIONS)
            assert [r.record_index for r in rows] == [0, 1], rid
        assert reads.count(session, store=NO_PARTITIONS, model="churn") == 10
    assert list(folder.glob("*.seg")) == []


def test_an_acknowledged_request_survives_a_writer_that_never_wrote(factory, tmp_path: Path) -> None:
    """The answer waits for the journal, not the database: a writer stopped before writing loses nothing."""
    folder = tmp_path / "segments"
    journal = Journal(folder)
    writer = LogWriter(factory, capacity=1000, journal=journal, linger=30)
    journal.start()  # the writer's thread is never started: nothing reaches the table
    item = served(3)
    ticket = writer.offer(item)
    assert ticket is not None
    ticket.wait(10)
    journal.close()
    with factory() as session:
        assert reads.by_request(session, request_id=item.request_id, store=NO_PARTITIONS) == []
    later = LogWriter(factory, capacity=1000, journal=Journal(folder))
    later.start()
    later.stop()
    with factory() as session:
        rows = reads.by_request(session, request_id=item.request_id, store=NO_PARTITIONS)
    assert [(r.record_index, r.inputs["plan"]) for r in rows] == [(0, "basic"), (1, "basic"), (2, "basic")]


@pytest.mark.skipif(not hasattr(os, "fdatasync"), reason="needs fdatasync")
def test_a_failed_sync_refuses_the_request(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.start()
    journal.append(encode(served())).wait(10)
    journal._failed = OSError(5, "Input/output error")  # what the flusher records when fdatasync fails
    with pytest.raises(JournalFailed, match="Input/output error"):
        journal.append(encode(served()))
    journal._failed = None
    journal.close()


def test_a_request_waits_for_its_sync_and_hears_of_a_stall_or_a_failure() -> None:
    """The request's wait ends when the flusher thread answers: at once when synced, with JournalFailed when
    the sync failed, and with JournalFailed naming the stall when no answer comes in time."""
    import asyncio
    from concurrent.futures import Future

    from core.platform.prediction_log.journal import JournalFailed, Ticket

    async def scenario() -> list[str]:
        said = []
        for outcome in ("synced", "failed", "stalled"):
            future: Future[None] = Future()
            if outcome == "synced":
                threading.Timer(0.05, future.set_result, (None,)).start()
            elif outcome == "failed":
                threading.Timer(0.05, future.set_exception, (JournalFailed("disk full"),)).start()
            try:
                await Ticket(future).wait_async(0.5)
                said.append("acknowledged")
            except JournalFailed as exc:
                said.append(str(exc))
        return said

    synced, failed, stalled = asyncio.run(scenario())
    assert synced == "acknowledged" and failed == "disk full"
    assert stalled.startswith("the prediction journal did not sync within 0.5 s")
