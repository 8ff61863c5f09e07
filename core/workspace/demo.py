"""The deterministic synthetic demo data a newcomer sees on first start (a churn table)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def churn_frame(rows: int = 5000, seed: int = 7) -> pd.DataFrame:
    """Customers with numeric and categorical columns, some missing values, a sensitive
    attribute (``gender``) and a binary target (``churn``). Same seed, same bytes."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 73, rows)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], rows, p=[0.5, 0.3, 0.2])
    payment = rng.choice(["card", "bank-transfer", "electronic-check", "mailed-check"], rows)
    region = rng.choice(["north", "south", "east", "west"], rows)
    gender = rng.choice(["female", "male"], rows)
    senior = rng.random(rows) < 0.16
    monthly = np.round(rng.normal(65, 20, rows).clip(18, 120), 2)
    support_calls = rng.poisson(1.5, rows)
    age = rng.integers(18, 80, rows)
    score = (
        -0.09 * tenure
        + 0.045 * (monthly - 65)
        + 0.75 * support_calls
        + np.select([contract == "month-to-month", contract == "one-year"], [2.2, -0.4], -2.5)
        + 1.0 * (payment == "electronic-check")
        + 0.3 * senior
        + rng.normal(0, 0.6, rows)
    )
    churn = (score > np.quantile(score, 0.7)).astype(int)
    frame = pd.DataFrame({
        "customer_age": age,
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": np.round(monthly * tenure, 2),
        "support_calls": support_calls,
        "contract": contract,
        "payment_method": payment,
        "region": region,
        "gender": gender,
        "senior": senior,
        "churn": churn,
    })
    for column, share in {"monthly_charges": 0.03, "payment_method": 0.02, "customer_age": 0.01}.items():
        frame.loc[rng.random(rows) < share, column] = None
    return frame
