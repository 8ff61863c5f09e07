"""The demo workspace a newcomer sees: a deterministic synthetic churn table, a trained and promoted
model, a day of logged predictions with feedback and one drift check over them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from core.actors import system_actor
from core.promotion import moves
from core.promotion.registration import train
from core.registry import state
from core.settings import Settings


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


DEMO_SPEC = {"dataset": "churn", "target": "churn", "model": "random_forest", "sensitive": "gender",
             "model_name": "churn", "seed": 42}


def seed_model(factory: sessionmaker[Session], settings: Settings) -> dict[str, Any]:
    """Train and promote the demo model once; later calls leave an existing churn model alone."""
    with factory() as session:
        current = state.current(session, model="churn")
    if current:
        return {"model": "churn", "aliases": current, "trained": False}
    result = train(factory, settings, DEMO_SPEC, actor=system_actor("demo"), log=lambda line: None)
    version = result["model_version"]
    moves.promote(factory, settings, actor=system_actor("demo"), model="churn", version=version,
                  reason="demo workspace")
    return {"model": "churn", "aliases": {"champion": version}, "trained": True,
            "f1": round(result["metrics"]["f1"], 4)}


def seed_traffic(factory: sessionmaker[Session], settings: Settings, *, version: int, hours: int = 24,
                 per_hour: int = 30) -> dict[str, Any]:
    """A day of logged predictions with feedback for the demo model, and one drift check over it,
    so a newcomer's Overview and Drift pages have something to show. The last third of the day
    brings pricier plans (monthly charges about half a standard deviation higher)."""

    from core.monitoring import checks
    from core.platform.database import transaction
    from core.platform.prediction_log.parquet import new_request_id
    from core.platform.prediction_log.writer import Served, insert_served
    from core.serving import cache
    from core.serving.feedback import record_feedback
    from db.models import utcnow

    actor = system_actor("demo")
    loaded = cache.load_version(settings.registry, name="churn", alias="champion", version=version)
    assert loaded.schema is not None  # the demo model is trained here, with a signature
    frame = churn_frame(hours * per_hour, seed=21)
    labels = frame.pop("churn").tolist()
    late = frame.index >= len(frame) * 2 // 3
    frame.loc[late, "monthly_charges"] += 10
    frame.loc[late, "total_charges"] = (frame.loc[late, "monthly_charges"] * frame.loc[late, "tenure_months"]).round(2)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    now, requests = utcnow(), []
    for hour in range(hours):
        part = slice(hour * per_hour, (hour + 1) * per_hour)
        columns = loaded.schema.coerce(records[part]).columns
        outputs = loaded.predict(columns).outputs.tolist()
        at = now - timedelta(hours=hours - hour - 0.5)
        requests.append(Served(new_request_id(at), at, "churn", "champion", version, columns, outputs, 8.0))
    with transaction(factory) as session:
        insert_served(session, requests)
    for hour, request in enumerate(requests):
        if hour % 4 != 3:  # ground truth arrives for three requests in four
            with transaction(factory) as session:
                record_feedback(session, actor=actor, model="churn", request_id=request.request_id,
                                labels=labels[hour * per_hour:(hour + 1) * per_hour],
                                store=settings.data_store)
    check = checks.run_check(factory, settings, actor=actor, model="churn", source="window", hours=hours + 1,
                                 reason="demo workspace")
    return {"predictions": len(records), "drift_check": check.id, "drifted": check.drifted}
