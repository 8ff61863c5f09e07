"""Serve the dashboard: ``streamlit run dashboard.py`` (what `make run` and the image do).

``st.App`` serves the Streamlit script ``app.py`` plus LeanOps' login routes (password, and single sign-on
in ui/oidc_routes.py) on the same origin and port, so the login can set an HttpOnly session cookie (a script
cannot; see ui/auth_routes.py and the "Sessions" part of docs/security.md). ``app.py`` stays the script that
AppTest and the pages run.
"""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from ui import auth_routes, oidc_routes

# app.py builds the navigation itself (st.navigation, by role). Streamlit otherwise treats the folder
# pages/ beside it as a v1 multipage app until app.py's first run in the process, so the first request
# after a (re)start at /admin would run pages/admin.py directly, without app.py's login gate and role filter.
PagesManager.uses_pages_directory = False

app = st.App("app.py", routes=auth_routes.routes() + oidc_routes.routes())
