"""Serve the dashboard: ``streamlit run dashboard.py`` (what `make run` and the image do).

``st.App`` serves the Streamlit script ``app.py`` plus LeanOps' login routes (password, and single sign-on
in ui/oidc_routes.py) on the same origin and port, so the login can set an HttpOnly session cookie (a script
cannot; see ui/auth_routes.py and the "Sessions" part of docs/security.md). ``app.py`` stays the script that
AppTest and the pages run.

The server's lifespan starts the housekeeping sweep at once (stale jobs reaped, versions a killed job left
pending in MLflow taken back): a dashboard nobody has opened yet still tidies a crash (issue 29 item 5).
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import streamlit as st

from ui import auth_routes, oidc_routes


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    import asyncio

    from core.settings import get_settings
    from jobs import housekeeping
    from ui import resources

    # Its own engine, outside any script run; opening the workspace migrates it (off the event loop). A store
    # that is not reachable yet must not keep the server from starting: the pages say what is wrong, and the
    # sweep then starts with the first page (ui.resources.scheduler).
    try:
        settings = get_settings()
        factory = await asyncio.to_thread(resources.open_workspace, settings)
    except Exception as exc:  # noqa: BLE001 - logged in one line; the server still starts
        from core.errors import redact

        logging.getLogger("leanops.ui").warning("housekeeping not started with the server: %s",
                                                redact(f"{type(exc).__name__}: {exc}").splitlines()[0][:300])
        yield
        return
    stop = housekeeping.start(factory, settings)
    yield
    stop.set()


app = st.App("app.py", routes=auth_routes.routes() + oidc_routes.routes(), lifespan=lifespan)
