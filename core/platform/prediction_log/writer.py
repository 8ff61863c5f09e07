"""The prediction log's writer: every served prediction written to the table by a background thread.

Requests hand their predictions to ``LogWriter.offer`` and move on; one thread turns them into rows
(the record as the model saw it, its sha256, the output) and inserts them in batches. The queue is
bounded by rows: when it is full a request waits for room (back-pressure) instead of a row being
dropped, and ``stop`` writes everything still queued, so a clean shutdown (SIGTERM) loses nothing
that was acknowledged. A write that fails is retried, never skipped.

With a journal (``journal.Journal``) a request's predictions are first appended to this process's
segment file and the request answers only once they are durable there; the segments a killed
process left behind are replayed into the table (skipping request ids already stored) by the next
writer that starts, so a SIGKILL loses nothing acknowledged either.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from core.actors import Actor
from core.errors import StoreUnavailable
from core.platform.database import transaction
from core.platform.prediction_log.journal import DONE, Journal, Ticket, claim_orphans, encode
from db.models import Feedback, PredictionError, PredictionLog

log = logging.getLogger("leanops.predictions")


@dataclass(frozen=True)
class Served:
    """One request's predictions, as handed to the writer."""

    request_id: str
    ts: datetime
    model: str
    alias: str
    version: int
    columns: dict[str, np.ndarray]  # the records as the model saw them
    outputs: list[Any]
    latency_ms: float
    requested_by: str | None = None  # who asked (``requester(actor)``): feedback is bound to it

    @property
    def rows(self) -> int:
        return len(self.outputs)


def requester(actor: Actor) -> str:
    """The identity a logged prediction keeps of the actor that asked for it (``Actor.name``: a username,
    ``token:NAME``, ``cli:…``, ``system:…``), cut to the column's 128 characters."""
    return actor.name[:128]


@dataclass(frozen=True)
class Refused:
    """A predict request that served nothing (bad input, unknown model …)."""

    request_id: str
    ts: datetime
    model: str
    alias: str
    status: int
    message: str
    rows: int = 1


def plain_value(value: Any) -> Any:
    """``value`` as the log's JSON holds it: NaN and infinities as null, numpy scalars as Python values,
    times as ISO text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a missing value is null
    if isinstance(value, np.generic):
        return plain_value(value.item())
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def canonical(record: dict[str, Any]) -> bytes:
    """The exact bytes ``input_hash`` covers: sorted keys, no spaces, UTF-8, null for missing."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def input_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


_STR = json.encoder.encode_basestring  # the escaper json.dumps(ensure_ascii=False) uses for str


def _column(values: np.ndarray) -> tuple[list[Any], list[str]]:
    """A column as JSON-able Python values, and as each value's canonical JSON text.

    Encoding column by column (by dtype) is several times cheaper than json.dumps per record; the
    text is exactly what ``canonical`` gives for the same record.
    """
    arr = np.asarray(values)
    kind = arr.dtype.kind
    if kind == "f":
        plain = arr.tolist()
        finite = np.isfinite(arr)
        if not finite.all():
            plain = [v if ok else None for v, ok in zip(plain, finite.tolist(), strict=True)]
        return plain, ["null" if v is None else float.__repr__(v) for v in plain]
    if kind in "iu":
        plain = arr.tolist()
        return plain, list(map(str, plain))
    if kind == "b":
        plain = arr.tolist()
        return plain, ["true" if v else "false" for v in plain]
    if kind == "M":
        import pandas as pd

        plain = [None if pd.isna(v) else v.isoformat() for v in pd.Series(arr)]
    else:
        plain = [plain_value(v) for v in arr.tolist()]
    return plain, [_STR(v) if type(v) is str else json.dumps(v, ensure_ascii=False, default=str) for v in plain]


