"""Cached reads for the serving panel (the prediction log written by the API)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.serving import traffic as serving_panel
from ui import resources

TRAFFIC_COLUMNS = ["model", "served version", "requests/s", "p50 ms", "p95 ms", "model error rate",
                   "client error rate", "requests", "last"]
RECENT_COLUMNS = ["time", "model", "version", "request", "output", "latency ms", "inputs"]


@st.cache_data(ttl=5)
def traffic(window_minutes: int = 15) -> pd.DataFrame:
    with resources.session_factory()() as session:
        rows = serving_panel.traffic(session, store=resources.settings().data_store,
                                     window_minutes=window_minutes)
    return pd.DataFrame([{"model": t.model, "served version": t.served_version,
                          "requests/s": t.requests_per_second, "p50 ms": t.p50_ms, "p95 ms": t.p95_ms,
                          "model error rate": t.error_rate, "client error rate": t.client_error_rate,
                          "requests": t.requests, "last": t.last_prediction_at}
                         for t in rows], columns=TRAFFIC_COLUMNS)


@st.cache_data(ttl=5)
def recent_predictions(limit: int = 15) -> pd.DataFrame:
    with resources.session_factory()() as session:
        rows = serving_panel.recent_predictions(session, store=resources.settings().data_store, limit=limit)
    return pd.DataFrame([{"time": p.ts, "model": p.model, "version": p.version, "request": p.request_id[:12],
                          "output": str(p.output), "latency ms": p.latency_ms,
                          "inputs": ", ".join(f"{k}={v}" for k, v in p.inputs.items())[:200]} for p in rows],
                        columns=RECENT_COLUMNS)
