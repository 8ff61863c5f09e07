"""Every reader of the prediction log sees the same predictions before and after compaction into S3 (a local
S3 stand-in speaking the real protocol): the S3 branches of the reads (file by file, no local dataset)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from core.actors import system_actor
from core.monitoring import checks, performance
from core.platform.database import transaction
from core.platform.prediction_log import parquet, reads
from core.platform.storage import S3Store
from core.serving import traffic
from core.settings import get_settings
from db.models import Feedback, utcnow
from db.session import make_engine, make_session_factory
from tests.core.platform.prediction_log.test_parquet import NOW, hot, log_rows


def test_readers_see_compacted_predictions_in_s3(db_url: str, tmp_path: Path, s3_server,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"LEANOPS_HOME": str(tmp_path / "ws"), "LEANOPS_DB_URL": db_url, "LEANOPS_SCHEDULER": "off",
           **s3_server.settings_env(s3_server.new_bucket())}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, "")  # get_settings exports these; restored after the test
    store = get_settings().data_store
    assert isinstance(store, S3Store)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    try:
        old = log_rows(factory, at=NOW - timedelta(hours=3), n=20, version=3)
        log_rows(factory, at=NOW - timedelta(hours=2), n=10, model="other")
        recent = log_rows(factory, at=NOW - timedelta(minutes=5), n=3, version=4)
        with transaction(factory) as session:
            for rid in old[:6] + recent:
                session.add(Feedback(request_id=rid, record_index=0, model="churn", label=1, created_by="t",
                                     ts=utcnow()))

        def read() -> dict:
            with factory() as session:
                return {
                    "count": reads.count(session, store=store),
                    "count v3": reads.count(session, store=store, model="churn", version=3),
                    "recent": [(v.request_id, v.inputs, v.output)
                               for v in reads.recent(session, store=store, limit=40)],
                    "lookup": [(v.record_index, v.inputs, v.output)
                               for v in reads.by_request(session, request_id=old[11], store=store)],
                    "traffic": [(t.model, t.served_version, t.requests, t.records)
                                for t in traffic.traffic(session, store=store, window_minutes=240, now=NOW)],
                    "labelled": sorted((v, o, label) for _, v, o, label in
                                       performance.labelled(session, model="churn", store=store)),
                    "window": len(checks.window_frame(factory, model="churn", hours=6, now=NOW, store=store).frame),
                }

        before = read()
        assert (before["count"], before["count v3"], len(before["recent"]), before["window"]) == (33, 20, 33, 23)
        result = parquet.compact(factory, store, actor=system_actor("s3-test"), holder="s3-test",
                                 scratch=tmp_path / "scratch", now=NOW)
        assert result["rows"] == 30 and hot(factory) == 3
        assert read() == before
    finally:
        engine.dispose()
