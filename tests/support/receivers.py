"""Local stand-ins for the outside services alerts go to: an HTTP receiver and an SMTP server.

Both speak the real protocol (HTTP/1.1 over a socket, SMTP via aiosmtpd), record what they get,
and can be used from tests or run as a script for the demo::

    python -m tests.support.receivers --http-port 8765 --smtp-port 8025 --out DIR

writes each received request to ``DIR/http-<n>.json`` and each mail to ``DIR/mail-<n>.eml``.

The HTTP receiver answers 200 by default (a 3xx answer redirects to ``/redirected<path>``).
``answer(prefix, 500)`` makes paths starting with
``prefix`` answer 500; ``answer(prefix, "hang")`` makes them hold the request without answering
(until ``hang_seconds`` pass or the receiver stops), so a client's timeout fires. Paths
``/status/<code>…`` and ``/hang…`` do the same without configuration (handy from the script).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.net import free_port


@dataclass(frozen=True)
class Received:
    """One HTTP request as it arrived."""

    method: str
    path: str
    headers: Message  # case-insensitive: headers["X-LeanOps-Signature"]
    body: bytes
    answered: int | str

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """A threaded HTTP server on 127.0.0.1 that records every request (any method, any path)."""

    def __init__(self, port: int = 0, *, out: Path | None = None, hang_seconds: float = 30.0) -> None:
        self.requests: list[Received] = []
        self.hang_seconds = hang_seconds
        self.out = out
        self._answers: dict[str, int | str] = {}
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                answer = receiver._answer_for(self.path)
                receiver._record(Received(self.command, self.path, self.headers, body, answer))
                if answer == "hang":
                    receiver._stopping.wait(receiver.hang_seconds)
                    self.close_connection = True
                    return
                reply = b'{"ok":true}' if answer < 400 else b'{"error":"receiver told to fail"}'
                self.send_response(int(answer))
                if 300 <= int(answer) < 400:  # a redirect: to /redirected<path> on this receiver
                    self.send_header("Location", f"/redirected{self.path}")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_POST = do_GET = do_PUT = _handle  # noqa: N815 - http.server's naming

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-receiver", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, prefix: str, how: int | str) -> None:
        """Paths starting with ``prefix`` get status ``how`` (an int) or ``"hang"``."""
        self._answers[prefix] = how

    def _answer_for(self, path: str) -> int | str:
        for prefix in sorted(self._answers, key=len, reverse=True):
            if path.startswith(prefix):
                return self._answers[prefix]
        if path.startswith("/hang"):
            return "hang"
        if path.startswith("/status/"):
            code = path.split("/")[2]
            return int(code) if code.isdigit() else 400
        return 200

    def _record(self, item: Received) -> None:
        with self._arrived:
            self.requests.append(item)
            n = len(self.requests)
            self._arrived.notify_all()
        if self.out is not None:
            text = item.body.decode(errors="replace")
            (self.out / f"http-{n:04d}.json").write_text(json.dumps(
                {"method": item.method, "path": item.path, "headers": dict(item.headers.items()), "body": text,
                 "answered": item.answered}, indent=2))

    def received(self, path_prefix: str = "") -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def wait_for(self, count: int, path_prefix: str = "", timeout: float = 30.0) -> list[Received]:
        """Wait until ``count`` requests to ``path_prefix`` have arrived (raises TimeoutError if not)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                got = [r for r in self.requests if r.path.startswith(path_prefix)]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(got)} of {count} requests to {path_prefix!r} arrived")
                self._arrived.wait(left)

    def start(self) -> HttpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class _MailHandler:
    out: Path | None
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        msg = message_from_bytes(envelope.content, policy=policy.default)
        with self.arrived:
            self.messages.append(msg)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            n = len(self.messages)
            self.arrived.notify_all()
        if self.out is not None:
            (self.out / f"mail-{n:04d}.eml").write_bytes(envelope.content)
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """An aiosmtpd server on 127.0.0.1 recording every message; optional AUTH LOGIN/PLAIN.

    ``tls`` (an ``ssl.SSLContext`` holding the server's certificate) with ``implicit_tls=False`` offers
    STARTTLS and then takes AUTH only after it; with ``implicit_tls=True`` the port speaks TLS from the
    first byte (SMTPS). Without ``tls``, AUTH is taken in clear. ``attempts`` counts AUTH commands
    that reached the server (in clear or not), so a test can tell that none was even tried.
    """

    def __init__(self, port: int = 0, *, out: Path | None = None, login: tuple[str, str] | None = None,
                 tls: Any = None, implicit_tls: bool = False) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.handler = _MailHandler(out)
        self.logins: list[str] = []
        self.attempts: list[str] = []
        kwargs: dict[str, Any] = {}
        if login is not None:
            def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                self.attempts.append(mechanism)
                user = data.login.decode() if isinstance(data.login, bytes) else data.login
                password = data.password.decode() if isinstance(data.password, bytes) else data.password
                ok = (user, password) == login
                if ok:
                    self.logins.append(user)
                return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535

            # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; with implicit TLS every byte is encrypted
            kwargs = {"authenticator": authenticate, "auth_required": True,
                      "auth_require_tls": tls is not None and not implicit_tls}
        if tls is not None:
            kwargs |= {"ssl_context": tls} if implicit_tls else {"tls_context": tls, "require_starttls": True}
        with warnings.catch_warnings():  # AUTH without TLS is what a local stand-in wants
            warnings.simplefilter("ignore", UserWarning)
            self._controller = Controller(self.handler, hostname="127.0.0.1", port=port or free_port(), **kwargs)

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def messages(self) -> list[EmailMessage]:
        with self.handler.arrived:
            return list(self.handler.messages)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        with self.handler.arrived:
            while len(self.handler.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.handler.messages)} of {count} mails arrived")
                self.handler.arrived.wait(left)
            return list(self.handler.messages)

    def start(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local HTTP and SMTP receivers that write what they get to files")
    parser.add_argument("--http-port", type=int, default=8765)
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    http = HttpReceiver(args.http_port, out=args.out).start()
    smtp = SmtpReceiver(args.smtp_port, out=args.out).start()
    print(json.dumps({"http": http.url("/"), "smtp": f"127.0.0.1:{smtp.port}", "out": str(args.out)}), flush=True)
    try:
        signal.signal(signal.SIGTERM, _interrupt)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        http.stop()
        smtp.stop()


if __name__ == "__main__":
    main()
