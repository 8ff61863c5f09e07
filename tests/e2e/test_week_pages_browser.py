"""A week unattended, the pages' part, in a real browser: a deep link to a version opens it after the login
(and a reload keeps it); the Overview's attention item links to the failing drift check; an approver's
inbox shows a waiting request, with its count in the sidebar, and approving it (after confirming) promotes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from core.workspace.demo import churn_frame
from tests.e2e.conftest import dashboard_env, wait_healthy
from tests.e2e.helpers import ADMIN, Dashboard, goto_page, wait_idle, wait_rerun
from tests.support.net import free_port

pytestmark = pytest.mark.timeout(900)  # the shared set-up (demo init, a training, a drift check) is slow under load
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts"
APPROVER = ("ann", "ann-approves-123")


def cli(env: dict[str, str], *args: str, stdin: str | None = None, codes: tuple[int, ...] = (0,)) -> dict:
    done = subprocess.run([sys.executable, "cli.py", *args, "--json"], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode in codes, done.stdout + done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dashboard, int]]:
    """The demo workspace (churn v1 champion) with approvals required, v2 trained, a drifted batch checked
    and an approver; returns the dashboard and the drift check's id."""
    home = tmp_path_factory.mktemp("week") / "ws"
    env = dashboard_env(home, {})
    cli(env, "init", "--demo")
    policies = home / "policies.yaml"
    text = policies.read_text()
    assert "required: false\n    approvers: 1" in text
    policies.write_text(text.replace("required: false\n    approvers: 1", "required: true\n    approvers: 1"))
    cli(env, "train", "--dataset", "churn", "--target", "churn", "--model", "logistic_regression",
        "--sensitive", "gender")
    drifted = churn_frame(1500, seed=5).drop(columns=["churn"])
    drifted["monthly_charges"] = drifted["monthly_charges"] + 45  # planted: about two standard deviations
    drifted["contract"] = "month-to-month"
    batch = home.parent / "drifted.csv"
    drifted.to_csv(batch, index=False)
    check = cli(env, "drift", "churn", "--current", str(batch), codes=(1,))  # its Evidently report: a job
    assert check["drift_detected"]
    cli(env, "user", "add", APPROVER[0], "--role", "approver", "--keep-password", stdin=APPROVER[1] + "\n")

    port, log = free_port(), home.parent / "dashboard.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    dashboard = Dashboard(f"http://127.0.0.1:{port}", env, home, process, log)
    try:
        wait_healthy(dashboard)
        yield dashboard, int(check["check_id"])
    finally:
        dashboard.stop()
        print(f"--- dashboard log, last lines ---\n{dashboard.log_tail()}")


@pytest.fixture
def berlin(browser: Browser) -> Iterator[Page]:
    """A browser in another time zone than the server's UTC, with a tall viewport for screenshots."""
    context = browser.new_context(viewport={"width": 1400, "height": 1800}, timezone_id="Europe/Berlin")
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"week-{name}.png"), full_page=True)


def login(page: Page, url: str, username: str, password: str) -> None:
    """``tests.e2e.helpers.login`` with a longer first-render wait: the Registry's first run imports MLflow,
    which takes tens of seconds on a loaded two-core machine."""
    page.goto(url)
    wait_idle(page, 120_000)
    field, logout = page.get_by_label("Username", exact=True), page.get_by_role("button", name="Log out")
    field.or_(logout).first.wait_for(timeout=120_000)
    if logout.count():
        logout.click()
        field.wait_for(timeout=120_000)
    field.fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation(timeout=120_000):
        page.get_by_role("button", name="Log in").click()
    wait_idle(page, 120_000)


def selectbox(page: Page, label: str):
    """The shown choice of the select box ``label`` (its combobox's value)."""
    return page.get_by_role("combobox", name=label, exact=True)