def _encode(columns: dict[str, np.ndarray], rows: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Records (dicts for the JSON column) and their canonical JSON texts, built column-wise."""
    names = sorted(columns)
    if not names:
        return [{} for _ in range(rows)], ["{}"] * rows
    encoded = [_column(columns[n]) for n in names]
    prefixes = [_STR(n) + ":" for n in names]
    texts = ["{" + ",".join(map(str.__add__, prefixes, parts)) + "}"
             for parts in zip(*[text for _, text in encoded], strict=True)]
    records = [dict(zip(names, values, strict=True)) for values in zip(*[p for p, _ in encoded], strict=True)]
    return records, texts


def rows_of(items: list[Served]) -> list[dict[str, Any]]:
    """Prediction log rows (one per record, with its canonical JSON's sha256) of several requests.

    Requests with the same columns and dtypes are encoded together: many single-record requests
    cost about what one request with that many records does.
    """
    groups: dict[tuple[tuple[str, str], ...], list[Served]] = {}
    for item in items:
        key = tuple((n, np.asarray(item.columns[n]).dtype.str) for n in sorted(item.columns))
        groups.setdefault(key, []).append(item)
    out = []
    for key, group in groups.items():
        if len(group) == 1:
            merged = group[0].columns
        else:
            merged = {n: np.concatenate([np.asarray(item.columns[n]) for item in group]) for n, _ in key}
        records, texts = _encode(merged, sum(item.rows for item in group))
        at = 0
        for item in group:
            base = {"request_id": item.request_id, "ts": item.ts, "model": item.model, "alias": item.alias,
                    "version": item.version, "latency_ms": round(item.latency_ms, 3),
                    "requested_by": item.requested_by}
            for i, output in enumerate(item.outputs):
                out.append(base | {"record_index": i, "inputs": records[at + i], "output": plain_value(output),
                                   "input_hash": hashlib.sha256(texts[at + i].encode()).hexdigest()})
            at += item.rows
    return out


def insert_served(session: Session, items: list[Served]) -> int:
    """Insert the rows of ``items`` at once, in the caller's transaction (not through a ``LogWriter``: a
    workspace's seed data). Returns how many rows."""
    rows = rows_of(items)
    if rows:  # Core: no ORM bookkeeping (a model's __table__ is a Table, typed as FromClause)
        session.execute(insert(cast(Table, PredictionLog.__table__)), rows)
    return len(rows)


def replace_labels(session: Session, *, request_id: str, model: str, labels: list[Any], created_by: str,
                   ts: datetime) -> None:
    """Store the ground-truth ``labels`` of a request's records (in record order), replacing earlier ones."""
    session.execute(delete(Feedback).where(Feedback.request_id == request_id))
    session.execute(insert(Feedback), [{"request_id": request_id, "record_index": i, "model": model,
                                        "label": label, "created_by": created_by, "ts": ts}
                                       for i, label in enumerate(labels)])


def replace_record_labels(session: Session, *, request_id: str, model: str, labels: dict[int, Any], created_by: str,
                          ts: datetime) -> None:
    """Store the ground-truth labels of some records of a request (record index → label; a batch's rows labelled
    by id), replacing earlier labels of those records only."""
    indices = sorted(labels)
    for at in range(0, len(indices), 1000):
        session.execute(delete(Feedback).where(Feedback.request_id == request_id,
                                               Feedback.record_index.in_(indices[at: at + 1000])))
    session.execute(insert(Feedback), [{"request_id": request_id, "record_index": i, "model": model,
                                        "label": labels[i], "created_by": created_by, "ts": ts} for i in indices])


class LogFull(StoreUnavailable):
    """The writer's queue has had no room for too long (the database is down or far behind)."""


class LogWriter:
    """The bounded queue and the thread that writes it to the database in batches."""

    def __init__(self, factory: sessionmaker[Session], *, capacity: int, batch_rows: int = 1000,
                 linger: float = 0.25, on_written: Callable[[int, float], None] | None = None,
                 journal: Journal | None = None, stored_elsewhere: Callable[[list[Served]], set[str]] | None = None,
                 replay_every: float = 30.0) -> None:
        """``journal``: append every served request there before queueing it (``offer`` returns the ticket to
        wait on), and replay the segments dead processes left in its folder at start and every
        ``replay_every`` seconds. ``stored_elsewhere(items)``: the request ids among ``items`` already moved
        out of the table (compacted), which a replay must not write again."""
        self.factory, self.capacity, self.batch_rows, self.linger = factory, capacity, batch_rows, linger
        self.journal, self.stored_elsewhere, self.replay_every = journal, stored_elsewhere, replay_every
        self.replayed = 0
        self.on_written = on_written if on_written is not None else (lambda rows, seconds: None)
        self._queue: deque[Served | Refused] = deque()
        self._queued_rows = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the writer waits here for rows
        self._room = threading.Condition(self._lock)  # producers (room) and drain (empty) wait here
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.written = 0
        self.failures = 0

    # -- producer side ---------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Rows waiting to be written (queued and in the batch being written)."""
        return self._queued_rows + self._in_flight

    def offer(self, item: Served | Refused, arrow: dict[str, Any] | None = None) -> Ticket | None:
        """Queue ``item`` if there is room (a request bigger than the queue waits for it to be empty).

        Returns None when there is no room, else the ticket to wait on before answering: with a journal,
        the served request's record is durable once it resolves (JournalFailed if it cannot be).
        ``arrow``: the request's Arrow arrays of some columns (``Coerced.arrow``), for the journal."""
        frame = encode(item, arrow) if self.journal is not None and isinstance(item, Served) else None
        with self._lock:
            if self._stopping:
                raise LogFull("the prediction log is shutting down")
            if self._queued_rows and self._queued_rows + item.rows > self.capacity:
                return None
            # Appended under the queue's lock: the journal's order is the order the writer commits in.
            ticket = self.journal.append(frame) if self.journal is not None and frame is not None else DONE
            self._queue.append(item)
            self._queued_rows += item.rows
            if len(self._queue) == 1 or self._queued_rows >= self.batch_rows:
                self._work.notify()  # wake an idle writer; one that is gathering a batch sleeps on
            return ticket

    def put(self, item: Served | Refused, *, timeout: float) -> None:
        """Queue ``item``, waiting up to ``timeout`` seconds for room."""
        deadline = time.monotonic() + timeout
        while not self.offer(item):
            with self._lock:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LogFull(f"the prediction log has had no room for {timeout:g} s")
                self._room.wait(min(left, 0.05))

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queued_rows or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._room.wait(min(left, 0.05))
        return True

    # -- the writer thread -----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            if self.journal is not None:
                self.journal.start()
            self._thread = threading.Thread(target=self._run, name="leanops-prediction-log", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Write everything queued, then end the thread."""
        with self._lock:
            self._stopping = True
            self._work.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("prediction log writer did not finish in %s s; %s rows unwritten", timeout, self.depth)
            self._thread = None
        if self.journal is not None:
            self.journal.close()  # segments whose records are all stored go; the rest are replayed later

    def _take(self) -> list[Served | Refused]:
        with self._lock:
            idle = not self._queue
            while not self._queue and not self._stopping:
                self._work.wait(0.5)
            # Woken from idle, linger: a batch gathers (one transaction for many requests) and the
            # request that woke us gets its answer out before this thread competes for the GIL.
            deadline = time.monotonic() + self.linger
            while idle and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._work.wait(left)
            batch: list[Served | Refused] = []
            rows = 0
            while self._queue and (rows < self.batch_rows or not batch):
                item = self._queue.popleft()
                batch.append(item)
                rows += item.rows
            self._queued_rows -= rows
            self._in_flight = rows
            self._room.notify_all()
            return batch

    def _run(self) -> None:
        replayed_at = time.monotonic()
        if self.journal is not None:
            self._replay()
        while True:
            if self.journal is not None and time.monotonic() - replayed_at >= self.replay_every:
                replayed_at = time.monotonic()
                self._replay()  # segments of an API process that died while this one runs
            batch = self._take()
            if not batch:
                with self._lock:
                    if self._stopping and not self._queue:
                        return
                continue
            self._write(batch)
            with self._lock:
                self._in_flight = 0
                self._room.notify_all()

    def _write(self, batch: list[Served | Refused]) -> None:
        served = rows_of([item for item in batch if isinstance(item, Served)])
        refused = [{"request_id": i.request_id, "ts": i.ts, "model": i.model[:255], "alias": i.alias[:64],
                    "status": i.status, "message": i.message[:4000]} for i in batch if isinstance(i, Refused)]
        delay = 0.1
        while True:
            started = time.monotonic()
            try:
                with transaction(self.factory) as session:
                    # Core: no ORM bookkeeping (a model's __table__ is a Table, typed as FromClause)
                    if served:
                        session.execute(insert(cast(Table, PredictionLog.__table__)), served)
                    if refused:
                        session.execute(insert(cast(Table, PredictionError.__table__)), refused)
                self.written += len(served)
                if self.journal is not None:
                    self.journal.committed(sum(isinstance(item, Served) for item in batch))
                self.on_written(len(served), time.monotonic() - started)
                return
            except Exception:  # noqa: BLE001 - never drop rows: retry until the database is back
                self.failures += 1
                log.warning("writing %s prediction log rows failed; retrying in %.1f s", len(served), delay,
                            exc_info=self.failures == 1 or self.failures % 50 == 0)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


    def _replay(self) -> None:
        """Store the records of every segment no live process holds, then delete the segment."""
        assert self.journal is not None
        try:
            claimed = claim_orphans(self.journal.folder)
        except OSError:
            log.exception("could not list the prediction segments in %s", self.journal.folder)
            return
        for segment in claimed:
            try:
                items = [Served(**fields) for fields in segment.records()]
            except Exception:  # noqa: BLE001 - keep the file for an operator; the rest still replays
                log.exception("prediction segment %s cannot be read; kept", segment.path)
                segment.release()
                continue
            if not all(self._store_replayed(items[at: at + 500]) for at in range(0, len(items), 500)):
                segment.release()  # stopping while the database is away: the next start replays it
                return
            segment.finish()
            log.info("replayed prediction segment %s: %d request(s)", segment.path.name, len(items))

    def _store_replayed(self, items: list[Served]) -> bool:
        """Insert ``items`` whose request ids are neither in the table nor compacted (retried like ``_write``
        until stopping: then False)."""
        delay = 0.1
        while True:
            try:
                with transaction(self.factory) as session:
                    ids = [item.request_id for item in items]
                    stored = set(session.scalars(select(PredictionLog.request_id).distinct()
                                                 .where(PredictionLog.request_id.in_(ids))))
                    # The partitions are asked after the table: a row a compactor moves meanwhile is in a
                    # file before it leaves the table, so it is seen in one place or the other.
                    rest = [item for item in items if item.request_id not in stored]
                    elsewhere = self.stored_elsewhere(rest) if self.stored_elsewhere is not None and rest else set()
                    new = [item for item in rest if item.request_id not in elsewhere]
                    if new:
                        session.execute(insert(cast(Table, PredictionLog.__table__)), rows_of(new))
                self.replayed += len(new)
                return True
            except Exception:  # noqa: BLE001 - the segment stays until its records are stored
                self.failures += 1
                if self._stopping:
                    return False
                log.warning("replaying %s prediction(s) failed; retrying in %.1f s", len(items), delay,
                            exc_info=self.failures == 1 or self.failures % 50 == 0)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
