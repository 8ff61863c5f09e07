"""From a fresh clone to a dashboard: `make run` now (uv, parallel start) vs `make run` before issue 29 (pip).

    .venv/bin/python bench/cold_start.py [--rounds 3] [--baseline 157ebb1] [--ours HEAD]

Each round, interleaved (baseline, then ours, so both see the same load): a fresh ``git clone`` of this
repository checked out at the commit, cold package caches (``PIP_CACHE_DIR``, ``UV_CACHE_DIR`` and
``XDG_CACHE_HOME`` in the clone's folder), a new workspace, free ports; then ``make run`` is timed from
its start to

- the login box on its stdout (``LeanOps is running``: printed once the dashboard answers; ours also
  waits for its own API's readiness with its workspace id), and
- the first page rendered in headless Chromium (the login form's ``Log in`` button): the figure a user
  sees, the goal of issue 29 (≤ 60 s).

Then Ctrl-C (SIGINT to ``make``'s process group) and the clone is deleted. Printed: each round with the
load average, the median and spread of each, the ratio. Installs download from the package index (and
``/opt`` wheel folders where pip is configured with them): network speed is part of the figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BASELINE = "157ebb1"  # the commit before issue 29: pip installs, init --demo before the servers
LIMIT = 900.0  # seconds a round may take before it counts as failed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_round(commit: str, browser: object, label: str) -> tuple[float, float]:
    """(seconds to the login box, seconds to the first rendered page) of ``make run`` on a fresh clone."""
    folder = Path(tempfile.mkdtemp(prefix=f"leanops-cold-{label}-"))
    try:
        clone = folder / "leanops"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "-c", "advice.detachedHead=false", "checkout", "-q", commit], cwd=clone, check=True)
        port, api_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEANOPS_", "VIRTUAL_ENV"))}
        env |= {"LEANOPS_HOME": str(folder / "ws"), "PIP_CACHE_DIR": str(folder / "cache" / "pip"),
                "UV_CACHE_DIR": str(folder / "cache" / "uv"), "XDG_CACHE_HOME": str(folder / "cache"),
                "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
        started = time.perf_counter()
        proc = subprocess.Popen(["make", "run", f"PORT={port}", f"API_PORT={api_port}"], cwd=clone, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        boxed = threading.Event()
        lines: list[str] = []

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip())
                if "LeanOps is running" in line:
                    boxed.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            while not boxed.wait(0.2):
                if proc.poll() is not None or time.perf_counter() - started > LIMIT:
                    raise SystemExit(f"{label}: `make run` ended or hung before its box:\n" + "\n".join(lines[-30:]))
            box = time.perf_counter() - started
            page = browser.new_page()  # type: ignore[attr-defined]
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=5000)
                    page.get_by_role("button", name="Log in").wait_for(timeout=120_000)
                    break
                except Exception:
                    if time.perf_counter() - started > LIMIT:
                        raise
                    time.sleep(0.2)
            first = time.perf_counter() - started
            page.close()
            return box, first
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):6.1f} s (min {min(values):.1f}, max {max(values):.1f})"


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=BASELINE, help="commit whose `make run` is the baseline")
    parser.add_argument("--ours", default="HEAD", help="commit measured as ours (committed work only)")
    parser.add_argument("--ours-only", action="store_true", help="no baseline rounds (say so when reporting)")
    args = parser.parse_args()
    ours = subprocess.run(["git", "rev-parse", "--short", args.ours], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    print(f"fresh clone → dashboard, `make run` at {args.baseline} (pip, before issue 29) vs at {ours}; "
          f"{args.rounds} interleaved rounds, cold caches", flush=True)
    times: dict[str, list[tuple[float, float]]] = {"baseline": [], "ours": []}
    loads: list[float] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        for n in range(1, args.rounds + 1):
            for label, commit in (("baseline", args.baseline), ("ours", ours))[1 if args.ours_only else 0:]:
                box, first = one_round(commit, browser, label)
                times[label].append((box, first))
                loads.append(os.getloadavg()[0])
                print(f"round {n} {label:<8} box {box:6.1f} s · first page {first:6.1f} s · load average "
                      f"{loads[-1]:.2f} on {os.cpu_count()} CPUs", flush=True)
        browser.close()
    print(f"\nmedians of {args.rounds} interleaved rounds (load average median {statistics.median(loads):.2f}, "
          f"min {min(loads):.2f}, max {max(loads):.2f}); the figure a user sees is the first page:")
    for label in ("baseline", "ours")[1 if args.ours_only else 0:]:
        print(f"  {label:<8} box {spread([b for b, _ in times[label]])} · first page "
              f"{spread([f for _, f in times[label]])}")
    mine = statistics.median(f for _, f in times["ours"])
    if not args.ours_only:
        base = statistics.median(f for _, f in times["baseline"])
        print(f"  first page, baseline / ours: {base / mine:.2f}×")
    print(f"  ours {mine:.1f} s to the first page, goal ≤ 60 s: {'met' if mine <= 60 else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
