"""Adaptive micro-batching: concurrent small requests to one model are predicted together in one call.

A single-record predict of a pipeline costs nearly as much as a 50-record one (per-call overhead
of the column transformer and every tree), so requests arriving together are merged: the first
waits a short window for company, then one call predicts them all; while that call runs the next
batch gathers by itself (as BentoML's adaptive batching does). A batch also waits, up to as long as the
model's last micro-batch call took (at most ``FOLLOW_MAX``), while requests to the same model are still in
flight elsewhere (being parsed, or answering the previous batch: the log's group commit): clients that
send one request after another come back within milliseconds, and without that wait a closed loop of
N clients settles into two half batches that each pay a whole model call, twice the CPU per record.
Whoever is in flight and not queued either arrives or finishes, so the wait ends early under any
load, and never exceeds one model call, the cost it saves. Large requests skip the queue and
can be split across several threads instead (``split``): on a machine whose other CPUs are
idle that shortens them; on a busy one it does not, so it is off by default.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from core.errors import InvalidInput
from core.serving.cache import LoadedModel, Prediction
from core.serving.signature import Columns, merge, split_rows

MIN_SPLIT_ROWS = 2000  # below this a batch is not worth splitting across threads
FOLLOW_MAX = 0.025  # seconds a batch waits at most for requests still in flight (see the module)
FOLLOW_POLL = 0.001


@dataclass
class _Item:
    columns: Columns
    rows: int
    probabilities: bool
    future: asyncio.Future


@dataclass
class _Lane:
    model: LoadedModel
    pending: list[_Item] = field(default_factory=list)
    running: bool = False


class Batcher:
    """Predicts for many concurrent requests; one lane (queue) per loaded model version."""

    def __init__(self, *, max_batch: int, window: float, split: int = 1, threads: int = 0,
                 follow: float = FOLLOW_MAX) -> None:
        """``split``: how many threads a large request is divided across; ``threads``: the predict
        threads (default one per CPU, at least ``split``), shared by every model's lane; ``follow``: the
        longest a batch waits for requests in flight (see the module)."""
        self.max_batch, self.window, self.split, self.follow = max_batch, window, max(split, 1), follow
        self.threads = max(threads or os.cpu_count() or 1, self.split)
        self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix="leanops-predict")
        self._lanes: dict[int, _Lane] = {}
        self.on_batch: Callable[[int], None] = lambda rows: None  # e.g. a batch-size histogram
        # requests to a model in flight now (the entry counts them: parsed, predicting or logging)
        self.in_flight: Callable[[LoadedModel], int] = lambda model: 0

    def close(self) -> None:
        """Wait for running predictions, then stop the threads (a later predict starts new ones)."""
        self.executor.shutdown(wait=True)
        self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix="leanops-predict")

    async def predict(self, model: LoadedModel, columns: Columns, rows: int, *, probabilities: bool
                      ) -> Prediction:
        if rows >= self.max_batch:
            return await self._direct(model, columns, rows, probabilities)
        lane = self._lanes.get(id(model))
        if lane is None:
            lane = self._lanes[id(model)] = _Lane(model)
        item = _Item(columns, rows, probabilities, asyncio.get_running_loop().create_future())
        lane.pending.append(item)
        if not lane.running:
            lane.running = True
            asyncio.get_running_loop().create_task(self._drain(lane))
        return await item.future

    async def _direct(self, model: LoadedModel, columns: Columns, rows: int, probabilities: bool) -> Prediction:
        loop = asyncio.get_running_loop()
        pieces = max(1, min(self.split, rows // MIN_SPLIT_ROWS))
        parts = split_rows(columns, rows, pieces) if pieces > 1 else [columns]
        self.on_batch(rows)
        results = await asyncio.gather(*[loop.run_in_executor(
            self.executor, partial(model.predict, part, probabilities=probabilities)) for part in parts])
        if len(results) == 1:
            return results[0]
        proba = np.concatenate([r.probabilities for r in results]) if probabilities else None
        return Prediction(np.concatenate([r.outputs for r in results]), proba)

    async def _drain(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        woke = True
        try:
            while lane.pending:
                # Only a lane that was idle waits for company; while a call runs, the next batch
                # gathers by itself and goes as soon as the call returns.
                if woke and self.window > 0 and sum(i.rows for i in lane.pending) < self.max_batch:
                    await asyncio.sleep(self.window)
                woke = False
                await self._follow(lane)
                batch: list[_Item] = []
                rows = 0
                while lane.pending and (not batch or rows + lane.pending[0].rows <= self.max_batch):
                    item = lane.pending.pop(0)
                    batch.append(item)
                    rows += item.rows
                batch = [i for i in batch if not i.future.done()]  # a caller that went away
                if not batch:
                    continue
                self.on_batch(rows)
                want = any(i.probabilities for i in batch)
                called = loop.time()
                try:
                    result = await loop.run_in_executor(self.executor, partial(
                        lane.model.predict, merge([i.columns for i in batch]), probabilities=want))
                    lane.model.last_call = loop.time() - called  # kept with the model: lanes come and go
                except InvalidInput as exc:
                    if len(batch) == 1:
                        _fail(batch[0], exc)
                    else:  # one bad record must not fail its neighbours: predict them one by one
                        for item in batch:
                            await self._alone(lane.model, item)
                    continue
                except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                    for item in batch:
                        _fail(item, exc)
                    continue
                start = 0
                for item in batch:
                    end = start + item.rows
                    proba = None
                    if item.probabilities:
                        assert result.probabilities is not None  # asked for (want), so predict gave them
                        proba = result.probabilities[start:end]
                    if not item.future.done():
                        item.future.set_result(Prediction(result.outputs[start:end], proba))
                    start = end
        finally:
            lane.running = False
            if not lane.pending and self._lanes.get(id(lane.model)) is lane:
                del self._lanes[id(lane.model)]  # lets an unloaded model version be freed

    async def _follow(self, lane: _Lane) -> None:
        """Wait (see the module) while requests to this model are in flight but not queued here."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(lane.model.last_call, self.follow)
        while (len(lane.pending) < self.in_flight(lane.model) and loop.time() < deadline
               and sum(i.rows for i in lane.pending) < self.max_batch):
            await asyncio.sleep(FOLLOW_POLL)

    async def _alone(self, model: LoadedModel, item: _Item) -> None:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self.executor, partial(
                model.predict, item.columns, probabilities=item.probabilities))
        except Exception as exc:  # noqa: BLE001
            _fail(item, exc)
            return
        if not item.future.done():
            item.future.set_result(result)


def _fail(item: _Item, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(exc)
