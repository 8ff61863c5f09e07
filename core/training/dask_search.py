"""Hyperparameter search on a Dask cluster (``LEANOPS_DASK_ADDRESS``) through joblib's Dask backend.

Each candidate's cross-validation is one task; the cluster runs them side by side and the results
come back in candidate order, so progress is reported as they finish and the table (and the best
parameters) are the same as a local search's: the pipelines are seeded, only the place they run changes.
Workers need the same scikit-learn as this process, not LeanOps itself (the tasks are plain sklearn).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.errors import StoreUnavailable

CONNECT_TIMEOUT_S = 10


def cross_validate_all(pipelines: Sequence[Any], X: pd.DataFrame, y: pd.Series, *, cv: Any, scoring: str,
                       address: str) -> Iterator[np.ndarray]:
    """Yield each pipeline's cross-validation scores, in order, computed on the cluster at ``address``.

    Raises:
        StoreUnavailable: the Dask scheduler cannot be reached.
    """
    from dask.distributed import Client
    from joblib import parallel_backend
    from sklearn.model_selection import cross_val_score
    from sklearn.utils.parallel import Parallel, delayed  # carry sklearn's config into the tasks

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise StoreUnavailable(f"the Dask scheduler at {address} (LEANOPS_DASK_ADDRESS) is unreachable: "
                               f"{exc}; start the cluster or unset the variable to search in this process") from None
    with client, parallel_backend("dask", client=client):
        yield from Parallel(n_jobs=-1, return_as="generator")(
            delayed(cross_val_score)(pipeline, X, y, cv=cv, scoring=scoring, n_jobs=1, error_score="raise")
            for pipeline in pipelines)
