"""An approver's inbox: requests waiting for a decision, on the Overview, with a count in the sidebar.

Each request links to its version on the Registry (``/registry?model=…&version=…&request=…``), where
Approve and Reject are (Approve asks for confirmation there).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.actors import Actor
from ui import resources
from ui.components import plain
from ui.times import when
from ui.url_state import link


@st.cache_data(ttl=10)
def waiting(who: Actor) -> pd.DataFrame:
    """The pending promotion and rollback requests ``who`` may decide (core's ``approvals.pending_for``: not
    their own request, not a version they trained, not one they already decided), oldest first."""
    from core.promotion import approvals

    with resources.session_factory()() as session:
        rows = [{"request": r.id, "model": r.model, "version": r.version, "kind": r.kind,
                 "requested by": r.requested_by, "reason": r.reason, "since": r.created_at,
                 "approvals": r.approvals} for r in approvals.pending_for(session, actor=who)]
    return pd.DataFrame(rows, columns=["request", "model", "version", "kind", "requested by", "reason", "since",
                                       "approvals"])


def sidebar_count(who: Actor) -> None:
    """Approvers (and admins) see how many requests wait, linked to the inbox on the Overview."""
    if not who.at_least("approver"):
        return
    count = len(waiting(who))
    if count:
        link(st.sidebar, "app_pages/overview.py", f"Approvals waiting: {count}", icon=":material/approval:",
             help="requests waiting for an approver (Overview)")


def panel(who: Actor) -> None:
    """The Overview's inbox for approvers: one line per waiting request, each a link to decide it."""
    if not who.at_least("approver"):
        return
    requests = waiting(who)
    st.subheader(f"Waiting for approval ({len(requests)})")
    if requests.empty:
        st.caption("No request waits for an approver.")
        return
    for r in requests.to_dict("records"):
        asks = (f"roll {r['model']} back from v{r['version']}" if r["kind"] == "rollback"
                else f"promote {r['model']} v{r['version']} to production")
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.markdown(f"**Request {r['request']}**: {plain(r['requested by'])} asks to {plain(asks)}"
                      + (f" — {plain(r['reason'])}" if r["reason"] else "") + f" · {plain(when(r['since']))}")
        link(right, "app_pages/registry.py", f"Decide request {r['request']}", icon=":material/gavel:",
             params={"model": r["model"], "version": str(r["version"]), "request": str(r["request"])})
