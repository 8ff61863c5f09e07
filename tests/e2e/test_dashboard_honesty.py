"""Issue 19 items 1-3 in a real Chromium without an emoji font (as on CI): a model name keeps its
target (the Training page refuses another one and queues nothing), every verdict is a word on
Datasets, Registry and Jobs, and the Overview opens with one health row per model.

One workspace for the whole module (``init --demo``: the churn random forest, promoted, with a day
of traffic and a drift check); the tests run in file order and build on each other's state.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import dashboard_env, wait_healthy
from tests.e2e.helpers import ADMIN, Dashboard, goto_page, login, wait_rerun
from tests.support.net import free_port
from tests.support.paths import ARTIFACTS, ROOT

EMOJI = re.compile("[\u2600-\u27bf\U0001f300-\U0001faff]")  # ✅ ❌ ⚠ 🟢 …: boxes without an emoji font


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A dashboard on a demo workspace, shared by this module's tests (a demo init costs ~30 s)."""
    home = tmp_path_factory.mktemp("honesty") / "ws"
    env = dashboard_env(home, {})
    init = subprocess.run([sys.executable, "cli.py", "init", "--demo"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert init.returncode == 0, init.stdout + init.stderr
    port, log = free_port(), home.parent / "dashboard.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    dashboard = Dashboard(f"http://127.0.0.1:{port}", env, home, process, log, init.stdout)
    try:
        wait_healthy(dashboard)
        yield dashboard
    finally:
        dashboard.stop()
        print(f"--- dashboard log ({dashboard.url}), last lines ---\n{dashboard.log_tail()}")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"honesty-{name}.png"), full_page=True)


def select(page: Page, label: str, option: str) -> None:
    """Choose ``option`` in the Streamlit selectbox labelled ``label``."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.scroll_into_view_if_needed()  # a click that has to scroll first does not open the menu
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_rerun(page)


def grid_text(page: Page, header: str) -> str:
    """The cells of the st.dataframe with column ``header``. The grid draws on a canvas, with a table of its
    visible cells inside it (fallback content: in the DOM, not in the accessibility tree)."""
    frame = page.get_by_test_id("stDataFrame").filter(
        has=page.locator('th[role="columnheader"]', has_text=re.compile(f"^{re.escape(header)}$")))
    cells = frame.first.locator('td[role="gridcell"]')
    expect(cells.first).to_be_attached()
    return " | ".join(cells.all_text_contents())


def no_emoji_verdicts(page: Page) -> None:
    shown = page.get_by_test_id("stMain").inner_text()
    assert not EMOJI.search(shown), f"an emoji carries meaning here: {EMOJI.findall(shown)}"


def jobs_in_db(dashboard: Dashboard, kind: str = "train") -> int:
    """Jobs of ``kind`` in the dashboard's database (the embedded scheduler queues others on the clock:
    the monitor round every 15 minutes, compaction every hour)."""
    with sqlite3.connect(dashboard.home / "leanops.db") as db:
        return int(db.execute("select count(*) from jobs where kind = ?", (kind,)).fetchone()[0])


def open_as_admin(page: Page, dashboard: Dashboard, title: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 2400})  # screenshots catch only the viewport
    login(page, dashboard.url, *ADMIN)
    goto_page(page, title)


def test_overview_opens_with_one_health_row_per_model(page: Page, demo: Dashboard) -> None:
    open_as_admin(page, demo, "Overview")
    expect(page.get_by_role("heading", name="Production")).to_be_visible()
    text = grid_text(page, "gates")
    for said in ("churn", "v1", "passed"):  # model, champion version, its gates
        assert said in text, text
    assert re.search(r"\b(no drift|drift)\b", text) and "checked v1" in text, text  # verdict with its reason
    assert re.search(r"(live|estimated) f1 \d\.\d{3} \(floor", text) or "labels needed for a live f1" in text, text
    assert re.search(r"\b(ok|below floor|not enough labels)\b", text), text
    assert re.search(r"\d{4}-\d\d-\d\d", text), text  # last trained
    expect(page.get_by_text(re.compile(r"All 1 model\(s\) OK|1 of 1 model\(s\) need attention: churn"))).to_be_visible()
    # The demo logged a day of traffic: the Overview says how much, not "no predictions".
    expect(page.get_by_text(re.compile(r"request\(s\) in the last 24 hours|Recent predictions")).first).to_be_visible()
    # The sidebar says where jobs run in words, with no process id.
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar).to_contain_text("scheduler: running in this dashboard")
    assert not re.search(r"\(\d+\)|pid", sidebar.inner_text()), sidebar.inner_text()
    no_emoji_verdicts(page)
    shot(page, "overview")


def test_training_refuses_another_target_for_a_bound_model(page: Page, demo: Dashboard) -> None:
    open_as_admin(page, demo, "Training")
    select(page, "Dataset", "churn")
    # The model name defaults to the dataset's, and the demo model churn predicts churn: that is the default.
    expect(page.get_by_text("predicts churn (classification) since its version 1")).to_be_visible()
    expect(page.get_by_role("combobox", name="Target column", exact=True)).to_have_value("churn")

    select(page, "Target column", "contract")
    refusal = "Model 'churn' predicts 'churn' (classification); training it on 'contract' will be refused."
    expect(page.get_by_test_id("stAlert").filter(has_text=refusal)).to_be_visible()
    before = jobs_in_db(demo)
    page.get_by_role("button", name="Launch training").click()
    wait_rerun(page)
    said = page.get_by_test_id("stAlert").filter(has_text=re.compile("churn.*(target|predicts)"))
    expect(said.last).to_contain_text("churn")
    expect(page.get_by_text(re.compile("Queued training job"))).to_have_count(0)
    assert jobs_in_db(demo) == before, "a refused launch queued nothing"
    shot(page, "training-refusal")

    # Back to the model's own target, the tiniest model: queued, run and registered as a new version of churn.
    select(page, "Target column", "churn")
    expect(page.get_by_test_id("stAlert").filter(has_text="will be refused")).to_have_count(0)
    select(page, "Model", "Dummy baseline")
    page.get_by_role("button", name="Launch training").click()
    wait_rerun(page)
    expect(page.get_by_text(re.compile(r"Queued training job #\d+ on churn:1"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Job #\d+ registered churn version \d+\."))).to_be_visible(timeout=180_000)
    assert jobs_in_db(demo) == before + 1


def test_every_verdict_reads_as_words(page: Page, demo: Dashboard) -> None:
    open_as_admin(page, demo, "Datasets")
    expect(page.get_by_text("Certificate passed")).to_be_visible()
    assert "passed" in grid_text(page, "certificate")
    no_emoji_verdicts(page)
    shot(page, "datasets")

    goto_page(page, "Registry")
    expect(page.get_by_role("heading", name="Versions of churn")).to_be_visible(timeout=60_000)
    versions = grid_text(page, "gates")
    assert "passed" in versions and "failed" in versions, versions  # demo forest passes, dummy fails f1
    expect(page.get_by_text(re.compile(r"failed: \d+ of \d+ checks"))).to_be_visible()  # the dummy (newest)
    # A version whose gates fail does not get the primary (obvious next step) button.
    promote = page.get_by_role("button", name="Promote to production")
    expect(promote).to_have_attribute("data-testid", "stBaseButton-secondary")
    no_emoji_verdicts(page)
    shot(page, "registry")

    goto_page(page, "Jobs")
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    history = grid_text(page, "status")
    assert "succeeded" in history, history
    no_emoji_verdicts(page)
    shot(page, "jobs")
