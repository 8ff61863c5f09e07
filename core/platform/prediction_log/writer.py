"""The prediction log: every served prediction written by a background writer, plus feedback and retention.

Requests hand their predictions to ``LogWriter.offer`` and move on; one thread turns them into rows
(the record as the model saw it, its sha256, the output) and inserts them in batches. The queue is
bounded by rows: when it is full a request waits for room (back-pressure) instead of a row being
dropped, and ``stop`` writes everything still queued, so a clean shutdown (SIGTERM) loses nothing
that was acknowledged. A write that fails is retried, never skipped.

With a journal (``core/serving/segments.py``) a request's predictions are first appended to this
process's segment file and the request answers only once they are durable there; the segments a
killed process left behind are replayed into the table (skipping request ids already stored) by the
next writer that starts, so a SIGKILL loses nothing acknowledged either.
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
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy import CursorResult, Table, delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from core import audit, policy
from core.accounts.auth import require
from core.actors import Actor
from core.errors import InvalidInput, NotFound, PermissionDenied, StoreUnavailable
from core.platform.database import transaction
from core.platform.prediction_log.journal import DONE, Journal, Ticket, claim_orphans, encode
from core.platform.registry_port import SHADOW
from core.platform.storage import DataStore
from core.policy import Policies
from db.models import Feedback, PredictionError, PredictionLog, utcnow

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


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a missing value is null
    if isinstance(value, np.generic):
        return _plain(value.item())
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
        plain = [_plain(v) for v in arr.tolist()]
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
                out.append(base | {"record_index": i, "inputs": records[at + i], "output": _plain(output),
                                   "input_hash": hashlib.sha256(texts[at + i].encode()).hexdigest()})
            at += item.rows
    return out


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


# -- reading -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PredictionView:
    request_id: str
    record_index: int
    ts: datetime
    model: str
    alias: str
    version: int
    input_hash: str
    inputs: dict[str, Any]
    output: Any
    latency_ms: float


def _view(r: dict[str, Any]) -> PredictionView:
    return PredictionView(r["request_id"], r["record_index"], r["ts"], r["model"], r["alias"], r["version"],
                          r["input_hash"], r["inputs"], r["output"], r["latency_ms"])


# Every read goes through core/serving/prediction_store.py, which reads the hot table AND the Parquet partitions:
# a reader of the table alone sees nothing of a compacted hour, so ``store`` (the workspace's ``data_store``) is
# required rather than optional.

def by_request(session: Session, *, request_id: str, store: DataStore) -> list[PredictionView]:
    """The records of one request, in the hot table or already compacted."""
    from core.platform.prediction_log import parquet as prediction_store

    return [_view(r) for r in prediction_store.lookup(session, store, request_id=request_id)]


def recent(session: Session, *, store: DataStore, model: str | None = None, limit: int = 20) -> list[PredictionView]:
    """The ``limit`` newest predictions (of ``model``), newest first, hot or compacted."""
    from core.platform.prediction_log import parquet as prediction_store

    return [_view(r) for r in prediction_store.recent(session, store, model=model, limit=limit)]


def count(session: Session, *, store: DataStore, model: str | None = None, version: int | None = None) -> int:
    """How many predictions (of ``model``, of its ``version``) are logged, hot and compacted (shadow rows not)."""
    from core.platform.prediction_log import parquet as prediction_store

    return prediction_store.count(session, store, model=model, version=version)


# -- feedback ------------------------------------------------------------------------------------

def record_feedback(session: Session, *, actor: Actor, model: str, request_id: str, labels: list[Any],
                    store: DataStore, policies: Policies | None = None) -> int:
    """Store ground-truth ``labels`` for the records of a logged request (replacing earlier ones).

    Labels drive live performance and so the automatic rollback: only the actor that made the
    prediction (``requested_by``) may label it, or an actor whose role is at least the model's
    policy ``feedback.label_any_request`` (``admin`` by default; read from the workspace's ``policies``,
    the default policy when None). A request logged before requesters were recorded can be labelled
    only by that role. Replacing labels is audited with the old and new values.

    ``store`` is the workspace's ``data_store``: a request already compacted into the Parquet partitions
    is found there (labels often come late).

    Raises:
        NotFound: no prediction of ``model`` has this request_id (yet).
        PermissionDenied: the actor may not send feedback, or may not label this request.
        InvalidInput: the number of labels differs from the number of records predicted.
    """
    require(session, actor, "feedback.write", f"model:{model}")
    if not isinstance(labels, list) or not labels:
        raise InvalidInput("labels must be a non-empty list with one label per record of the request")
    logged: list[Any] = list(session.execute(
        select(PredictionLog.record_index, PredictionLog.model, PredictionLog.requested_by)
        .where(PredictionLog.request_id == request_id, PredictionLog.alias != SHADOW)
        .order_by(PredictionLog.record_index)).all())  # shadow rows are the challenger's
    if not logged:  # labels often come late: the request's hour may be compacted
        from types import SimpleNamespace

        from core.platform.prediction_log import parquet as prediction_store

        logged = [SimpleNamespace(record_index=r["record_index"], model=r["model"], requested_by=r["requested_by"])
                  for r in prediction_store.lookup(session, store, request_id=request_id)]
    if not logged or logged[0].model != model:
        raise NotFound(f"no prediction of model {model!r} with request_id {request_id!r}")
    _check_labeler(actor, model=model, request_id=request_id, requested_by=logged[0].requested_by,
                    policies=policies)
    if len(labels) != len(logged):
        raise InvalidInput(f"labels has {len(labels)} value(s) but request {request_id} predicted "
                           f"{len(logged)} record(s); send one label per record, in order")
    for i, label in enumerate(labels):
        if isinstance(label, dict | list):
            raise InvalidInput(f"labels[{i}] must be a single value (a class or a number), got {label!r:.60}")
    new = [_plain(label) for label in labels]
    earlier = session.execute(select(Feedback.record_index, Feedback.label, Feedback.created_by)
                              .where(Feedback.request_id == request_id).order_by(Feedback.record_index)).all()
    if earlier:
        changed = [{"record": row.record_index, "old": row.label, "new": new[row.record_index]}
                   for row in earlier if _json(row.label) != _json(new[row.record_index])]  # indices < len(logged)
        audit.record(session, actor, "prediction.feedback_overwritten", f"model:{model}",
                     {"request_id": request_id, "replaced": len(earlier), "changed": changed,
                      "previous_by": sorted({row.created_by for row in earlier})})
    session.execute(delete(Feedback).where(Feedback.request_id == request_id))
    now = utcnow()
    session.execute(insert(Feedback), [{"request_id": request_id, "record_index": i, "model": model,
                                        "label": label, "created_by": actor.name, "ts": now}
                                       for i, label in enumerate(new)])
    audit.record(session, actor, "prediction.feedback", f"model:{model}",
                 {"request_id": request_id, "labels": len(labels)})
    return len(labels)


def _json(value: Any) -> str:
    """A label as JSON text: ``True`` and ``1`` (equal in Python) are different labels."""
    return json.dumps(value, sort_keys=True, default=str)


def _check_labeler(actor: Actor, *, model: str, request_id: str, requested_by: str | None,
                   policies: Policies | None) -> None:
    """Refuse (and audit the refusal) unless ``actor`` made the request or may label any request of ``model``."""
    if requested_by is not None and requester(actor) == requested_by:
        return
    rules = policies.rules_for(model) if policies is not None else policy.ModelPolicy()
    needed = rules.feedback.label_any_request
    if actor.at_least(needed):
        return
    whose = ("was logged before requesters were recorded" if requested_by is None
             else "was made by another token or user")
    denied = PermissionDenied(
        f"{actor.name} may not label request {request_id} of {model}: it {whose}; only the token or user that "
        f"made a prediction may label it, or role {needed!r} or higher (policy feedback.label_any_request)")
    denied.after_rollback.append(lambda own: audit.record(
        own, actor, "permission.denied", f"model:{model}",
        {"permission": "feedback.write", "request_id": request_id, "role": actor.role, "needs": needed,
         "reason": "not the requester"}))
    raise denied


def feedback_for(session: Session, *, request_id: str) -> list[Any]:
    return list(session.scalars(select(Feedback.label).where(Feedback.request_id == request_id)
                                .order_by(Feedback.record_index)))


# -- retention -----------------------------------------------------------------------------------

def purge(factory: sessionmaker[Session], *, actor: Actor, days: int, chunk: int = 5000,
          now: datetime | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Delete prediction log rows, feedback and refusals older than ``days``, ``chunk`` rows per transaction.

    Small transactions keep the database responsive for the API writing new rows meanwhile.
    """
    if days < 1:
        raise InvalidInput(f"retention of {days} days is not allowed; keep at least 1 day")
    from core.platform.prediction_log.parquet import request_id_before

    cutoff = (now or utcnow()) - timedelta(days=days)
    deleted = {"predictions": 0, "feedback": 0, "errors": 0}
    # Labels go with their predictions, however recently they were given. A prediction not in the table may
    # be compacted rather than gone, so "not in the table" alone must not delete its label: it goes when its
    # request id says the prediction is older than the cutoff (its hour's partition goes in the same pass).
    orphaned = ~select(PredictionLog.id).where(PredictionLog.request_id == Feedback.request_id).exists()
    for key, table in (("predictions", PredictionLog), ("feedback", Feedback), ("errors", PredictionError)):
        expired = table.ts < cutoff
        if table is Feedback:
            expired = expired | (orphaned & request_id_before(Feedback.request_id, cutoff))
        while True:
            with transaction(factory) as session:
                ids = select(table.id).where(expired).order_by(table.id).limit(chunk)
                # a DML statement gives a CursorResult, typed as Result
                gone = cast(CursorResult[Any], session.execute(delete(table).where(table.id.in_(ids)))).rowcount or 0
            deleted[key] += gone
            if progress is not None:
                progress(sum(deleted.values()))
            if gone < chunk:
                break
    with transaction(factory) as session:
        audit.record(session, actor, "predictions.purged", "prediction_log",
                     {"days": days, "before": cutoff.isoformat(), **deleted})
    return {"before": cutoff.isoformat(), "days": days, **deleted}
