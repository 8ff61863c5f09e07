"""A local Dask cluster of two worker processes for the tests that send work to one (searches, batch scoring)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def local_cluster() -> Iterator[str]:
    """Two single-threaded worker processes on 127.0.0.1; yields the scheduler's address."""
    from dask.distributed import LocalCluster

    # Worker processes are spawned, and spawning re-imports ``__main__`` by its path: in a suite where
    # Streamlit's AppTest has run a page script as ``__main__``, the workers would run that page.
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          host="127.0.0.1") as cluster:
            yield cluster.scheduler_address
    finally:
        sys.modules["__main__"] = main
