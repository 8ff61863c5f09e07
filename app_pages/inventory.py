"""Inventory: every model with its owner, risk tier, status, validation, reviews and open alerts; reviews and
inventory entries are recorded here."""

import streamlit as st

from core.accounts import auth
from core.compliance.inventory import SORTS
from core.registry import stewardship
from ui import inventory_view, resources, session
from ui.components import act, plain

who = session.actor()
st.title("Inventory")
st.caption("The model inventory an auditor asks for (SR 11-7): who owns each model, its risk tier from the policy "
           "(`risk_tier`) and what that tier requires, when it was last validated and reviewed, and when the next "
           "review is due. An overdue review of a high-risk model blocks its promotion (gate `review`).")

cols = st.columns([3, 2])
search = cols[0].text_input("Search", value=st.query_params.get("q", ""), placeholder="name, owner, tier, tag, use")
sort = cols[1].selectbox("Sort by", SORTS, format_func=lambda s: s.replace("_", " "))
if search:
    st.query_params["q"] = search
elif "q" in st.query_params:
    del st.query_params["q"]
found = inventory_view.rows(search, sort)
if not found:
    st.info("No model matches." if search else "No model yet: train one on Training.")
    st.stop()
st.markdown(inventory_view.table(found))

names = [r.model for r in found]
asked = st.query_params.get("model")
chosen = st.selectbox("Model", names, index=names.index(asked) if asked in names else 0, key="inv-model")
st.query_params["model"] = chosen
row = next(r for r in found if r.model == chosen)
st.markdown(f"**{plain(row.model)}**: {row.risk_tier} risk. This tier requires: {plain(row.tier_requires)}.")
left, right = st.columns(2)
left.markdown(f"**Intended use:** {plain(row.intended_use) or '— not filled in'}")
right.markdown(f"**Out-of-scope use:** {plain(row.out_of_scope_use) or '— not filled in'}")

with resources.session_factory()() as s:
    history = stewardship.reviews_of(s, model=chosen, limit=20)
    accounts = [u.username for u in auth.list_users(s) if u.active]
if history:
    st.markdown("**Reviews**")
    st.dataframe([{"when": r.ts, "by": r.reviewer, "outcome": r.outcome, "champion": r.version,
                   "next due": r.next_due, "notes": r.notes} for r in history], hide_index=True, width="stretch")

if who.at_least("approver"):
    with st.form("inv-review", clear_on_submit=True):
        st.markdown(f"**Record a review of {plain(chosen)}**")
        outcome = st.radio("Outcome", stewardship.OUTCOMES, horizontal=True)
        notes = st.text_area("Review notes", placeholder="what was looked at (performance, drift, fairness, "
                                                         "use) and why the outcome")
        if st.form_submit_button("Record review"):
            done = act(lambda s: stewardship.record_review(s, resources.settings(), actor=who, model=chosen,
                                                           outcome=outcome, notes=notes),
                       success=f"Review of {chosen} recorded")
            if done is not None:
                st.rerun()

if who.at_least("scientist"):
    with st.expander("Edit the inventory entry"):
        with st.form("inv-profile"):
            options = ["", *accounts]
            owner = st.selectbox("Owner", options, index=options.index(row.owner) if row.owner in options else 0,
                                 format_func=lambda u: u or "nobody")
            intended = st.text_area("Intended use", value=row.intended_use)
            out_of_scope = st.text_area("Out-of-scope use", value=row.out_of_scope_use)
            tags = st.text_input("Tags (comma-separated)", value=", ".join(row.tags))
            if st.form_submit_button("Save inventory entry"):
                if act(lambda s: stewardship.save_profile(s, actor=who, model=chosen, owner=owner,
                                                          intended_use=intended, out_of_scope_use=out_of_scope,
                                                          tags=tags.split(",")),
                       success=f"Inventory entry of {chosen} saved") is not None:
                    st.rerun()
