"""Micro-batching with a real model: concurrent requests share one call, and nobody gets a neighbour's answer."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import numpy as np
import pytest

from core.errors import InvalidInput
from core.serving.batching import MIN_SPLIT_ROWS, Batcher
from core.serving.cache import LoadedModel, load_version
from core.serving.signature import Columns
from tests.support import mlflow_models


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    store = mlflow_models.store()
    name = store.fresh_name()
    store.register("rf20", name)
    return load_version(store.registry, name=name, alias="champion", version=1)


def columns(model: LoadedModel, rows: list[dict]) -> Columns:
    return model.schema.coerce(rows).columns


def test_concurrent_single_records_are_predicted_together(model: LoadedModel) -> None:
    rows = mlflow_models.records(40)
    sizes: list[int] = []
    batcher = Batcher(max_batch=64, window=0.005, threads=1)
    batcher.on_batch = sizes.append

    async def run() -> list:
        return await asyncio.gather(*[batcher.predict(model, columns(model, [r]), 1, probabilities=True)
                                      for r in rows])

    try:
        results = asyncio.run(run())
    finally:
        batcher.close()
    assert sum(sizes) == 40 and len(sizes) < 5, sizes
    alone = model.predict(columns(model, rows), probabilities=True)
    assert [int(r.outputs[0]) for r in results] == alone.outputs.tolist()
    assert np.allclose(np.vstack([r.probabilities for r in results]), alone.probabilities)


def test_probabilities_only_for_those_who_asked(model: LoadedModel) -> None:
    rows = mlflow_models.records(2)
    batcher = Batcher(max_batch=64, window=0.005, threads=1)

    async def run() -> list:
        return await asyncio.gather(batcher.predict(model, columns(model, rows[:1]), 1, probabilities=True),
                                    batcher.predict(model, columns(model, rows[1:]), 1, probabilities=False))

    try:
        asked, not_asked = asyncio.run(run())
    finally:
        batcher.close()
    assert asked.probabilities.shape == (1, 2) and not_asked.probabilities is None


def test_a_record_the_model_rejects_fails_only_its_own_request(model: LoadedModel) -> None:
    rows = mlflow_models.records(3)
    bad = columns(model, [rows[1]])
    bad["monthly_charges"] = np.array([np.inf])  # sklearn refuses infinity
    batcher = Batcher(max_batch=64, window=0.01, threads=1)

    async def run() -> list:
        return await asyncio.gather(batcher.predict(model, columns(model, rows[:1]), 1, probabilities=False),
                                    batcher.predict(model, bad, 1, probabilities=False),
                                    batcher.predict(model, columns(model, rows[2:]), 1, probabilities=False),
                                    return_exceptions=True)

    try:
        first, failed, third = asyncio.run(run())
    finally:
        batcher.close()
    assert isinstance(failed, InvalidInput) and "could not predict" in str(failed)
    assert first.outputs.shape == (1,) and third.outputs.shape == (1,)


def test_large_requests_are_split_across_threads_with_the_same_answer(model: LoadedModel) -> None:
    rows = mlflow_models.records(2 * MIN_SPLIT_ROWS + 10)
    cols = columns(model, rows)
    sizes: list[int] = []
    batcher = Batcher(max_batch=64, window=0.005, split=2)
    batcher.on_batch = sizes.append
    try:
        result = asyncio.run(batcher.predict(model, cols, len(rows), probabilities=True))
    finally:
        batcher.close()
    alone = model.predict(cols, probabilities=True)
    assert sizes == [len(rows)]
    assert result.outputs.tolist() == alone.outputs.tolist()
    assert np.allclose(result.probabilities, alone.probabilities)


def test_a_batch_waits_for_a_request_still_in_flight(model: LoadedModel) -> None:
    """A closed loop of clients: a request still being answered (its log's group commit) comes back a
    moment later. The batch waits for it (bounded by the model's last call) rather than paying a whole
    model call for each half: before, the two went in two calls."""
    rows = mlflow_models.records(2)
    slow = dataclasses.replace(model, last_call=0.5)  # as if its last micro-batch call took 500 ms
    sizes: list[int] = []
    batcher = Batcher(max_batch=64, window=0.0, threads=1, follow=1.0)  # no idle window: only the in-flight wait
    batcher.on_batch = sizes.append
    batcher.in_flight = lambda m: 2 if m is slow else 0

    async def run() -> list:
        first = asyncio.create_task(batcher.predict(slow, columns(model, rows[:1]), 1, probabilities=False))
        await asyncio.sleep(0.05)  # the second client's previous answer is being logged
        second = await batcher.predict(slow, columns(model, rows[1:]), 1, probabilities=False)
        return [await first, second]

    try:
        first, second = asyncio.run(run())
    finally:
        batcher.close()
    assert sizes == [2]
    assert [int(first.outputs[0]), int(second.outputs[0])] == model.predict(columns(model, rows)).outputs.tolist()


def test_the_in_flight_wait_is_bounded_by_the_last_model_call(model: LoadedModel) -> None:
    """Nobody else comes (the other request in flight went elsewhere): the batch goes after at most the
    model's last call time, and the lane learns the real call time from it."""
    rows = mlflow_models.records(1)
    bounded = dataclasses.replace(model, last_call=0.02)
    batcher = Batcher(max_batch=64, window=0.0, threads=1, follow=1.0)
    batcher.in_flight = lambda m: 5

    async def run() -> float:
        started = time.perf_counter()
        await batcher.predict(bounded, columns(model, rows), 1, probabilities=False)
        return time.perf_counter() - started

    try:
        elapsed = asyncio.run(run())
    finally:
        batcher.close()
    assert elapsed < 0.02 + 2.0  # the wait (20 ms) plus one model call on a busy machine, never the 5 requests
    assert 0 < bounded.last_call < elapsed
