"""End-to-end harness: the real dashboard (``streamlit run dashboard.py``) driven by a real Chromium.

Every test in this folder is marked ``e2e`` (``pytest -m "not e2e"`` skips them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.helpers import ADMIN, Dashboard
from tests.support.net import free_port
from tests.support.paths import ARTIFACTS, ROOT

HERE = Path(__file__).resolve().parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]  # containers often have a tiny /dev/shm
START_TIMEOUT = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items, so mark only the ones in this folder.
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)


# -- browser -------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not found on PATH (apt-get install -y chromium)")
        pytest.skip("chromium not found on PATH; end-to-end tests skipped")
    expect.set_options(timeout=15_000)  # a cold Streamlit page can take several seconds
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    finally:
        context.close()


# -- the dashboard -------------------------------------------------------------------------------

def dashboard_env(home: Path, overrides: dict[str, str | None]) -> dict[str, str]:
    """The test's environment minus any LEANOPS_* of the developer, plus the dashboard's settings.

    An override of ``None`` removes that variable.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")}
    env.update({
        "LEANOPS_HOME": str(home),
        "LEANOPS_ADMIN_USER": ADMIN[0],
        "LEANOPS_ADMIN_PASSWORD": ADMIN[1],
        "LEANOPS_SCHEDULER": "embedded",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "PYTHONUNBUFFERED": "1",
    })
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def wait_healthy(dashboard: Dashboard, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dashboard.process.poll() is not None:
            pytest.fail(f"the dashboard exited with code {dashboard.process.returncode}:\n{dashboard.log_tail()}")
        try:
            with urllib.request.urlopen(f"{dashboard.url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"the dashboard did not answer /_stcore/health within {timeout} s:\n{dashboard.log_tail()}")


@pytest.fixture
def start_dashboard(tmp_path: Path) -> Iterator[Callable[..., Dashboard]]:
    """Start a dashboard on a fresh workspace: ``start_dashboard(LEANOPS_SCHEDULER="off", ...)``.

    Each call runs ``cli.py init`` and then ``streamlit run dashboard.py`` on a free port; every dashboard
    started is stopped at teardown, and its log is printed (pytest shows it when the test failed).
    """
    started: list[Dashboard] = []

    def start(**overrides: str | None) -> Dashboard:
        n = len(started)
        home = tmp_path / (f"ws{n}" if n else "ws")
        env = dashboard_env(home, overrides)
        init = subprocess.run([sys.executable, "cli.py", "init"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=180)
        if init.returncode != 0:
            pytest.fail(f"cli.py init failed with code {init.returncode}:\n{init.stdout}\n{init.stderr}")

        port = free_port()
        log = tmp_path / f"dashboard-{n}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
                 "--server.port", str(port), "--server.address", "127.0.0.1",
                 "--browser.gatherUsageStats", "false"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        dashboard = Dashboard(f"http://127.0.0.1:{port}", env, home, process, log, init.stdout)
        started.append(dashboard)
        wait_healthy(dashboard)
        return dashboard

    yield start

    for dashboard in started:
        dashboard.stop()
        print(f"--- dashboard log ({dashboard.url}), last lines ---\n{dashboard.log_tail()}")


@pytest.fixture
def dashboard(start_dashboard: Callable[..., Dashboard], request: pytest.FixtureRequest) -> Dashboard:
    """A running dashboard; parametrize indirectly with a dict of env overrides to change its settings."""
    return start_dashboard(**getattr(request, "param", {}))