def test_a_deep_link_survives_the_login_and_the_attention_item_opens_the_failing_check(
        berlin: Page, week: tuple[Dashboard, int]) -> None:
    dashboard, check_id = week
    page = berlin
    login(page, f"{dashboard.url}/registry?model=churn&version=1", *ADMIN)  # not signed in: the login comes first
    expect(page.get_by_role("heading", name="Versions of churn")).to_be_visible(timeout=60_000)
    assert re.search(r"/registry\?.*version=1", page.url), page.url
    expect(selectbox(page, "Version")).to_have_value("v1")  # not the newest (v2), which opens by default
    # With approvals required, the Registry asks for a promotion instead of offering one it would refuse.
    expect(page.get_by_role("button", name="Request promotion")).to_be_visible()
    expect(page.get_by_role("button", name="Promote to production")).to_have_count(0)
    shot(page, "registry-deep-link")
    page.reload()
    wait_idle(page)
    expect(selectbox(page, "Version")).to_have_value("v1", timeout=60_000)  # a reload shows the same version

    goto_page(page, "Overview")
    item = page.locator(".st-key-attention-churn")
    expect(item).to_contain_text("churn needs attention")
    expect(item).to_contain_text("drift:")
    expect(item).to_contain_text("monthly_charges")  # the whole reason, not a cut-off cell
    expect(page.get_by_role("link", name="See the failed jobs")).to_be_visible()
    shot(page, "overview")
    item.get_by_role("link", name=f"Open drift check #{check_id}").click()
    wait_rerun(page)
    expect(page.get_by_role("heading", name="Drift", exact=True)).to_be_visible()
    assert f"check={check_id}" in page.url and "model=churn" in page.url, page.url
    expect(selectbox(page, "Check")).to_have_value(re.compile(rf"^#{check_id} "))
    expect(page.get_by_text(re.compile(r"Expected false alarms on unchanged data: at most"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"Why the two can differ: LeanOps says drift"))).to_be_visible()
    shot(page, "drift")


def change_password_if_asked(page: Page, current: str) -> None:
    """An account whose password an admin set is asked to choose its own at the first login."""
    heading = page.get_by_role("heading", name="Choose a new password")
    overview = page.get_by_role("heading", name="Overview")
    heading.or_(overview).first.wait_for(timeout=60_000)
    if heading.count():
        page.get_by_label("Current password").fill(current)
        page.get_by_label("New password", exact=True).fill(current + "-mine")
        page.get_by_label("Repeat the new password").fill(current + "-mine")
        page.get_by_role("button", name="Change password").click()
        wait_rerun(page)


def test_the_approvers_inbox_shows_the_waiting_request_and_approving_it_promotes(
        berlin: Page, week: tuple[Dashboard, int]) -> None:
    dashboard, _ = week
    page = berlin
    login(page, f"{dashboard.url}/registry?model=churn&version=2", *ADMIN)
    expect(selectbox(page, "Version")).to_have_value("v2", timeout=60_000)
    page.get_by_role("button", name="Request promotion").click()
    wait_rerun(page)
    expect(page.get_by_text("Promotion of v2 requested")).to_be_visible()

    login(page, dashboard.url, *APPROVER)  # logs the admin out first
    change_password_if_asked(page, APPROVER[1])
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_role("heading", name="Waiting for approval (1)")).to_be_visible()
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_role("link", name=re.compile("Approvals waiting: 1"))).to_be_visible()
    line = page.get_by_text(re.compile(r"asks to promote churn v2 to production"))
    expect(line).to_contain_text(re.compile(r"CES?T · \d+ (s|min) ago"))  # the viewer's time zone, and how long ago
    shot(page, "inbox")
    page.get_by_role("link", name=re.compile(r"Decide request \d+")).click()
    wait_rerun(page)
    expect(page.get_by_role("heading", name="Pending requests")).to_be_visible(timeout=60_000)
    expect(selectbox(page, "Version")).to_have_value("v2")
    page.get_by_role("button", name="Approve").click()
    wait_rerun(page)
    expect(page.get_by_text(re.compile(r"Approve request \d+ \(promote v2 of churn\)\?"))).to_be_visible()
    shot(page, "approve-confirm")
    page.get_by_role("button", name="Yes, approve").click()
    wait_rerun(page)
    expect(page.get_by_text(re.compile(r"Request \d+ approved\."))).to_be_visible(timeout=60_000)

    from core.registry import state
    from db.session import make_engine, make_session_factory

    engine = make_engine(f"sqlite:///{dashboard.home / 'leanops.db'}")
    try:
        with make_session_factory(engine)() as session:
            assert state.current(session, model="churn")["champion"] == 2, "the approval promoted v2"
    finally:
        engine.dispose()
    goto_page(page, "Overview")
    expect(page.get_by_role("heading", name="Waiting for approval (0)")).to_be_visible()
