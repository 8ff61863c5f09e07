"""`make run`'s launcher (launch.py; issue 26 item 9, issue 29 item 2): a port already taken ends the run with
one clear line naming it, before anything is started or written, whoever holds it."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[1]


def _launch(tmp_path: Path, *, port: int, api_port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEANOPS_")}
    env |= {"LEANOPS_HOME": str(tmp_path / "ws"), "LEANOPS_ADMIN_PASSWORD": "launch-pass-123"}
    return subprocess.run([sys.executable, "launch.py", "--port", str(port), "--api-port", str(api_port),
                           "--timeout", "60"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.parametrize("taken", ["dashboard", "API"])
def test_a_taken_port_fails_with_one_line_and_starts_nothing(tmp_path: Path, taken: str) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    held = holder.getsockname()[1]
    try:
        ports = {"port": held, "api_port": free_port()} if taken == "dashboard" else \
            {"port": free_port(), "api_port": held}
        done = _launch(tmp_path, **ports)
    finally:
        holder.close()
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert lines == [f"make run: port {held} (the {taken}) is already in use by another process: stop it, or pick "
                     f"another port (make run {'PORT' if taken == 'dashboard' else 'API_PORT'}=...)"], done.stderr
    assert "LeanOps is running" not in done.stdout
    assert not (tmp_path / "ws").exists()  # checked before anything was made


def test_an_api_port_answered_by_another_server_is_never_taken_for_ours(tmp_path: Path) -> None:
    """Whatever answers readiness on the API's port must name this workspace's id: a server that took the port
    after the check (here: one that answers /health/ready with 200 and another id) is refused, in one line."""

    class Impostor(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = b'{"status": "ready", "models": {}, "workspace": "0000000000000000"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    import launch

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(launch.Stop, match=r"^port \d+ answers for another workspace \(0000000000000000, "
                                              r"expected 1234567890abcdef\)"):
            launch.wait_ready(api=api, ui=api, api_port=server.server_address[1], port=free_port(),
                              workspace="1234567890abcdef", logs={"api": tmp_path / "a", "dashboard": tmp_path / "d"},
                              timeout=30)
    finally:
        api.kill()
        api.wait()
        server.shutdown()
