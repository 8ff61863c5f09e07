"""The prediction journal: an append-only segment file per API process, so acknowledged means durable.

A request's predictions are appended to the process's current segment (one framed record per
request) before they are queued for the database writer; with ``fsync`` durability the answer
waits until a flusher thread has fsynced the segment past that record. The flusher syncs once for
everything appended meanwhile (group commit), so concurrent requests share one fsync. With
``batch`` durability the answer waits only for the write into the operating system (it survives a
killed process, not a machine crash) and the flusher syncs every ``batch_interval`` seconds.

A segment is rotated every few seconds (or megabytes) and deleted once the writer has stored all
of its records in the database. A process that dies leaves its segments behind; they are replayed
by the next process that starts (and by live ones, every half minute). Ownership is an exclusive
``flock`` on the open segment, which the kernel drops when the process dies, even on SIGKILL: a
segment that can be locked belongs to nobody, so two processes never replay the same one, and the
replay skips request ids the database already holds (a crash between the writer's commit and the
segment's deletion replays nothing twice). The folder must be on a local filesystem.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.errors import StoreUnavailable

if TYPE_CHECKING:
    from core.settings import Settings

log = logging.getLogger("leanops.predictions.journal")

MAGIC = b"LEANOPS-SEGMENT-1\n"
FRAME = struct.Struct("<II")  # payload length, crc32 of the payload
SUFFIX = ".seg"
NEW_PREFIX = ".new-"  # a segment being created: locked, then renamed to its final name
Durability = Literal["fsync", "batch"]


def segments_folder(settings: Settings) -> Path:
    """Where the API processes of workspace ``settings.home`` keep their segments."""
    return settings.home / "prediction-log" / "segments"


class JournalFailed(StoreUnavailable):
    """The segment could not be written or synced (disk full, I/O error): the prediction is not acknowledged."""


# -- encoding ------------------------------------------------------------------------------------

def _column(arr: np.ndarray) -> list[Any]:
    kind = arr.dtype.kind
    if kind in "fiub":
        return [arr.dtype.str, arr.tolist()]
    if kind in "mM":  # nanoseconds as integers (NaT included), the unit kept in the dtype
        return [arr.dtype.str, arr.view("i8").tolist()]
    values = []
    for v in arr.tolist():
        if isinstance(v, np.generic):
            v = v.item()
        values.append(v.isoformat() if isinstance(v, datetime) else v)
    return ["O", values]


def _array(spec: list[Any]) -> np.ndarray:
    dtype, values = spec
    if dtype == "O":
        out = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            out[i] = v
        return out
    kind = np.dtype(dtype).kind
    if kind in "mM":
        return np.array(values, dtype="i8").view(dtype)
    return np.array(values, dtype=dtype)


ARROW_FRAME = b"A"  # a payload in the Arrow layout (``encode``); a JSON payload starts with "{"
ARROW_MIN_ROWS = 32  # smaller requests are framed all in JSON (``encode``)
HEAD = struct.Struct("<I")  # length of the JSON head inside an Arrow payload


def _arrow_columns(columns: dict[str, Any], given: dict[str, Any]) -> tuple[Any, dict[str, list[Any]]]:
    """The columns Arrow can hold as one Arrow IPC stream, as a buffer (numbers, times and strings are
    copied as buffers, not turned into text; those in ``given`` are those Arrow arrays already); the others
    (mixed Python types) as JSON specs."""
    import pyarrow as pa

    arrays, names, rest = [], [], {}
    for name, values in columns.items():
        if name in given:
            arrays.append(given[name])
            names.append(name)
            continue
        arr = np.asarray(values)
        try:
            arrays.append(pa.array(arr, from_pandas=False))
            names.append(name)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            rest[name] = _column(arr)
    if not arrays:
        return b"", rest
    sink = pa.BufferOutputStream()
    table = pa.Table.from_arrays(arrays, names=names)
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue(), rest


def _from_arrow(data: bytes) -> dict[str, np.ndarray]:
    import pyarrow as pa

    if not data:
        return {}
    table = pa.ipc.open_stream(data).read_all()
    out = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or column.null_count:
            out[name] = _array(["O", column.to_pylist()])  # strings and anything with gaps stay Python objects
        else:
            out[name] = column.to_numpy()
    return out


def encode(item: Any, arrow: dict[str, Any] | None = None) -> bytes:
    """One ``Served`` as a frame: length, crc32, payload. The payload is a small JSON head and the input
    columns as an Arrow IPC stream: a 10,000-row request is framed in milliseconds, where JSON text of
    every value took ~90 ms on the request's path. Floats are kept exactly, NaN included. ``arrow``: the
    request's own Arrow arrays of columns they hold exactly (``Coerced.arrow``), framed as they are.
    A request of fewer than ``ARROW_MIN_ROWS`` rows is framed all in JSON (the layout ``decode`` also
    reads): an Arrow stream's fixed cost, ~50 µs, is most of a single record's."""
    if item.rows < ARROW_MIN_ROWS:
        doc = {"r": item.request_id, "t": item.ts.isoformat(), "m": item.model, "a": item.alias,
               "v": item.version, "l": item.latency_ms, "b": item.requested_by, "o": item.outputs,
               "c": {name: _column(np.asarray(values)) for name, values in item.columns.items()}}
        payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        return FRAME.pack(len(payload), zlib.crc32(payload)) + payload
    stream, rest = _arrow_columns(item.columns, arrow or {})
    doc = {"r": item.request_id, "t": item.ts.isoformat(), "m": item.model, "a": item.alias, "v": item.version,
           "l": item.latency_ms, "b": item.requested_by, "o": item.outputs, "c": rest, "order": list(item.columns)}
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    head = ARROW_FRAME + HEAD.pack(len(text)) + text
    # The Arrow stream is copied once, into the frame: a copy of a megabyte costs about a millisecond.
    return b"".join((FRAME.pack(len(head) + len(stream), zlib.crc32(stream, zlib.crc32(head))), head, stream))


def decode(payload: bytes) -> dict[str, Any]:
    """A frame's payload as the fields of ``writer.Served`` (which imports this module, not the reverse).
    Reads both layouts ``encode`` writes: the Arrow one and the all-JSON one (small requests, and every
    frame of segments written before the Arrow layout)."""
    if payload[:1] == ARROW_FRAME:
        (size,) = HEAD.unpack_from(payload, 1)
        start = 1 + HEAD.size
        doc = json.loads(payload[start:start + size])
        found = _from_arrow(payload[start + size:]) | {name: _array(spec) for name, spec in doc["c"].items()}
        columns = {name: found[name] for name in doc["order"]}
    else:
        doc = json.loads(payload)
        columns = {name: _array(spec) for name, spec in doc["c"].items()}
    return {"request_id": doc["r"], "ts": datetime.fromisoformat(doc["t"]), "model": doc["m"], "alias": doc["a"],
            "version": doc["v"], "columns": columns, "outputs": doc["o"], "latency_ms": doc["l"],
            "requested_by": doc["b"]}


def read_segment(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a segment, in order, up to its first incomplete or damaged frame (a torn last write)."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        if data:
            log.error("prediction segment %s has no segment header; skipped", path)
        return
    at = len(MAGIC)
    while at + FRAME.size <= len(data):
        length, crc = FRAME.unpack_from(data, at)
        payload = data[at + FRAME.size: at + FRAME.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        yield decode(payload)
        at += FRAME.size + length
    if at < len(data):
        log.warning("prediction segment %s ends with %d bytes of an unfinished record (never acknowledged)",
                    path, len(data) - at)


# -- tickets -------------------------------------------------------------------------------------

class Ticket:
    """What a request waits on before it answers: its record is durable (or the journal failed)."""

    __slots__ = ("future",)

    def __init__(self, future: Future[None] | None = None) -> None:
        self.future = future

    def __bool__(self) -> bool:  # ``if writer.offer(item):`` reads "it was taken"
        return True

    def wait(self, timeout: float | None = None) -> None:
        if self.future is not None:
            self.future.result(timeout)

    async def wait_async(self, timeout: float) -> None:
        """Wait on the event loop without blocking it. (A plain loop future woken from the flusher thread:
        half the CPU of ``wait_for(shield(wrap_future(...)))``, paid by every request.)"""
        future = self.future
        if future is None or (future.done() and future.exception() is None):
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        future.add_done_callback(lambda _: _call_soon(loop, waiter))
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
        if not future.done():
            raise JournalFailed(f"the prediction journal did not sync within {timeout:g} s (is its disk stalled?); "
                                "the prediction was not acknowledged")
        future.result()  # JournalFailed when the sync failed


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # a request that went away, or the timer came first
        waiter.set_result(None)


def _call_soon(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None]) -> None:
    try:
        loop.call_soon_threadsafe(_wake, waiter)
    except RuntimeError:  # the loop closed meanwhile: nobody waits any more
        pass


DONE = Ticket()


# -- the journal ---------------------------------------------------------------------------------

@dataclass
class Segment:
    number: int
    path: Path
    fd: int
    opened: float
    bytes: int = len(MAGIC)
    synced_bytes: int = 0
    appended: int = 0  # records written
    committed: int = 0  # records the writer has stored in the database
    sealed: bool = False
    dir_synced: bool = False
    waiters: list[tuple[int, Future[None]]] = field(default_factory=list)


def _create(folder: Path, number: int) -> tuple[Path, int]:
    """A new locked segment: created under a temporary name, locked, headed, then renamed into view."""
    name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{number:06d}{SUFFIX}"
    tmp = folder / (NEW_PREFIX + name)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, MAGIC)
        os.rename(tmp, folder / name)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return folder / name, fd


class Journal:
    """This process's segments, appended by requests and synced by one flusher thread."""

    def __init__(self, folder: Path, *, durability: Durability = "fsync", segment_bytes: int = 32 << 20,
                 segment_seconds: float = 5.0, batch_interval: float = 0.2) -> None:
        self.folder, self.durability = Path(folder), durability
        self.segment_bytes, self.segment_seconds, self.batch_interval = segment_bytes, segment_seconds, batch_interval
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._segments: deque[Segment] = deque()  # oldest first; the last one is active
        self._order: deque[int] = deque()  # segment number of every record not yet committed, in append order
        self._seq = 0  # records appended
        self._durable = 0  # records synced
        self._number = 0
        self._closing = False
        self._failed: Exception | None = None
        self._thread: threading.Thread | None = None
        self.syncs = 0

    # -- producers -------------------------------------------------------------------------------

    def start(self) -> None:
        import pyarrow.ipc  # noqa: F401 - imported now, not on the first request's path (``encode``)

        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._thread is None:
                self._open_segment()
                self._thread = threading.Thread(target=self._run, name="leanops-prediction-journal", daemon=True)
                self._thread.start()

    def append(self, frame: bytes) -> Ticket:
        """Write one encoded record (``encode``) to the active segment; the caller holds the writer's queue
        order, so records are committed later in the order they were appended."""
        with self._lock:
            if self._failed is not None:
                raise JournalFailed(f"the prediction journal in {self.folder} failed: {self._failed}")
            if self._closing or not self._segments:
                raise JournalFailed("the prediction journal is closed")
            segment = self._segments[-1]
            try:
                os.write(segment.fd, frame)
            except OSError as exc:
                raise JournalFailed(f"could not write the prediction journal in {self.folder}: {exc}") from None
            segment.bytes += len(frame)
            segment.appended += 1
            self._order.append(segment.number)
            self._seq += 1
            if self.durability == "batch":
                return DONE
            future: Future[None] = Future()
            segment.waiters.append((self._seq, future))
            self._wake.notify()
            return Ticket(future)

    def committed(self, records: int) -> None:
        """The writer stored the next ``records`` appended records in the database."""
        with self._lock:
            for _ in range(min(records, len(self._order))):
                number = self._order.popleft()
                for segment in self._segments:
                    if segment.number == number:
                        segment.committed += 1
                        break
            self._wake.notify()

    @property
    def pending(self) -> int:
        """Records in the segments that the database does not hold yet."""
        return len(self._order)

    def close(self, timeout: float = 30.0) -> None:
        """Sync, delete the segments whose records are all stored, and release the rest (replayed later)."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- the flusher -----------------------------------------------------------------------------

    def _open_segment(self) -> None:
        self._number += 1
        path, fd = _create(self.folder, self._number)
        self._segments.append(Segment(self._number, path, fd, time.monotonic()))

    def _run(self) -> None:
        while True:
            with self._lock:
                if self.durability == "batch":
                    self._wake.wait(self.batch_interval)
                while not self._work() and not self._closing:
                    self._wake.wait(min(1.0, self.segment_seconds / 4))
                closing = self._closing
                if self._due() or closing:
                    self._rotate(final=closing)
                seq = self._seq
                to_sync = [(s, s.bytes) for s in self._segments if s.bytes > s.synced_bytes]
            error: Exception | None = None
            try:
                for segment, size in to_sync:
                    os.fdatasync(segment.fd)  # only this thread closes a segment's fd
                    if not segment.dir_synced:
                        self._sync_dir()
                        segment.dir_synced = True
                    segment.synced_bytes = size
                if to_sync:
                    self.syncs += 1
            except OSError as exc:
                error = exc
                log.error("syncing the prediction journal in %s failed: %s", self.folder, exc)
            with self._lock:
                if error is not None:
                    self._failed = error
                else:
                    self._durable = max(self._durable, seq)
                for segment in self._segments:
                    self._answer(segment, error)
                self._drop_finished()
                if closing:
                    for segment in self._segments:  # left for a replay: records the database does not hold
                        os.close(segment.fd)
                        log.warning("prediction segment %s kept: %d record(s) not yet in the database",
                                    segment.path.name, segment.appended - segment.committed)
                    self._segments.clear()
                    return

    def _work(self) -> bool:
        """Something for the flusher: records to sync (fsync mode), a rotation, a segment to delete."""
        return (any(s.bytes > s.synced_bytes for s in self._segments) or self._due()
                or any(s.sealed and s.committed >= s.appended for s in self._segments))

    def _due(self) -> bool:
        active = self._segments[-1] if self._segments else None
        return active is not None and active.appended > 0 and (
            active.bytes >= self.segment_bytes or time.monotonic() - active.opened >= self.segment_seconds)

    def _rotate(self, *, final: bool) -> None:
        if self._segments:
            self._segments[-1].sealed = True
        if not final:
            try:
                self._open_segment()
            except OSError as exc:
                self._failed = exc
                log.error("could not open a new prediction segment in %s: %s", self.folder, exc)

    def _answer(self, segment: Segment, error: Exception | None) -> None:
        keep = []
        for seq, future in segment.waiters:
            if error is None and seq > self._durable:
                keep.append((seq, future))
                continue
            try:
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(JournalFailed(f"could not sync the prediction journal: {error}"))
            except InvalidStateError:  # the request gave up waiting
                pass
        segment.waiters = keep

    def _drop_finished(self) -> None:
        """Delete sealed segments all of whose records the database holds (the flusher alone closes fds)."""
        for segment in list(self._segments):
            if segment.sealed and segment.committed >= segment.appended and not segment.waiters:
                segment.path.unlink(missing_ok=True)
                os.close(segment.fd)
                self._segments.remove(segment)

    def _sync_dir(self) -> None:
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- recovery ------------------------------------------------------------------------------------

@dataclass
class Claimed:
    """A leftover segment this process holds the lock of, to replay and then delete."""

    path: Path
    fd: int

    def records(self) -> list[dict[str, Any]]:
        return list(read_segment(self.path))

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    def release(self) -> None:
        os.close(self.fd)


def claim_orphans(folder: Path, *, stale_new_seconds: float = 60.0) -> list[Claimed]:
    """Segments no live process holds (oldest first), each locked by this process until finished or released."""
    if not folder.is_dir():
        return []
    claimed = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(NEW_PREFIX):  # a creator died before renaming: no record was ever written to it
            try:
                if time.time() - path.stat().st_mtime > stale_new_seconds:
                    path.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
            continue
        if not path.name.endswith(SUFFIX):
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Replayed and deleted by another process between our listing and our lock: not ours.
            if os.fstat(fd).st_ino != path.stat().st_ino:
                raise FileNotFoundError(path)
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            continue
        claimed.append(Claimed(path, fd))
    return claimed
