"""Prediction lookup by request id: what the model was given, what it answered, and that version's report."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.actors import Actor
from core.platform.prediction_log import reads
from core.serving.feedback import feedback_for
from ui import batch_view, registry_view, resources
from ui.components import code, message, plain


def prediction_lookup(who: Actor) -> None:
    """A request id in, its records (input, output, version, time, feedback) and the version's reports out."""
    request_id = st.text_input("Request id", key="lookup-request-id",
                               help="the request_id the predict API returned").strip()
    if not request_id:
        return
    with resources.session_factory()() as s:
        found = reads.by_request(s, request_id=request_id, store=resources.settings().data_store)
        labels = feedback_for(s, request_id=request_id) if found else []
    if not found:
        st.info(message(f"No prediction with request id {request_id!r} (or it is older than the retention period)."))
        return
    first = found[0]
    st.markdown(f"**{plain(first.model)}** version **{first.version}** (alias {code(first.alias)}) answered at "
                f"{first.ts:%Y-%m-%d %H:%M:%S} UTC · {len(found)} record(s)")
    st.dataframe(pd.DataFrame([{"record": p.record_index, "output": str(p.output),
                                "feedback": str(labels[i]) if i < len(labels) and labels[i] is not None else "",
                                "input": p.inputs, "input sha256": p.input_hash, "latency ms": p.latency_ms}
                               for i, p in enumerate(found)]), hide_index=True, width="stretch")
    batch_view.waterfall(request_id, [p.record_index for p in found][:1000])  # why: the per-column contributions
    for model, version in sorted({(p.model, p.version) for p in found}):
        st.caption(f"Compliance report of {plain(model)} v{version}, the version that answered")
        registry_view.report_downloads(model, version, who)
