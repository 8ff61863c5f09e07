"""Dashboard cold start (process start → first page rendered in a browser) vs `streamlit hello`.

Run: .venv/bin/python bench/cold_start.py [--rounds 3]. Goal (issue 2): ratio ≤ 2×.
Each round starts both servers fresh, one after the other, and times until Chromium shows the
first rendered page: LeanOps' login form, or hello's welcome text.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_to_first_page(browser, command: list[str], env: dict[str, str], ready: str) -> float:
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([*command, "--server.port", str(port), "--server.headless", "true",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = browser.new_page()
        while True:
            try:
                page.goto(f"http://127.0.0.1:{port}/", timeout=2000)
                break
            except Exception:
                if time.perf_counter() - start > 120:
                    raise
                time.sleep(0.05)
        page.get_by_text(ready, exact=False).first.wait_for(timeout=120_000)
        elapsed = time.perf_counter() - start
        page.close()
        return elapsed
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    streamlit = [sys.executable, "-m", "streamlit"]
    hello_times, app_times = [], []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        env = {**os.environ, "LEANOPS_HOME": f"{tmp}/ws", "LEANOPS_ADMIN_PASSWORD": "bench-pass-123",
               "LEANOPS_SCHEDULER": "embedded"}
        subprocess.run([sys.executable, "cli.py", "init", "--demo", "--json"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        for _ in range(rounds):
            hello_times.append(time_to_first_page(browser, [*streamlit, "hello"], env, "Welcome to Streamlit"))
            app_times.append(time_to_first_page(browser, [*streamlit, "run", "app.py"], env, "Log in"))
        browser.close()
    hello, app = statistics.median(hello_times), statistics.median(app_times)
    print(f"streamlit hello  median {hello:.2f} s  ({', '.join(f'{t:.2f}' for t in hello_times)})")
    print(f"LeanOps app.py   median {app:.2f} s  ({', '.join(f'{t:.2f}' for t in app_times)})")
    print(f"cold start ratio (LeanOps / streamlit hello): {app / hello:.2f}x  (goal <= 2x)")


if __name__ == "__main__":
    main()
