"""Serve the dashboard: ``streamlit run dashboard.py`` (what `make run` and the image do).

``st.App`` serves the Streamlit script ``app.py`` plus LeanOps' login routes (password, and single sign-on
in ui/oidc_routes.py) on the same origin and port, so the login can set an HttpOnly session cookie (a script
cannot; see ui/auth_routes.py and the "Sessions" part of docs/security.md). ``app.py`` stays the script that
AppTest and the pages run.
"""

import streamlit as st

from ui import auth_routes, oidc_routes

app = st.App("app.py", routes=auth_routes.routes() + oidc_routes.routes())
