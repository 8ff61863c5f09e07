"""Issue 14 (items 2 and 3): the API's trust boundary.

- No answer, log line or stored row shows a store's password, whatever route, name or body is sent
  while the store fails; a 5xx answer names what failed in fixed words and carries a correlation id.
- An impossible model name is a 404 before any store is asked.
- A request without a (known) token is refused before its body is read, and a body over the route's
  limit is refused as it streams in, without being buffered: memory stays flat under 200 MB.
"""

from __future__ import annotations

import gc
import io
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.accounts import auth
from core.actors import ROLES
from core.errors import StoreUnavailable
from core.platform.database import transaction
from db.session import make_engine, make_session_factory
from tests.support.api import bearer, live_server, serving_settings
from tests.support.factories import admin_actor

PASSWORD = "s3cr3t-pw"
FAILING_STORE = f"postgresql+psycopg://leanops:{PASSWORD}@127.0.0.1:9/mlflow"  # port 9 refuses at once
MB = 2**20
CHUNK = b"0" * MB
BAD_NAMES = ["a:b", "x", "no-such-model", "../etc/passwd", "a" * 300, "ünï", "a b", "' or 1=1 --", "-x", "x" * 65,
             "%00", "a.b"]
BAD_BODIES: list[dict[str, Any]] = [
    {}, {"json": {}}, {"json": {"records": [{"a": 1}]}}, {"json": {"request_id": "abc", "labels": [1]}},
    {"json": {"version": 1, "reason": "x", "force": True}}, {"json": {"dataset": "churn", "target": "churn"}},
    {"content": b"\x00\xff{not json", "headers": {"content-type": "application/json"}},
    {"files": {"file": ("x.csv", io.BytesIO(b"a,b\n1,2\n"), "text/csv")}},
]
UNLOGGED = ("mlflow", "uvicorn", "uvicorn.error", "uvicorn.access", "alembic")  # loggers that do not propagate


@pytest.fixture
def fast_failing_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow retries a database it cannot reach 10 times with doubling waits (about 100 s) before it gives
    up, so a predict on an unreachable PostgreSQL hangs that long; one attempt here, the same failure."""
    from mlflow.store.db import utils as mlflow_db_utils

    monkeypatch.setattr(mlflow_db_utils, "MAX_RETRY_COUNT", 1)


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of the process, also of the loggers that do not propagate to the root."""
    caplog.set_level(logging.DEBUG)
    added = []
    for name in UNLOGGED:
        logger = logging.getLogger(name)
        if caplog.handler not in logger.handlers:
            logger.addHandler(caplog.handler)
            added.append(logger)
    yield caplog
    for logger in added:
        logger.removeHandler(caplog.handler)


def _tokens(factory) -> dict[str, str]:
    with transaction(factory) as session:
        return {role: auth.create_token(session, actor=admin_actor(), role=role, name=f"tb-{role}")[0]
                for role in ROLES}


@pytest.fixture
def failing(tmp_path: Path, sqlite_url: str, store, fast_failing_store) -> Iterator[tuple[TestClient, dict, Path]]:
    """The API with its MLflow store on an unreachable PostgreSQL (whose password must never show)."""
    settings = serving_settings(tmp_path / "ws", sqlite_url, store, mlflow_uri=FAILING_STORE)
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    tokens = _tokens(factory)
    with TestClient(create_app(settings, factory=factory)) as client:  # any exception escaping the app fails
        yield client, tokens, Path(settings.db_url.removeprefix("sqlite:///"))
    engine.dispose()


def _operations(client: TestClient) -> list[tuple[str, str]]:
    schema = client.app.openapi()  # type: ignore[attr-defined]
    return [(method.upper(), path) for path, item in schema["paths"].items() for method in item
            if method in {"get", "post", "put", "patch", "delete"}]


def _fill(path: str, name: str) -> str:
    return path.replace("{name}", name).replace("{job_id}", "1" if name == "x" else name)


