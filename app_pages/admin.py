"""Admin: users, roles, passwords, API tokens, policies, alert channels."""

import streamlit as st

from core.accounts import auth, sessions
from core.actors import ROLES
from ui import alerts_view, queries, resources, session
from ui.components import act, code_area, form_key, form_notice, message, reset_form

who = session.actor()
st.title("Admin")
users_tab, tokens_tab, sessions_tab, policy_tab, alerts_tab = st.tabs(
    ["Users", "API tokens", "Sessions", "Policies", "Alerts"])

with users_tab:
    st.dataframe(queries.users(), hide_index=True, width="stretch")
    form_notice("add-user")
    with st.form(form_key("add-user")):  # keeps what was typed on an error; empties only on success
        st.markdown("**Add a user**")
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("New username")
        role = c2.selectbox("Role", ROLES, index=0)
        password = c3.text_input("Initial password", type="password")
        if st.form_submit_button("Add user"):
            if act(lambda s: auth.create_user(s, actor=who, username=name.strip(), role=role, password=password)):
                reset_form("add-user", notice=f"User {name.strip()} ({role}) added.")

    names = queries.users()["username"].tolist()
    st.markdown("**Change a user**")
    target = st.selectbox("User", names, index=None, placeholder="pick a user")
    if target:
        row = queries.users().set_index("username").loc[target]
        c1, c2, c3 = st.columns(3)
        new_role = c1.selectbox("New role", ROLES, index=ROLES.index(row["role"]))
        if c1.button("Change role"):
            act(lambda s: auth.set_role(s, actor=who, username=target, role=new_role),
                success=f"{target} is now {new_role}")
        new_password = c2.text_input("New password", type="password")
        if c2.button("Reset password"):
            act(lambda s: auth.reset_password(s, actor=who, username=target, password=new_password),
                success=f"Password of {target} reset")
        label = "Deactivate" if row["active"] else "Activate"
        if c3.button(label):
            act(lambda s: auth.set_active(s, actor=who, username=target, active=not row["active"]),
                success=f"{target}: {label.lower()}d")
            st.rerun()

with tokens_tab:
    # The one-time secret stays in the session until its reader dismisses it: popping it on the run that
    # shows it lost it whenever another rerun interrupted that run before it reached the browser.
    if made_token := st.session_state.get("new_token"):
        made_name, plain = made_token
        st.success(message(f"Token {made_name} created. Copy it now (the copy button is at the right of the box): "
                           "it cannot be shown again once you hide it."), icon=":material/key:")
        st.code(plain, language="text")
        if st.button("I have copied it, hide the token", key="hide-token"):
            del st.session_state["new_token"]
            st.rerun()
    with st.form(form_key("new-token")):  # keeps what was typed on an error; empties only on success
        c1, c2, c3, c4 = st.columns(4)
        token_name = c1.text_input("Token name")
        token_role = c2.selectbox("Token role", ROLES, index=0)
        owner = c3.selectbox("Owner", queries.users()["username"].tolist(), index=None, placeholder="you")
        days = c4.number_input("Expires after (days, 0 = never)", min_value=0, max_value=3650, value=auth.TOKEN_DAYS)
        if st.form_submit_button("Create token"):
            made = act(lambda s: auth.create_token(s, actor=who, role=token_role, name=token_name.strip(),
                                                   owner=owner, expires_days=int(days)))
            if made:
                st.session_state["new_token"] = (made[1].name, made[0])
                reset_form("new-token")
    tokens = queries.tokens()
    st.caption("A token acts for its owner (never above the owner's role) and stops with the owner's deactivation; "
               "an empty expiry means never. Last use is recorded at most once a minute.")
    st.dataframe(tokens, hide_index=True, width="stretch")
    live = tokens[tokens["revoked"].isna()]["id"].tolist() if not tokens.empty else []
    revoke = st.selectbox("Token to revoke", live, index=None, placeholder="pick a token id")
    if revoke is not None and st.button("Revoke token"):
        act(lambda s: auth.revoke_token(s, actor=who, token_id=int(revoke)), success=f"Token {revoke} revoked")
        st.rerun()

with sessions_tab:
    st.caption("Signed-in browsers. A password reset, a role change or a deactivation ends a user's sessions "
               "at once; revoke one here for a lost or shared machine.")
    live = session.live_sessions()
    st.dataframe(live, hide_index=True, width="stretch")
    pick = st.selectbox("Session to revoke", [row["id"] for row in live], index=None, placeholder="pick a session id",
                        format_func=lambda i: next(f"{i} · {r['user']} · {r['client']}" for r in live if r["id"] == i))
    if pick is not None and st.button("Revoke session"):
        if act(lambda s: sessions.revoke(s, actor=who, session_id=int(pick)), success=f"Session {pick} ended"):
            st.rerun()

with policy_tab:
    policies = resources.settings().policies
    st.caption("Promotion gates for every model (`default`) and per-model overrides (`models`). "
               "Each saved change is validated and audited with its diff.")
    text = code_area("policies.yaml", policies.text(), height=520, key="policy-text")
    if st.button("Save policy"):
        diff = act(lambda s: policies.save(s, actor=who, text=text))
        if diff == "":
            st.info("No change.")
        elif diff:
            st.success("Policy saved.")
            st.code(diff, language="diff")

with alerts_tab:
    alerts_view.admin_tab(who)
