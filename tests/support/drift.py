"""Drift-check data for the monitoring tests: a churn-like batch that has clearly drifted."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.support.training import small_churn


def shifted(rows: int = 800, seed: int = 9) -> pd.DataFrame:
    """Churn-like rows with monthly charges 1.5 σ higher and mostly month-to-month contracts."""
    frame = small_churn(rows, seed=seed)
    rng = np.random.default_rng(seed)
    frame["monthly_charges"] = frame["monthly_charges"] + 30
    frame["total_charges"] = frame["total_charges"] * 2
    frame["tenure_months"] = rng.integers(1, 12, rows)
    frame["contract"] = np.where(rng.random(rows) < 0.9, "month-to-month", "one-year")
    frame["support_calls"] = rng.poisson(5, rows)
    frame["payment_method"] = "electronic-check"
    return frame
