"""Shadow scoring: the challenger scores the champion's live records off the response path.

Lean teams cannot A/B test (a traffic split never reaches significance at their volume), so the
challenger sees the *same* records as the champion instead: after a champion request is answered
(and logged), ``ShadowScorer.offer`` puts its records on a bounded queue and returns at once; one
worker thread predicts them with the challenger and logs the outputs under the same request id,
marked ``alias="shadow"`` (``registry_port.SHADOW``), so the comparison pairs them record by record.

The champion's answer never waits for any of it: ``offer`` only appends to a deque under a lock. When
the queue already holds ``capacity`` rows (the challenger cannot keep up, or the machine is
saturated) the request's shadow is skipped and counted (``on_skipped``: the
``leanops_shadow_skipped_total`` metric), and so is a shadow row the prediction log has no room for
(it never waits for room: only the champion's rows get back-pressure).

Live traffic comes first. A queue that is not full is not enough: on a small machine the challenger's
predict competes with the champion's for the CPU (and the GIL) and slowed it by a third (bench/shadow.py).
So the worker scores only while the champion is idle: ``busy`` (the Predictor's count of requests in
flight) must have been at most ``busy_threshold`` for ``busy_quiet`` seconds. Until then the records
wait in the queue; under sustained load it fills, and a request that finds it full while the champion
is busy is skipped and counted as ``busy`` (``queue_full`` when the champion is idle and the challenger
simply cannot keep up). Its thread also runs at the lowest OS priority (Linux: nice 19 applies to
that thread only), so what it does score yields the CPU to the request threads.

Which models shadow, and how many of their requests (``shadow.enabled``, ``shadow.sample``), is read
from the policy file by the worker every ``policy_seconds``, never on the request path.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from core.platform.prediction_log.writer import LogWriter, Served
from core.platform.registry_port import CHALLENGER, SHADOW
from core.serving.cache import LoadedModel, ModelCache
from core.serving.signature import Columns, merge

if TYPE_CHECKING:
    from core.policy import Policies, PolicyFile

log = logging.getLogger("leanops.shadow")
CAPACITY_ROWS = 20_000  # rows waiting for the challenger before shadow work is skipped
MAX_BATCH_ROWS = 512  # queued requests of one model predicted together, up to this many rows
NO_CHALLENGER_SECONDS = 10.0  # how long "this model has no challenger to load" is believed
BUSY_THRESHOLD = 0  # champion requests in flight above which the challenger does not score
BUSY_QUIET = 0.03  # seconds the champion must have been idle on end before the challenger scores
BUSY_POLL = 0.01  # a poll takes the GIL from the request threads for a moment: not too often
Skipped = Callable[[str, str], None]  # (model, reason)


@dataclass(frozen=True)
class _Item:
    model: str
    champion_version: int
    request_id: str
    ts: datetime
    columns: Columns
    rows: int
    requested_by: str | None


class ShadowScorer:
    """A bounded queue of champion requests and the thread that has the challenger score them."""

    def __init__(self, *, cache: ModelCache, writer: LogWriter | None, policies: Policies | None,
                 capacity: int = CAPACITY_ROWS, policy_seconds: float = 5.0,
                 on_skipped: Skipped | None = None, on_scored: Callable[[str, int], None] | None = None,
                 rates: dict[str, float] | None = None, busy: Callable[[], int] | None = None,
                 busy_threshold: int = BUSY_THRESHOLD, busy_quiet: float = BUSY_QUIET) -> None:
        """``policies``: the workspace's policies.yaml, which says which models shadow; ``rates`` (model → sample
        share) replaces reading it (tests, benches); ``busy``: how many champion requests are in flight
        (the Predictor sets it), the worker scores only while it is at most ``busy_threshold``."""
        self.cache, self.writer, self.policies = cache, writer, policies
        self.capacity, self.policy_seconds = capacity, policy_seconds
        self.on_skipped: Skipped = on_skipped or (lambda model, reason: None)
        self.on_scored = on_scored or (lambda model, rows: None)
        self.busy: Callable[[], int] = busy or (lambda: 0)
        self.busy_threshold, self.busy_quiet = busy_threshold, busy_quiet
        self._fixed = rates is not None
        self._rates: dict[str, float] = dict(rates or {})  # model → share of its requests shadowed
        self._rates_at = time.monotonic() if self._fixed else float("-inf")
        self._seen: set[str] = set()
        self._none_until: dict[str, float] = {}  # model → monotonic time until which it has no challenger
        self._queue: deque[_Item] = deque()
        self._rows = 0
        self._cond = threading.Condition()
        self._busy = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._random = random.Random()
        self._policy: tuple[str, PolicyFile] | None = None  # the policies.yaml text last parsed, and its rules

    # -- the request path (the event loop): cheap, never blocks on anything but a short lock --------------

    def offer(self, *, model: str, champion_version: int, request_id: str, ts: datetime, columns: Columns,
              rows: int, requested_by: str | None) -> bool:
        """Queue a champion request's records for the challenger, or skip them; never waits."""
        rate = self._rates.get(model)
        if rate is None:  # a model the policy was not read for yet: the worker reads it next round
            self._seen.add(model)
            return False
        if rate <= 0.0 or self._none_until.get(model, 0.0) > time.monotonic():
            return False
        if rate < 1.0 and self._random.random() >= rate:
            return False
        with self._cond:
            if self._stop or self._rows + rows > self.capacity:
                full = True
            else:
                full = False
                self._queue.append(_Item(model, champion_version, request_id, ts, columns, rows, requested_by))
                self._rows += rows
                self._cond.notify()
        if full:
            self.on_skipped(model, "busy" if self.busy() > self.busy_threshold else "queue_full")
            return False
        return True

    @property
    def depth(self) -> int:
        """Rows waiting for the challenger."""
        return self._rows

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            if not self._fixed:
                self._read_policy()
            self._thread = threading.Thread(target=self._run, name="leanops-shadow", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker; what is still queued is dropped (shadow rows are evidence, not answers)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued request has been scored (tests, benches); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._queue or self._busy) and time.monotonic() < deadline:
                self._cond.wait(0.02)
            return not self._queue and not self._busy

    # -- the worker ----------------------------------------------------------------------------------

    def _run(self) -> None:
        _lowest_priority()
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait(self.policy_seconds)
                    if not self._queue:
                        break
                if self._stop:
                    return
                batch = self._take()
                self._busy = bool(batch)
            try:
                if not self._fixed and time.monotonic() - self._rates_at >= self.policy_seconds:
                    self._read_policy()
                if batch and self._wait_idle():
                    self._score(batch)
            except Exception:  # noqa: BLE001 - the worker must survive anything; the shadow is best effort
                log.exception("shadow scoring failed")
                for item in batch:
                    self.on_skipped(item.model, "error")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _wait_idle(self) -> bool:
        """Wait until the champion is idle: at most ``busy_threshold`` requests in flight for ``busy_quiet``
        seconds on end (micro-batched requests finish together, so a bare instant of zero comes between
        every batch under load and is no idle moment); False when the scorer is stopped meanwhile. Polls:
        the event loop must not pay for telling this thread."""
        quiet_since = None
        while not self._stop:
            now = time.monotonic()
            if self.busy() > self.busy_threshold:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= self.busy_quiet:
                return True
            time.sleep(BUSY_POLL)
        return False

    def _take(self) -> list[_Item]:
        """The oldest queued request and the ones of the same model after it, up to MAX_BATCH_ROWS rows."""
        if not self._queue:
            return []
        first = self._queue.popleft()
        batch, rows, rest = [first], first.rows, deque[_Item]()
        while self._queue and rows < MAX_BATCH_ROWS:
            item = self._queue.popleft()
            if item.model == first.model and rows + item.rows <= MAX_BATCH_ROWS:
                batch.append(item)
                rows += item.rows
            else:
                rest.append(item)
        self._queue.extendleft(reversed(rest))
        self._rows -= rows
        return batch

    def _read_policy(self) -> None:
        from core import policy

        self._rates_at = time.monotonic()
        if self.policies is None:
            return
        try:
            text = self.policies.text()
            if self._policy is None or self._policy[0] != text:  # parsed (pure-Python YAML) only when changed
                self._policy = (text, policy.parse(text))
            rules = self._policy[1]
        except Exception as exc:  # noqa: BLE001 - a broken file keeps the last rates (the page refuses to save one)
            log.warning("shadow: could not read the policy: %s", exc)
            return
        # every model named in the file, served here, or asked for since the last read
        names = set(rules.models) | {name for name, _alias in self.cache.served()} | set(self._seen)
        rates: dict[str, float] = {}
        for name in names:
            shadow = policy.for_model(rules, name).shadow
            rates[name] = shadow.sample if shadow.enabled else 0.0
        self._rates = rates

    def _challenger(self, model: str) -> LoadedModel | None:
        found = self.cache.peek(model, CHALLENGER)
        if found is not None:
            return found
        try:
            return self.cache.get(model, CHALLENGER)
        except Exception as exc:  # noqa: BLE001 - no challenger (or one LeanOps refuses): nothing to shadow
            log.info("shadow: %s has no challenger to score with (%s)", model, str(exc).splitlines()[0][:200])
            self._none_until[model] = time.monotonic() + NO_CHALLENGER_SECONDS
            return None

    def _score(self, batch: list[_Item]) -> None:
        model = batch[0].model
        challenger = self._challenger(model)
        if challenger is None:
            return
        items = [i for i in batch if i.champion_version != challenger.version]
        if not items:
            return
        started = time.perf_counter()
        try:
            result = challenger.predict(merge([i.columns for i in items]))
        except Exception as exc:  # noqa: BLE001 - e.g. a challenger that needs another column
            log.warning("shadow: %s v%s could not score: %s", model, challenger.version, str(exc)[:300])
            for _item in items:
                self.on_skipped(model, "error")
            return
        total = sum(i.rows for i in items)
        per_row_ms = (time.perf_counter() - started) * 1000 / max(total, 1)
        outputs: np.ndarray = result.outputs
        start = 0
        for item in items:
            end = start + item.rows
            if self.writer is not None:
                served = Served(item.request_id, item.ts, model, SHADOW, challenger.version, item.columns,
                                outputs[start:end].tolist(), per_row_ms * item.rows, item.requested_by)
                if self.writer.offer(served) is None:  # no room: the champion's rows come first
                    self.on_skipped(model, "log_full")
            start = end
        self.on_scored(model, total)


def _lowest_priority() -> None:
    """Nice the calling thread to 19 (Linux: a thread is a task with its own nice value), so the CPU goes
    to the request threads first; elsewhere, and where it is not allowed, the idle check alone holds."""
    if not sys.platform.startswith("linux"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except OSError as exc:
        log.info("shadow: could not lower the worker's priority (%s)", exc)
