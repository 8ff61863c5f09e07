"""Overview page: the serving panel shows what the prediction log says (versions, rates, latency, errors)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.platform.prediction_log.writer import LogWriter, Refused, Served
from db.models import utcnow


def test_serving_panel_empty_then_with_traffic(open_page, factory) -> None:
    at = open_page("app_pages/overview.py", role="viewer")
    assert not at.exception
    assert any(s.value == "Serving" for s in at.subheader)
    assert any("No predictions in the last 15 minutes" in c.value for c in at.caption)

    writer = LogWriter(factory, capacity=1000)
    for i in range(3):
        writer.offer(Served(f"req{i}", utcnow(), "churn", "champion", 4,
                            {"tenure": np.array([12, 3]), "plan": np.array(["basic", "pro"], dtype=object)},
                            [0, 1], 5.0 + i))
    writer.offer(Refused("bad", utcnow(), "churn", "champion", 422, "record 0 has no column 'tenure'"))
    writer.start()
    writer.stop()
    st.cache_data.clear()  # the panel's reads are cached for 5 s
    at = open_page("app_pages/overview.py", role="viewer")
    assert not at.exception
    traffic = next(df.value for df in at.dataframe if "served version" in df.value.columns)
    row = traffic.iloc[0]
    # a 422 is the client's mistake, not the model's: counted apart
    assert (row["model"], row["served version"], row["requests"]) == ("churn", 4, 3)
    assert (row["model error rate"], row["client error rate"]) == (0.0, 0.25)
    assert row["p50 ms"] == 6.0
    recent = next(df.value for df in at.dataframe if "latency ms" in df.value.columns)
    assert len(recent) == 6 and "tenure=" in recent.iloc[0]["inputs"]


def test_traffic_older_than_15_minutes_is_not_called_none(open_page, factory) -> None:
    """The demo logs 720 predictions spread over the last 24 h, the newest 30 min ago: the Overview said
    "No predictions in the last 15 minutes" and nothing else (issue 19)."""
    from datetime import timedelta

    writer = LogWriter(factory, capacity=1000)
    for i in range(4):
        writer.offer(Served(f"old{i}", utcnow() - timedelta(minutes=30 + 60 * i), "churn", "champion", 1,
                            {"tenure": np.array([12]), "plan": np.array(["basic"], dtype=object)}, [0], 5.0))
    writer.start()
    writer.stop()
    at = open_page("app_pages/overview.py", role="viewer")
    assert not at.exception
    note = next(c.value for c in at.caption if "No predictions in the last 15 minutes" in c.value)
    assert "4 request(s) in the last 24 hours, the latest 30 min ago" in note
    traffic = next(df.value for df in at.dataframe if "served version" in df.value.columns)
    assert traffic.iloc[0]["requests"] == 4