def _assert_clean(answer: httpx.Response, where: str) -> None:
    assert PASSWORD not in answer.text, where
    if answer.status_code >= 500 and "/health/ready" in where:  # a probe's "not yet", not an error
        doc = answer.json()
        assert doc["status"] == "starting" and set(doc) <= {"status", "detail", "models", "workspace"}, (where, doc)
        assert "://" not in answer.text and "127.0.0.1" not in answer.text, where
    elif answer.status_code >= 500:
        doc = answer.json()
        assert set(doc) == {"detail", "correlation_id"}, (where, doc)
        assert len(doc["correlation_id"]) == 32 and doc["correlation_id"] in doc["detail"]
        assert "://" not in answer.text and "Traceback" not in answer.text and "127.0.0.1" not in answer.text, where


def test_no_answer_log_line_or_row_shows_the_password_of_a_failing_store(failing, all_logs, capfd) -> None:
    client, tokens, db_path = failing
    operations = _operations(client)
    assert {("POST", "/v1/models/{name}/predict"), ("POST", "/v1/models/{name}/feedback"),
            ("POST", "/v1/models/{name}/promote"), ("POST", "/v1/models/{name}/rollback"),
            ("POST", "/v1/datasets/{name}/versions"), ("POST", "/v1/training-jobs"),
            ("GET", "/v1/jobs/{job_id}"), ("GET", "/metrics")} <= set(operations)
    statuses: dict[int, int] = {}
    correlation_ids = []
    for role in ("viewer", "admin"):
        for method, path in operations:
            names = BAD_NAMES if "{" in path else [""]
            for name in names:
                for body in BAD_BODIES:
                    if "files" in body:
                        body["files"]["file"][1].seek(0)
                    answer = client.request(method, _fill(path, name), headers=bearer(tokens[role])
                                            | body.get("headers", {}),
                                            **{k: v for k, v in body.items() if k != "headers"})
                    _assert_clean(answer, f"{role} {method} {_fill(path, name)} {body}")
                    statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                    if answer.status_code >= 500 and path != "/health/ready":  # the probe's "starting" has none
                        correlation_ids.append(answer.json()["correlation_id"])
    assert statuses.get(503), f"the failing store was never reached: {statuses}"
    assert not statuses.get(500), statuses
    # the whole exception went to the log under its correlation id, redacted
    assert any(correlation_ids[0] in r.getMessage() for r in all_logs.records)
    client.app.state.runtime.writer.drain(10)
    logged = all_logs.text + "".join(f"{r.getMessage()} {r.exc_text or ''}" for r in all_logs.records)
    assert PASSWORD not in logged
    out, err = capfd.readouterr()
    assert PASSWORD not in out + err
    for file in db_path.parent.glob(db_path.name + "*"):  # the database, its WAL: every stored row
        assert PASSWORD.encode() not in file.read_bytes(), file


def test_a_failing_metadata_database_is_a_503_without_its_password(tmp_path: Path, store, all_logs) -> None:
    settings = serving_settings(tmp_path / "ws", f"postgresql+psycopg://leanops:{PASSWORD}@127.0.0.1:9/leanops",
                                store)
    with TestClient(create_app(settings)) as client:
        for method, path in (("POST", "/v1/models/x/predict"), ("POST", "/v1/models/x/feedback"),
                             ("GET", "/metrics"), ("POST", "/v1/training-jobs"), ("GET", "/v1/jobs/1")):
            answer = client.request(method, path, json={"records": [{"a": 1}]}, headers=bearer("lo_some-token"))
            assert answer.status_code == 503, answer.text
            _assert_clean(answer, path)
            assert "metadata database" in answer.json()["detail"]
            assert client.request(method, path, json={}).status_code == 401
    assert PASSWORD not in all_logs.text


def test_a_store_error_naming_its_uri_reaches_neither_the_client_nor_the_log(client: TestClient, tokens: dict,
                                                                             all_logs, monkeypatch) -> None:
    async def broken(name: str, alias: str) -> Any:
        raise StoreUnavailable(f"the MLflow store is unavailable: cannot connect to {FAILING_STORE}")

    monkeypatch.setattr(client.app.state.runtime.predictor, "model", broken)
    answer = client.post("/v1/models/churn/predict", json={"records": [{"a": 1}]}, headers=bearer(tokens["viewer"]))
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    _assert_clean(answer, "predict")
    assert answer.json()["detail"].startswith("the model registry (MLflow) is unavailable; try again later")
    assert PASSWORD not in all_logs.text and "leanops:***@127.0.0.1:9/mlflow" in all_logs.text


