"""Issue 14 (1) in a real browser: a category value sent to the predict API with a viewer token must not
run script in the admin's dashboard when the Evidently report of a drift check is opened.

The payload travels the real path: `POST /v1/models/churn/predict` (viewer token) → prediction log →
`Run drift check` on the Drift page (the dashboard's embedded worker writes the report) → the admin opens
"Show the Evidently report". A second stored report, hostile script written straight into the report
file, shows the frame's own defence: its scripts run, but in an opaque origin that cannot reach the
dashboard's document or cookies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Frame, Page, expect

from core.settings import Settings
from core.workspace.demo import churn_frame
from db.models import DriftCheck, Job, PredictionLog
from db.session import make_engine, make_session_factory
from tests.e2e.helpers import ADMIN, goto_page, login, wait_rerun
from tests.support.net import free_port
from tests.support.paths import ARTIFACTS, ROOT

# If it ran in the report's old frame (a srcdoc frame on the dashboard's origin) it would mark the
# dashboard's <body>, copy the dashboard's cookies into it and rename the tab.
PAYLOAD = ("</script><script>try{for(const w of [parent, top]){w.document.body.setAttribute('data-pwned', "
           "'cookie=' + w.document.cookie); w.document.title = 'pwned'}}catch(e){}</script>")
SECRET_COOKIE = {"name": "leanops_probe", "value": "s3cret-cookie-value"}  # readable by same-origin script
HOSTILE_REPORT = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><p id="out">not run</p><script>
const out = [];
try { parent.document.body.setAttribute('data-pwned', 'hostile'); out.push('parent reachable'); }
catch (e) { out.push('parent blocked'); }
try { top.document.title = 'pwned'; out.push('top reachable'); } catch (e) { out.push('top blocked'); }
try { out.push('cookie=' + document.cookie); } catch (e) { out.push('cookie blocked'); }
out.push('origin=' + self.origin);
document.getElementById('out').textContent = 'hostile script ran: ' + out.join(', ');
</script></body></html>"""
PROBE = """() => {
  const probe = (read) => { try { read(); return 'reachable'; } catch (e) { return 'blocked'; } };
  return {origin: self.origin, parent: probe(() => parent.document.body), top: probe(() => top.document.cookie),
          cookie: probe(() => document.cookie)};
}"""


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _ready(url: str) -> bool:
    """The API has loaded and warmed every champion (a request before that may wait past its load deadline)."""
    try:
        return httpx.get(f"{url}/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _cli(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    done = subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def served(dashboard):
    """The dashboard's workspace with the demo model promoted, a viewer token and the API running."""
    _cli(dashboard.env, "init", "--demo", "--json", timeout=300)
    viewer = json.loads(_cli(dashboard.env, "token", "create", "--role", "viewer", "--owner", "admin",
                             "--json"))["token"]
    settings = Settings(home=dashboard.home)
    factory = make_session_factory(make_engine(settings.db_url))
    port = free_port()
    api = subprocess.Popen([sys.executable, "cli.py", "serve", "--port", str(port)], cwd=ROOT, env=dashboard.env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _ready(url), 120, "the API to be ready (/health/ready)")
    yield factory, url, viewer
    api.terminate()
    api.wait(timeout=30)


def _logged(factory) -> int:
    with factory() as s:
        return s.query(PredictionLog).count()


def _queued_checks(factory, *, after: int) -> int:
    with factory() as s:
        return s.query(Job).filter(Job.id > after, Job.kind == "drift.check").count()


def _finished_check(factory, *, after: int) -> Job | None:
    with factory() as s:
        return s.query(Job).filter(Job.id > after, Job.kind == "drift.check",
                                   Job.status.in_(("succeeded", "failed", "cancelled"))).first()


def open_report(page: Page, marker: str = "drawn from the reference statistics") -> Frame:
    """Expand the report on the Drift page; the frame whose document is the report (in the outer frame)."""
    page.get_by_text("Show the Evidently report").click()
    outer = page.frame_locator('[data-testid="stIFrame"]')
    expect(outer.frame_locator("iframe").locator("body")).to_contain_text(marker, timeout=30_000)
    frame = outer.locator("iframe").element_handle().content_frame()
    assert frame is not None
    return frame


def assert_dashboard_untouched(page: Page, title: str) -> None:
    assert page.evaluate("document.querySelector('[data-pwned]') && document.querySelector('[data-pwned]')"
                         ".getAttribute('data-pwned')") is None
    assert page.title() == title
    assert SECRET_COOKIE["value"] in page.evaluate("document.cookie")  # there to steal, had a script run here


def test_a_script_category_from_the_api_does_not_run_in_the_dashboard(served, dashboard, page: Page):
    factory, api_url, viewer = served
    records = churn_frame(40, seed=3).drop(columns=["churn"])
    records["contract"] = PAYLOAD
    body = {"records": records.astype(object).where(records.notna(), None).to_dict("records")}
    before = _logged(factory)
    answer = httpx.post(f"{api_url}/v1/models/churn/predict", json=body,
                        headers={"Authorization": f"Bearer {viewer}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    wait_until(lambda: _logged(factory) >= before + 40, 30, "the prediction log to be flushed")

    page.context.add_cookies([SECRET_COOKIE | {"url": dashboard.url}])
    login(page, dashboard.url, *ADMIN)
    goto_page(page, "Drift")
    with factory() as s:
        checks_before = s.query(DriftCheck).count()
        jobs_before = s.query(Job.id).order_by(Job.id.desc()).limit(1).scalar() or 0
    page.get_by_text("Check now").click()
    for attempt in range(2):  # a click landing while the page's 2 s fragment reruns can be lost (seen once in CI)
        page.get_by_role("button", name="Run drift check").click()
        wait_rerun(page)
        try:
            expect(page.get_by_text("Drift check queued as job")).to_be_visible()
            break
        except AssertionError:
            if attempt or _queued_checks(factory, after=jobs_before):  # queued, yet not said: a real failure
                raise
    job = wait_until(lambda: _finished_check(factory, after=jobs_before), 180, "the drift check job to finish")
    assert job.status == "succeeded", f"drift check job #{job.id} {job.status}: {job.error}"
    expect(page.get_by_text(f"Check #{checks_before + 1}:")).to_be_visible(timeout=60_000)
    with factory() as s:
        check = s.query(DriftCheck).order_by(DriftCheck.id.desc()).first()
    assert PAYLOAD in check.columns["contract"]["new_categories"]  # the check itself saw the real value
    title = page.title()

    report = open_report(page)
    # Evidently's scripts ran and drew the report (a column name in its React-rendered table) ...
    expect(report.get_by_text("monthly_charges").first).to_be_visible(timeout=30_000)
    page.wait_for_timeout(1_000)  # time for a payload to act, had it run
    assert_dashboard_untouched(page, title)
    assert "pwned" not in report.content()
    # ... in an opaque origin: nothing it runs can reach the dashboard's document or cookies.
    assert report.evaluate(PROBE) == {"origin": "null", "parent": "blocked", "top": "blocked", "cookie": "blocked"}
    outer = page.frame_locator('[data-testid="stIFrame"]')
    expect(outer.locator("iframe")).to_have_attribute("sandbox", "allow-scripts")

    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 3600})  # Streamlit scrolls inside the page
    page.get_by_text("Evidently report", exact=True).scroll_into_view_if_needed()
    page.wait_for_timeout(1_000)
    page.screenshot(path=str(ARTIFACTS / "xss-drift.png"))
    page.set_viewport_size({"width": 1400, "height": 1000})

    # A stored report whose own script is hostile (nothing escaped it) runs, but only in its frame.
    Path(check.report_path).write_text(HOSTILE_REPORT, encoding="utf-8")
    login(page, dashboard.url, *ADMIN)  # a reload ends the Streamlit session
    goto_page(page, "Drift")
    hostile = open_report(page, marker="hostile script ran")
    page.wait_for_timeout(500)
    assert_dashboard_untouched(page, title)
    assert hostile.inner_text("#out") == ("hostile script ran: parent blocked, top blocked, cookie blocked, "
                                          "origin=null")
