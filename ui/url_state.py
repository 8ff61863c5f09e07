"""A page's selection in its address (``/registry?model=loans&version=2``), so a reload, a new tab or a
pasted link shows the same thing, also after the login (which keeps the query: ui/auth_routes.py ``safe_next``).

A page calls ``seed`` before drawing a selection widget and ``keep`` after it. ``seed`` takes the
address's value when it names one of the options and the address changed since this tab last wrote it
(a pasted link, a link from another page, a first load); otherwise the widget keeps what the user picked.
Streamlit's own ``bind="query-params"`` writes the *shown* label (``version=v2``), not the value, hence this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import streamlit as st


def seed(key: str, param: str, options: Sequence[Any], *, cast: Callable[[str], Any] = str) -> Any:
    """Before widget ``key`` is drawn: put ``?param=``'s value in its state when valid; returns that value
    (or None when the address says nothing new)."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]  # a choice left from another model or page of options: the widget's default
    raw = st.query_params.get(param)
    mark = f"_url-{param}"
    if raw is None or (raw == st.session_state.get(mark) and key in st.session_state):
        return None
    st.session_state[mark] = raw
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        return None
    if value not in options:
        return None
    st.session_state[key] = value
    return value


def wanted(param: str, *, cast: Callable[[str], Any] = str) -> Any:
    """``?param=``'s value as ``cast`` makes it, or None (absent or not castable)."""
    raw = st.query_params.get(param)
    if raw is None:
        return None
    try:
        return cast(raw)
    except (TypeError, ValueError):
        return None


def keep(param: str, value: object | None) -> None:
    """After the widget: write its value to the address (None removes the parameter)."""
    text = None if value is None else str(value)
    if text is None:
        if param in st.query_params:
            del st.query_params[param]
    elif st.query_params.get(param) != text:
        st.query_params[param] = text
    st.session_state[f"_url-{param}"] = text


def href(path: str, **params: object) -> str:
    """A link to a page of this dashboard with its selection, e.g. ``href("registry", model="loans", version=2)``."""
    shown = {k: str(v) for k, v in params.items() if v is not None}
    return f"/{path.strip('/')}" + (f"?{urlencode(shown)}" if shown else "")


def seed_many(key: str, param: str, options: Sequence[str]) -> None:
    """``seed`` for a multiselect: ``?param=a,b`` picks the named options it knows."""
    raw = st.query_params.get(param)
    mark = f"_url-{param}"
    if raw is None or (raw == st.session_state.get(mark) and key in st.session_state):
        return
    st.session_state[mark] = raw
    st.session_state[key] = [v for v in raw.split(",") if v in options]


def link(where: Any, page: str, label: str, params: dict[str, str] | None = None, *, icon: str | None = None,
         help: str | None = None) -> None:
    """A link to ``page`` (an app_pages file) showing ``params``; a plain Markdown link when the page file runs
    alone (AppTest of one page: no navigation to resolve the page in)."""
    from pathlib import Path

    from streamlit.errors import StreamlitAPIException

    from ui.components import plain

    try:
        where.page_link(page, label=label, query_params=params or None, icon=icon, help=help)
    except StreamlitAPIException:
        where.markdown(f"[{plain(label)}]({href(Path(page).stem, **(params or {}))})")