def test_messages_hide_url_passwords() -> None:
    from core.errors import redact, safe_url

    assert PASSWORD not in str(StoreUnavailable(f"cannot reach {FAILING_STORE}"))
    assert safe_url(FAILING_STORE) == "postgresql+psycopg://leanops:***@127.0.0.1:9/mlflow"
    assert safe_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert redact("host=db password=hunter22 user=u") == "host=db password=*** user=u"
    assert redact("token is s3cr3t%2Bpw or s3cr3t+pw", ["s3cr3t+pw"]) == "token is *** or ***"


@pytest.mark.parametrize("name", ["a:b", "-x", "x" * 65, "a b", "ünï", "a.b:c"])
def test_an_impossible_model_name_is_a_404_before_any_store_is_asked(failing, name: str) -> None:
    client, tokens, _ = failing
    for route, body in (("predict", {"records": [{"a": 1}]}), ("feedback", {"request_id": "abc", "labels": [1]}),
                        ("promote", {"version": 1}), ("rollback", {})):
        answer = client.post(f"/v1/models/{name}/{route}", json=body, headers=bearer(tokens["admin"]))
        assert answer.status_code == 404, (route, answer.text)  # the failing store would have said 503
        assert "no model can be named" in answer.json()["detail"]


# -- bodies: nothing read before the token, nothing buffered over the limit ------------------------------

@contextmanager
def peak_rss_growth() -> Iterator[dict[str, float]]:
    """The largest growth of this process' resident memory (server and client share it) while inside."""
    gc.collect()
    process = psutil.Process()
    base = process.memory_info().rss
    peak, stop, out = [base], threading.Event(), {"mb": 0.0}

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            stop.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield out
    finally:
        stop.set()
        sampler.join()
        out["mb"] = (peak[0] - base) / MB


class Stream:
    """``total`` bytes in 1 MB chunks (the same chunk, so the client holds nothing); counts what was taken."""

    def __init__(self, total_mb: int = 200, prefix: bytes = b"") -> None:
        self.total_mb, self.prefix, self.sent = total_mb, prefix, 0

    def __iter__(self) -> Iterator[bytes]:
        if self.prefix:
            yield self.prefix
        for _ in range(self.total_mb):
            self.sent += 1
            yield CHUNK


def _send(url: str, stream: Stream, headers: dict[str, str]) -> tuple[httpx.Response, float, float]:
    started = time.monotonic()
    with peak_rss_growth() as grown:
        answer = httpx.post(url, content=iter(stream), headers=headers, timeout=60)
    return answer, time.monotonic() - started, grown["mb"]


@pytest.fixture
def limited(tmp_path: Path, sqlite_url: str, store) -> Iterator[tuple[str, dict]]:
    """A live server with small limits: predict 4 MB, uploads 4 MB (JSON control routes: 1 MB)."""
    settings = serving_settings(tmp_path / "ws", sqlite_url, store, predict_max_mb=4, max_upload_mb=4)
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    tokens = _tokens(factory)
    with live_server(create_app(settings, factory=factory)) as url:
        yield url, tokens
    engine.dispose()


@pytest.mark.parametrize("token", [None, "lo_not-a-token"])
def test_no_token_is_refused_before_a_huge_body_is_read(limited, token: str | None) -> None:
    url, _ = limited
    stream = Stream(200)
    answer, seconds, grown = _send(f"{url}/v1/models/x/feedback", stream,
                                   {"content-type": "application/json"} | (bearer(token) if token else {}))
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"
    assert seconds < 10 and grown < 40, (seconds, grown)
    assert stream.sent < 200, "the server read the whole body"


