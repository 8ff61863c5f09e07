"""Buttons that ask before they act (promote, roll back, approve): a click shows the question with
"Yes, …" and "Cancel"; only "Yes" acts. Inline, not a dialog, so AppTest and the browser drive it alike."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ui.components import message


def asked(label: str, *, key: str, question: str, yes: str, where: Any = None, **button: Any) -> bool:
    """Draw button ``label`` (in ``where``, default the page); True once the user confirmed with ``yes``.

    ``key`` names what is asked (include the object, e.g. the version: a changed selection drops the question).
    """
    pending = f"_confirm-{key}"
    if (where or st).button(label, key=key, **button):
        for other in [k for k in st.session_state if str(k).startswith("_confirm-")]:
            del st.session_state[other]  # one question at a time
        st.session_state[pending] = True
    if not st.session_state.get(pending):
        return False
    with st.container(border=True, key=f"confirm-box-{key}"):
        st.warning(message(question), icon=":material/help:")
        left, right, _ = st.columns([1, 1, 4])
        if left.button(yes, type="primary", key=f"{key}-yes"):
            del st.session_state[pending]
            return True
        if right.button("Cancel", key=f"{key}-cancel"):
            del st.session_state[pending]
            st.rerun()
    return False
