"""Hyperparameter search on a Dask cluster gives the same table and best parameters as a local search."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.errors import StoreUnavailable
from core.training import pipeline
from core.training.spec import parse_spec
from tests.support.dask_cluster import local_cluster
from tests.support.net import free_port
from tests.support.training import small_churn


@pytest.fixture(scope="module")
def cluster_address() -> Iterator[str]:
    with local_cluster() as address:
        yield address


def searched(model: str, method: str, candidates: int, address: str = "") -> tuple[dict, list[dict], list[str]]:
    spec = parse_spec({"dataset": "churn", "target": "churn", "model": model,
                                "search": {"method": method, "candidates": candidates, "folds": 3}})
    data = pipeline.prepare(small_churn(rows=240), spec, ref="churn:1")
    stages: list[str] = []
    best, table = pipeline.search(data, pipeline.split(data, spec), spec, dask_address=address,
                                  progress=lambda fraction, stage: stages.append(stage))
    return best, table, stages


# Cheap models keep the test quick; the grid path and the random path both go through the cluster.
@pytest.mark.parametrize(("model", "method", "candidates"), [("linear", "random", 6), ("dummy", "grid", 2)])
def test_dask_search_matches_the_local_search(cluster_address: str, model: str, method: str, candidates: int) -> None:
    from dask.distributed import Client, get_task_stream

    local_best, local_table, _ = searched(model, method, candidates)
    with Client(cluster_address, set_as_default=False) as client, get_task_stream(client=client) as stream:
        dask_best, dask_table, stages = searched(model, method, candidates, cluster_address)
    assert stream.data, "no task ran on the Dask cluster"
    assert dask_best == local_best
    assert [(r["candidate"], r["params"], r["rank"]) for r in dask_table] == \
           [(r["candidate"], r["params"], r["rank"]) for r in local_table]
    assert [r["mean"] for r in dask_table] == pytest.approx([r["mean"] for r in local_table], abs=1e-12)
    assert len(stages) == candidates and stages[-1].startswith(f"search: candidate {candidates} of {candidates}")


def test_unreachable_scheduler_is_a_clear_error() -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailable, match=rf"Dask scheduler at {address} \(LEANOPS_DASK_ADDRESS\) is unreachable"):
        searched("linear", "random", 2, address)
