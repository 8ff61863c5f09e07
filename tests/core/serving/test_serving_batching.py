"""Micro-batching with a real model: concurrent requests share one call, and nobody gets a neighbour's answer."""

from __future__ import annotations

import asyncio

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
    return load_version(store.uri, name=name, alias="champion", version=1)


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
