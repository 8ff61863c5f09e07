"""LeanOps dashboard entry: page config, login gate, navigation by role, the embedded scheduler."""

import streamlit as st

from ui import resources, session
from ui.components import plain

st.set_page_config(page_title="LeanOps", page_icon="🔁", layout="wide")

resources.session_factory()  # initialises (migrates) the workspace once per server process
scheduler_status = resources.scheduler()
who = session.current()

if who is None:
    st.navigation([st.Page(session.login_page, title="Log in", icon=":material/login:")], position="hidden").run()
    st.stop()
if session.password_change_due(who):  # a generated password: nothing else until it is replaced
    session.logout_button(who)
    st.navigation([st.Page(session.change_password_page, title="Choose a new password", icon=":material/key:")],
                  position="hidden").run()
    st.stop()
if st.session_state.pop("password_changed", False):
    st.toast("Password changed.", icon=":material/key:")

PAGES = [  # (file, title, icon, least role)
    ("pages/overview.py", "Overview", ":material/home:", "viewer"),
    ("pages/datasets.py", "Datasets", ":material/dataset:", "viewer"),
    ("pages/training.py", "Training", ":material/model_training:", "viewer"),
    ("pages/registry.py", "Registry", ":material/inventory_2:", "viewer"),
    ("pages/drift.py", "Drift", ":material/monitoring:", "viewer"),
    ("pages/audit.py", "Audit log", ":material/verified_user:", "viewer"),
    ("pages/jobs.py", "Jobs", ":material/work_history:", "viewer"),
    ("pages/admin.py", "Admin", ":material/admin_panel_settings:", "admin"),
]
nav = st.navigation([st.Page(path, title=title, icon=icon) for path, title, icon, role in PAGES
                     if who.at_least(role)])
with st.sidebar:
    st.caption(f"Signed in as **{plain(who.name)}** · {who.role}")
    session.logout_button(who)
    st.caption(scheduler_status)
nav.run()