@pytest.mark.parametrize(("path", "kind", "limit_words"), [
    ("/v1/models/x/feedback", "json", "over 1 MB"),
    ("/v1/training-jobs", "json", "over 1 MB"),
    ("/v1/models/x/promote", "json", "over 1 MB"),
    ("/v1/models/x/rollback", "json", "over 1 MB"),
    ("/v1/models/x/predict", "json", "over 4 MB"),
    ("/v1/datasets/churn/versions", "upload", "over 4 MB"),
])
@pytest.mark.parametrize("declared", [False, True], ids=["streamed", "content-length"])
def test_a_body_over_the_route_limit_is_413_without_being_buffered(limited, path: str, kind: str, limit_words: str,
                                                                   declared: bool) -> None:
    url, tokens = limited
    headers = bearer(tokens["admin"]) | {"content-type": "application/json"}
    prefix = b""
    if kind == "upload":
        headers["content-type"] = "multipart/form-data; boundary=XyZ"
        prefix = (b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
                  b"Content-Type: text/csv\r\n\r\n")
    stream = Stream(200, prefix)
    if declared:
        headers["content-length"] = str(len(prefix) + 200 * MB)
    answer, seconds, grown = _send(url + path, stream, headers)
    assert answer.status_code == 413, answer.text
    assert limit_words in answer.json()["detail"]
    assert seconds < 20 and grown < 40, (seconds, grown)
    assert stream.sent < 200, "the server read the whole body"
    if declared:
        assert str(200 * MB + len(prefix)) in answer.json()["detail"]


def test_bodies_within_the_limits_still_work(limited) -> None:
    url, tokens = limited
    with httpx.Client(base_url=url, headers=bearer(tokens["scientist"]), timeout=30) as client:
        big_feedback = {"request_id": "abc", "labels": [1] * 100_000}  # ~300 KB of JSON
        assert client.post("/v1/models/x/feedback", json=big_feedback).status_code == 404  # no such prediction
        csv = b"a,b\n" + b"1,2\n" * 500_000  # 2 MB: under the 4 MB upload limit
        answer = client.post("/v1/datasets/small/versions", files={"file": ("small.csv", csv, "text/csv")})
        assert answer.status_code == 201, answer.text
        assert client.get("/health").status_code == 200  # keep-alive connection still usable


def test_the_routes_with_limits_of_their_own_exist(app) -> None:
    from api import boundary

    paths = set(app.openapi()["paths"])
    assert {boundary.PREDICT_ROUTE, boundary.UPLOAD_ROUTE} <= paths


def test_predict_limit_follows_the_batch_limit(tmp_path: Path, sqlite_url: str, store) -> None:
    from api import boundary

    def limit(**overrides: Any) -> int:
        return boundary.predict_limit_mb(serving_settings(tmp_path, sqlite_url, store, **overrides))

    assert limit() == 20  # 10,000 records × 2 KB
    assert limit(serving_batch_limit=100) == boundary.PREDICT_MIN_MB
    assert limit(serving_batch_limit=100_000) == 196
    assert limit(serving_batch_limit=100_000, max_upload_mb=50) == 50
    assert limit(predict_max_mb=3) == 3


DOCS = ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")


def test_health_needs_no_token_and_the_docs_need_one(client: TestClient, tokens: dict) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    for path in DOCS:
        refused = client.get(path)
        assert refused.status_code == 401, path
        assert "Authorization: Bearer" in refused.json()["detail"] and "paths" not in refused.text
        assert client.get(path, headers=bearer("lo_unknown-token")).status_code == 401, path
        assert client.get(path, headers=bearer(tokens["viewer"])).status_code == 200, path
    assert "/v1/models/{name}/predict" in client.get("/openapi.json", headers=bearer(tokens["viewer"])).json()["paths"]
    assert client.get("/nope").status_code == 401  # unknown paths are behind the token too


def test_a_setting_opens_the_docs_to_browsers(tmp_path: Path, sqlite_url: str, store) -> None:
    settings = serving_settings(tmp_path / "ws", sqlite_url, store, api_docs_public=True)
    engine = make_engine(settings.db_url)
    with TestClient(create_app(settings, factory=make_session_factory(engine))) as client:
        for path in DOCS:
            assert client.get(path).status_code == 200, path
        assert client.get("/metrics").status_code == 401  # only the docs are opened
    engine.dispose()
