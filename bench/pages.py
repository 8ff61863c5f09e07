"""Every dashboard page on a workspace with history vs the demo workspace, in a real browser (issue 29 item 3).

Two workspaces, each built by ``cli.py init --demo`` (SQLite metadata DB): the demo as a newcomer gets it,
and "history": the same demo plus ``--days`` days of hourly traffic on the demo model, every hour labelled
(``--per-hour`` records per hourly request, logged through ``writer.insert_served``, labelled through
``feedback.record_feedback``, compacted into hourly Parquet partitions by ``parquet.compact``), and
``--audit`` more audit events written through ``audit.record``. Each workspace gets its own dashboard
(``streamlit run dashboard.py``, scheduler off) and headless Chromium signs in as the admin.

A round waits ``--ttl`` seconds (longer than the pages' ``st.cache_data`` lifetimes) so every cache has
expired, then opens each page from the sidebar on the demo dashboard and then on the history one
(interleaved), timed from the click to Streamlit's script state "notRunning" (the page rendered
complete). Three rounds by default; prints per page the median and spread of each, the ratio, the goals
(≤ 1.5 s and ≤ 1.5 × the demo), and the load average before and after.

``--code DIR`` runs the dashboards from another checkout of the code (say a ``git worktree`` of the
commit before a change), the workspaces built by this one.

    PYTHONPATH=. .venv/bin/python bench/pages.py [--days 90] [--per-hour 10] [--audit 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ADMIN = ("admin", "bench-pass-123")
PAGES = ["Overview", "Datasets", "Training", "Registry", "Inventory", "Drift", "Audit log", "Jobs", "Admin", "Help"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
RUNNING = '[data-testid="stApp"][data-test-script-state="running"]'
GOAL_SECONDS, GOAL_RATIO = 1.5, 1.5


def env_of(home: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")} | {
        "LEANOPS_HOME": str(home), "LEANOPS_ADMIN_USER": ADMIN[0], "LEANOPS_ADMIN_PASSWORD": ADMIN[1],
        "LEANOPS_SCHEDULER": "off", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}


def init_demo(home: Path) -> None:
    done = subprocess.run([sys.executable, "cli.py", "init", "--demo"], cwd=ROOT, env=env_of(home),
                          capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise SystemExit(f"cli.py init --demo failed:\n{done.stdout}\n{done.stderr}")


def add_history(home: Path, *, days: int, per_hour: int, audit_events: int) -> dict[str, int]:
    """Hourly labelled traffic for ``days`` days on the demo model, compacted; more audit events."""
    from core import audit
    from core.actors import system_actor
    from core.platform.database import transaction
    from core.platform.prediction_log import parquet
    from core.platform.prediction_log.parquet import new_request_id
    from core.platform.prediction_log.writer import Served, insert_served
    from core.registry import state
    from core.serving import cache
    from core.serving.feedback import record_feedback
    from core.settings import get_settings
    from core.workspace.demo import churn_frame
    from db.models import utcnow
    from db.session import make_engine, make_session_factory

    settings = get_settings(home=home, scheduler="off")
    factory = make_session_factory(make_engine(settings.db_url))
    with factory() as session:
        version = state.champion(session, model="churn")
    assert version is not None, "the demo model has no champion"
    loaded = cache.load_version(settings.registry, name="churn", alias="champion", version=version)
    assert loaded.schema is not None
    hours = days * 24
    frame = churn_frame(hours * per_hour, seed=5)
    labels = frame.pop("churn").tolist()
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    start = utcnow() - timedelta(days=days, hours=1)
    actor = system_actor("bench")
    requests = []
    for hour in range(hours):
        part = slice(hour * per_hour, (hour + 1) * per_hour)
        columns = loaded.schema.coerce(records[part]).columns
        at = start + timedelta(hours=hour, minutes=20)
        requests.append(Served(new_request_id(at), at, "churn", "champion", version, columns,
                               loaded.predict(columns).outputs.tolist(), 8.0))
    for at in range(0, len(requests), 500):
        with transaction(factory) as session:
            insert_served(session, requests[at: at + 500])
    for hour, request in enumerate(requests):
        with transaction(factory) as session:
            record_feedback(session, actor=actor, model="churn", request_id=request.request_id,
                            labels=labels[hour * per_hour:(hour + 1) * per_hour], store=settings.data_store)
    moved = parquet.compact(factory, settings.data_store, actor=actor, holder="bench", scratch=home / "tmp")
    backdate_champion(factory, days=days)
    for at in range(0, audit_events, 1000):
        with transaction(factory) as session:
            for i in range(at, min(audit_events, at + 1000)):
                audit.record(session, actor, "bench.event", f"bench:{i}", {"n": i})
    return {"hours": hours, "records": hours * per_hour, "files": moved["files"], "audit": audit_events}


def backdate_champion(factory, *, days: int) -> None:
    """The champion's training run dated before its history: a version serves only after its run, and live
    performance reads no older hour (nothing in the project writes a past training time)."""
    from sqlalchemy import update

    from core.platform.database import transaction
    from db.models import TrainingRun, utcnow

    with transaction(factory) as session:
        session.execute(update(TrainingRun).where(TrainingRun.model_name == "churn")
                        .values(started_at=utcnow() - timedelta(days=days + 1)))


class Dashboard:
    def __init__(self, home: Path, code: Path, log: Path) -> None:
        from tests.support.net import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = env_of(home) | {"PYTHONPATH": str(code)}
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
                 "--server.port", str(self.port), "--server.address", "127.0.0.1",
                 "--browser.gatherUsageStats", "false"],
                cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"dashboard did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)


def sign_in(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=120_000)
    page.get_by_label("Username", exact=True).fill(ADMIN[0])
    page.get_by_label("Password", exact=True).fill(ADMIN[1])
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    page.wait_for_selector(IDLE, timeout=120_000)


def open_timed(page, title: str) -> float:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    link = page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True)
    started = time.perf_counter()
    link.click()
    try:
        page.wait_for_selector(RUNNING, timeout=2_000)
    except PlaywrightTimeout:
        pass
    page.wait_for_selector(IDLE, timeout=180_000)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--per-hour", type=int, default=10, help="records per hourly request, every one labelled")
    parser.add_argument("--audit", type=int, default=20_000, help="extra audit events in the history workspace")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ttl", type=float, default=16.0, help="seconds to wait so every page cache expired")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout the dashboards run from")
    parser.add_argument("--pages", default=",".join(PAGES))
    parser.add_argument("--keep", type=Path, help="build (or reuse) the workspaces in this folder")
    parser.add_argument("--shots", type=Path, help="save a screenshot of each page of the last round here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    root = args.keep or Path(tempfile.mkdtemp(prefix="leanops-pages-"))
    demo_home, year_home = root / "demo", root / "history"
    built = time.monotonic()
    for home in (demo_home, year_home):
        if not (home / ".bench-built").exists():
            shutil.rmtree(home, ignore_errors=True)
            init_demo(home)
            if home == year_home:
                print("history:", add_history(home, days=args.days, per_hour=args.per_hour,
                                              audit_events=args.audit), flush=True)
            (home / ".bench-built").touch()
    print(f"workspaces ready in {time.monotonic() - built:.0f} s under {root}", flush=True)
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    load_before = os.getloadavg()
    dashboards = {"demo": Dashboard(demo_home, args.code, root / "demo.log"),
                  "history": Dashboard(year_home, args.code, root / "history.log")}
    times: dict[str, dict[str, list[float]]] = {p: {"demo": [], "history": []} for p in pages}
    loads = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            tabs = {}
            for name, board in dashboards.items():
                tab = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                sign_in(tab, board.url)
                for title in pages:  # warm-up: imports and first connections, not timed
                    open_timed(tab, title)
                tabs[name] = tab
            for rnd in range(args.rounds):
                time.sleep(args.ttl)
                loads.append(os.getloadavg()[0])
                for title in pages:
                    for name in ("demo", "history"):
                        took = open_timed(tabs[name], title)
                        times[title][name].append(took)
                        if args.shots and rnd == args.rounds - 1:
                            args.shots.mkdir(parents=True, exist_ok=True)
                            tabs[name].screenshot(path=str(args.shots / f"pages-{name}-{title.replace(' ', '_')}.png"),
                                                  full_page=True)
                print(f"round {rnd + 1}: " + ", ".join(f"{t} {times[t]['history'][-1]:.2f}/{times[t]['demo'][-1]:.2f}"
                                                    for t in pages), flush=True)
            browser.close()
    finally:
        for board in dashboards.values():
            board.stop()
    print(f"\nload average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; "
          f"per round {', '.join(f'{x:.2f}' for x in loads)}; after {os.getloadavg()[0]:.2f} (2 cores)")
    print(f"{'page':<12} {'demo s (median, spread)':>26} {'history s (median, spread)':>29} {'ratio':>6}  goal")
    for title in pages:
        d, h = times[title]["demo"], times[title]["history"]
        dm, hm = statistics.median(d), statistics.median(h)
        ok = hm <= GOAL_SECONDS and hm <= GOAL_RATIO * dm
        print(f"{title:<12} {dm:>12.2f} ({min(d):.2f}-{max(d):.2f}) {hm:>15.2f} ({min(h):.2f}-{max(h):.2f}) "
              f"{hm / dm:>6.2f}  {'met' if ok else 'NOT met'} (<= {GOAL_SECONDS} s and <= {GOAL_RATIO}x demo)")
    print("What a user sees: the history column, a page opened from the sidebar with its caches expired.")


if __name__ == "__main__":
    main()
