"""Browser steps shared by the end-to-end tests (labels are the contract in design.md)."""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ADMIN = ("admin", "admin-pass-123")  # what the dashboard fixture bootstraps
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
RUNNING = '[data-testid="stApp"][data-test-script-state="running"]'


def wait_idle(page: Page, timeout: float = 30_000) -> None:
    """Wait until the Streamlit script has finished its run."""
    page.wait_for_selector(IDLE, timeout=timeout)


def wait_rerun(page: Page, timeout: float = 30_000) -> None:
    """After a click: wait for the rerun it causes to start (unless it was too quick to see), then to end.

    Waiting for "idle" alone can pass before the rerun has even started.
    """
    try:
        page.wait_for_selector(RUNNING, timeout=2_000)
    except PlaywrightTimeout:
        pass
    wait_idle(page, timeout)


def login(page: Page, url: str, username: str, password: str) -> None:
    """Sign in as ``username`` (logging out first when the browser's session cookie still signs it in).

    The form posts to the login route, which answers with a redirect: a new page load, not a rerun.
    """
    page.goto(url)
    wait_idle(page)
    field, logout = page.get_by_label("Username", exact=True), page.get_by_role("button", name="Log out")
    field.or_(logout).first.wait_for()
    if logout.count():
        logout.click()
        field.wait_for()
    field.fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    wait_idle(page)


def goto_page(page: Page, title: str) -> None:
    """Open a page from the sidebar navigation by its title."""
    # By accessible name: a link's text also holds its icon's ligature ("homeOverview").
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    wait_rerun(page)


@dataclass
class Dashboard:
    """A dashboard server started by the ``start_dashboard`` fixture (its own workspace, port and log)."""

    url: str
    env: dict[str, str]
    home: Path
    process: subprocess.Popen
    log: Path
    init_output: str = ""  # what `cli.py init` printed (a generated admin password is shown only there)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the server and anything it spawned
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)
