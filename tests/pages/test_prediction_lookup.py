"""Prediction lookup on the Audit log page: a request id shows the input, output, version and time of each
record, its feedback, and the report downloads of the version that answered."""

from __future__ import annotations

from pathlib import Path

from core.actors import Actor
from core.platform.database import transaction
from core.platform.prediction_log.writer import input_hash
from core.platform.storage import LocalStore
from core.serving.feedback import record_feedback
from db.models import PredictionLog, utcnow

NO_PARTITIONS = LocalStore(Path(__file__).parent / "no-partitions")  # the rows here stay in the hot table


def log_request(factory, request_id: str) -> None:
    records = [{"customer_age": 41, "plan": "basic"}, {"customer_age": 23, "plan": "pro"}]
    with transaction(factory) as s:
        for i, (record, output) in enumerate(zip(records, ["yes", "no"], strict=True)):
            s.add(PredictionLog(request_id=request_id, record_index=i, ts=utcnow(), model="churn", alias="champion",
                                version=3, input_hash=input_hash(record), inputs=record, output=output,
                                latency_ms=4.2, requested_by="sam"))
    with transaction(factory) as s:
        record_feedback(s, actor=Actor("sam", "scientist"), model="churn", request_id=request_id,
                        labels=["yes", "yes"], store=NO_PARTITIONS)


def test_lookup_shows_records_version_feedback_and_report_buttons(open_page, factory):
    log_request(factory, "req-42")
    log_request(factory, "req-43")
    at = open_page("app_pages/audit.py", role="viewer")
    at.text_input(key="lookup-request-id").input("req-42").run()
    assert not at.exception
    assert any("**churn** version **3**" in m.value and "2 record(s)" in m.value for m in at.markdown)
    table = at.dataframe[-1].value
    assert list(table["output"]) == ["yes", "no"] and list(table["feedback"]) == ["yes", "yes"]
    assert table["input"].iloc[0] == {"customer_age": 41, "plan": "basic"}
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download compliance report (PDF)" in labels and "Download compliance report (JSON)" in labels


def test_unknown_request_id_says_so(open_page, factory):
    log_request(factory, "req-42")
    at = open_page("app_pages/audit.py", role="viewer")
    at.text_input(key="lookup-request-id").input("nope").run()
    assert "No prediction with request id 'nope'" in at.info[0].value
    assert not at.get("download_button")
