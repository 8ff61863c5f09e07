"""A local S3-compatible server for the scale tests: moto's server mode, the real S3 protocol over HTTP.

One server per test session, in its own process (so the workers a test starts reach it like any
S3 endpoint); each test gets a bucket of its own.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.support.net import free_port
from tests.support.s3 import S3Server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    port = free_port()
    # Its request log goes to a file: a pipe nobody reads fills up (64 KB of log lines) and the server then
    # blocks on its next write, so every later S3 call of the session times out.
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto S3 server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
    yield S3Server(f"http://127.0.0.1:{port}")
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()
