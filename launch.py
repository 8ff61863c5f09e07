"""``make run``'s launcher: a workspace, the API and the dashboard, and the login box once they answer.

    python launch.py [--port 8501] [--api-port 8000] [--no-demo]

Steps (issue 26 item 9, issue 29 item 2):

1. Both ports are checked first: one taken (by anything, LeanOps or not) ends the run with one line
   naming the port and how to pick another, before anything starts.
2. ``cli.py init`` makes or upgrades the workspace (schema, admin, keys; no demo yet) and says the
   workspace's id. Its output, which may hold a generated password, stays in this process's memory.
3. The API, the dashboard and the demo (``cli.py init --demo``: the churn dataset, a trained champion,
   some traffic) start at once, in parallel; the first page does not wait for the demo.
4. Ready means: the API's ``/health/ready`` answers 200 with THIS workspace's id, and the dashboard's
   ``/_stcore/health`` answers. Otherwise (a process exited, a port answered for another workspace,
   nothing after ``--timeout`` seconds) the run ends with one line saying which, and stops what it started.
5. Only then the box with the address and the login. Ctrl-C stops everything and exits 0.

Only the standard library is imported here: the launcher itself starts in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
PY = sys.executable


class Stop(Exception):
    """A reason to end the run, said in one line."""


def port_taken(port: int) -> bool:
    """True when something listens on ``port`` (any local address) or the port cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError:
            return True
    return False


def check_ports(ports: dict[str, tuple[int, str]]) -> None:
    for what, (port, variable) in ports.items():
        if port_taken(port):
            raise Stop(f"port {port} ({what}) is already in use by another process: stop it, or pick another "
                       f"port (make run {variable}=...)")


def get_json(url: str, timeout: float = 2) -> tuple[int, dict]:
    """(status, JSON body) of a GET; (0, {}) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status, _json(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read())
    except (OSError, ValueError):
        return 0, {}


def _json(raw: bytes) -> dict:
    try:
        found = json.loads(raw)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def init(env: dict[str, str]) -> dict:
    done = subprocess.run([PY, "cli.py", "init", "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    doc = _json(done.stdout.encode())
    if done.returncode != 0 or not doc.get("workspace_id"):
        reason = doc.get("error") or last_line_of(done.stderr) or f"exit {done.returncode}"
        raise Stop(f"`cli.py init` failed: {reason}")
    return doc


def last_line_of(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def wait_ready(*, api: subprocess.Popen, ui: subprocess.Popen, api_port: int, port: int, workspace: str,
               logs: dict[str, Path], timeout: float) -> None:
    """Until the API answers ready for ``workspace`` and the dashboard answers; Stop otherwise."""
    deadline = time.monotonic() + timeout
    api_ok = ui_ok = False
    while not (api_ok and ui_ok):
        if api.poll() is not None:
            raise Stop(f"the API exited before it was ready (exit {api.returncode}): "
                       f"{last_line(logs['api']) or 'no output'} (log: {logs['api']})")
        if ui.poll() is not None:
            raise Stop(f"the dashboard exited before it answered (exit {ui.returncode}): "
                       f"{last_line(logs['dashboard']) or 'no output'} (log: {logs['dashboard']})")
        if not api_ok:
            status, body = get_json(f"http://127.0.0.1:{api_port}/health/ready")
            if status and body.get("workspace") != workspace:
                raise Stop(f"port {api_port} answers for another workspace ({body.get('workspace') or 'not LeanOps'}"
                           f", expected {workspace}): another process holds the API's port; stop it or pick "
                           "another (make run API_PORT=...)")
            api_ok = status == 200
        if not ui_ok:
            status, _ = get_json(f"http://127.0.0.1:{port}/_stcore/health")
            ui_ok = status == 200
        if time.monotonic() > deadline:
            waiting = " and ".join(w for w, ok in (("the API", api_ok), ("the dashboard", ui_ok)) if not ok)
            raise Stop(f"{waiting} did not answer within {timeout:g} s (logs: {logs['api']}, {logs['dashboard']})")
        if not (api_ok and ui_ok):
            time.sleep(0.25)


def box(lines: list[str]) -> str:
    width = max(map(len, lines))
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line.ljust(width)} |" for line in lines), rule])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8501)), help="the dashboard's port")
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", 8000)))
    parser.add_argument("--no-demo", action="store_true", help="no demo dataset, model and traffic")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for both to answer")
    args = parser.parse_args(argv)
    procs: list[subprocess.Popen] = []
    stopping = {"asked": False}

    def on_signal(signum: int, frame: object) -> None:
        stopping["asked"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also where it was ignored (a background job's inherited SIG_IGN)
    try:
        check_ports({"the dashboard": (args.port, "PORT"), "the API": (args.api_port, "API_PORT")})
        env = os.environ | {"LEANOPS_API_URL": f"http://127.0.0.1:{args.api_port}"}
        doc = init(env)
        home = Path(doc.get("home") or ".")
        logs = {"api": home / "logs" / "api.log", "dashboard": home / "logs" / "dashboard.log",
                "demo": home / "logs" / "demo.log"}
        logs["api"].parent.mkdir(parents=True, exist_ok=True)
        print(f"workspace ready at {home} (id {doc['workspace_id']}); starting the API and the dashboard"
              + ("" if args.no_demo else ", and building the demo in the background"), flush=True)

        def start(argv: list[str], log: Path) -> subprocess.Popen:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            procs.append(proc)
            return proc

        api = start([PY, "cli.py", "serve", "--host", "127.0.0.1", "--port", str(args.api_port)], logs["api"])
        ui = start([PY, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true", "--server.port",
                    str(args.port), "--browser.gatherUsageStats", "false"], logs["dashboard"])
        demo = None if args.no_demo else start([PY, "cli.py", "init", "--demo"], logs["demo"])
        wait_ready(api=api, ui=ui, api_port=args.api_port, port=args.port, workspace=doc["workspace_id"],
                   logs=logs, timeout=args.timeout)
        user, password = doc.get("admin_user"), doc.get("admin_password")
        lines = ["LeanOps is running", "", f"Dashboard  http://localhost:{args.port}",
                 f"User       {user or 'admin'}",
                 f"Password   {password or 'the one you set (LEANOPS_ADMIN_PASSWORD, or changed at first login)'}"]
        if password:
            lines.append("           (generated now and shown once: the first login asks for a new one)")
        lines += [f"API        http://127.0.0.1:{args.api_port}  (/docs need a token, or LEANOPS_API_DOCS_PUBLIC=true)",
                  f"Workspace  {home} (id {doc['workspace_id']})"]
        if demo is not None:
            lines.append(f"Demo       building in the background (log: {logs['demo']})")
        lines += ["", "Stop       press Ctrl-C"]
        print(box(lines), flush=True)
        reported = demo is None
        while True:
            if api.poll() is not None or ui.poll() is not None:
                which, proc = ("the API", api) if api.poll() is not None else ("the dashboard", ui)
                raise Stop(f"{which} exited (exit {proc.returncode}): "
                           f"{last_line(logs['api' if proc is api else 'dashboard'])}")
            if not reported and demo is not None and demo.poll() is not None:
                reported = True
                print(f"demo: {'ready' if demo.returncode == 0 else 'FAILED'}: {last_line(logs['demo'])}", flush=True)
            time.sleep(0.5)
    except Stop as reason:
        print(f"make run: {reason}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\nLeanOps stopped (dashboard and API).", flush=True)
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
