"""LeanOps dashboard script: page config, login gate, navigation by role, the embedded scheduler.

Served by ``streamlit run dashboard.py`` (which adds the login route beside it); AppTest runs it directly.
"""

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import streamlit as st

from ui import inbox, resources, session
from ui.components import plain

st.set_page_config(page_title="LeanOps", page_icon="🔁", layout="wide")

# The folder is app_pages/, not pages/: Streamlit serves a folder named pages/ beside the script as a v1
# multipage app, whose files would then open at their addresses without this script's login gate.
PAGES = [  # (file, title, icon, least role)
    ("app_pages/overview.py", "Overview", ":material/home:", "viewer"),
    ("app_pages/datasets.py", "Datasets", ":material/dataset:", "viewer"),
    ("app_pages/training.py", "Training", ":material/model_training:", "viewer"),
    ("app_pages/registry.py", "Registry", ":material/inventory_2:", "viewer"),
    ("app_pages/inventory.py", "Inventory", ":material/fact_check:", "viewer"),
    ("app_pages/drift.py", "Drift", ":material/monitoring:", "viewer"),
    ("app_pages/audit.py", "Audit log", ":material/verified_user:", "viewer"),
    ("app_pages/jobs.py", "Jobs", ":material/work_history:", "viewer"),
    ("app_pages/admin.py", "Admin", ":material/admin_panel_settings:", "admin"),
    ("app_pages/help.py", "Help", ":material/help:", "viewer"),  # the glossary, one click from every page
]


def only(page: Callable[[], None], title: str, icon: str) -> NoReturn:
    """Show this one page at every page's address, so a reload of /registry before signing in shows it
    (not "Page not found"), and the login sends the browser back to /registry."""
    aliases = [st.Page(page, title=title, icon=icon, url_path=Path(path).stem) for path, *_ in PAGES[1:]]
    st.navigation([st.Page(page, title=title, icon=icon, default=True), *aliases], position="hidden").run()
    st.stop()


resources.session_factory()  # initialises (migrates) the workspace once per server process
scheduler_status = resources.scheduler()
who = session.current()

if who is None:
    only(session.login_page, "Log in", ":material/login:")
if session.password_change_due(who):  # a generated password: nothing else until it is replaced
    session.logout_button(who)
    only(session.change_password_page, "Choose a new password", ":material/key:")
if st.session_state.pop("password_changed", False):
    st.toast("Password changed.", icon=":material/key:")

nav = st.navigation([st.Page(path, title=title, icon=icon) for path, title, icon, role in PAGES
                     if who.at_least(role)])
with st.sidebar:
    st.caption(f"Signed in as **{plain(who.name)}** · {who.role}")
    session.logout_button(who)
    st.caption(scheduler_status)
    inbox.sidebar_count(who)  # approvers: how many requests wait for them
nav.run()
