"""The model inventory as the Inventory page and the Overview show it: cached rows, the table as Markdown
(links to each model, an overdue review in red), and the Overview's "Reviews due" section."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import streamlit as st

from core.compliance import inventory
from core.compliance.inventory import InventoryRow
from ui import resources
from ui.components import plain


@st.cache_data(ttl=10)
def rows(search: str = "", sort: str = "model") -> list[InventoryRow]:
    with resources.session_factory()() as session:
        return inventory.list_models(session, resources.settings(), search=search, sort=sort)


@st.cache_data(ttl=10)
def due(within_days: int = 30) -> list[InventoryRow]:
    with resources.session_factory()() as session:
        return inventory.reviews_due(session, resources.settings(), within_days=within_days)


def _day(iso: str | None) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d") if iso else "—"


def model_link(model: str) -> str:
    return f"[{plain(model)}](/registry?model={quote(model, safe='')})"


def review_cell(row: InventoryRow) -> str:
    """The next review: red words when overdue (a verdict in words, not only a colour)."""
    if row.next_review_due is None:
        return "none due" if row.review_interval_months is None or row.champion is None else "—"
    if row.overdue:
        blocks = ", blocks promotion" if row.review_blocks_promotion else ""
        return f":red[**OVERDUE since {_day(row.next_review_due)}**{blocks}]"
    return f"due {_day(row.next_review_due)}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(found: list[InventoryRow]) -> str:
    head = ("| model | owner | risk tier | status | last validation | last review | next review | open alerts "
            "| tags |\n|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in found:
        validation = (f"{_day(r.last_validation)} {'passed' if r.last_validation_passed else 'failed'}"
                      if r.last_validation else "none")
        review = (f"{_day(r.last_review)} {r.last_review_outcome} by {plain(r.last_reviewer)}" if r.last_review
                  else "never")
        lines.append("| " + " | ".join(_cell(c) for c in (
            model_link(r.model), plain(r.owner) if r.owner else ":orange[no owner]", r.risk_tier, plain(r.status),
            validation, review, review_cell(r), str(r.open_alerts), plain(", ".join(r.tags)) or "—")) + " |")
    return head + "\n".join(lines)


def reviews_due_section() -> None:
    """The Overview's short list: models whose periodic review is overdue or due within 30 days."""
    found = due()
    if not found:
        return
    st.subheader("Reviews due")
    for r in found:
        st.markdown(f"{model_link(r.model)} ({r.risk_tier} risk, owner {plain(r.owner) or 'none'}): "
                    f"{review_cell(r)} · [record the review](/inventory?model={quote(r.model, safe='')})")
