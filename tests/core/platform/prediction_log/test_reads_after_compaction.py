"""Every reader of the prediction log sees the same predictions before and after compaction (issue 17 item 3).

Compaction moves closed hours out of the hot table; a reader of the table alone would then say "no
predictions" where the partitions hold a day of them. Each test logs, reads, compacts, reads again.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest

from core.monitoring import checks, performance
from core.platform.database import transaction
from core.platform.prediction_log import parquet, reads, retention
from core.platform.prediction_log.writer import rows_of
from core.platform.storage import LocalStore
from core.serving import traffic
from core.serving.feedback import feedback_for
from db.models import Feedback, utcnow
from tests.core.platform.prediction_log.test_parquet import NOW, compact, hot, log_rows


def _seen(views: list[reads.PredictionView]) -> list[tuple]:
    return [(v.request_id, v.record_index, v.ts.replace(tzinfo=None), v.model, v.version, v.inputs, v.output)
            for v in views]


@pytest.fixture
def logged(factory) -> dict[str, list[str]]:
    """Two models over three hours: churn v3 three hours ago, churn v4 two hours ago, other one hour ago,
    and a few churn v4 predictions in the open hour (they stay hot)."""
    return {"v3": log_rows(factory, at=NOW - timedelta(hours=3), n=30, version=3),
            "v4": log_rows(factory, at=NOW - timedelta(hours=2), n=20, version=4),
            "other": log_rows(factory, at=NOW - timedelta(hours=1, minutes=30), n=7, model="other"),
            "hot": log_rows(factory, at=NOW - timedelta(minutes=5), n=4, version=4)}


def test_counts_recent_and_lookups_are_the_same_after_compaction(factory, tmp_path: Path, logged) -> None:
    store = LocalStore(tmp_path)

    def read() -> dict:
        with factory() as session:
            return {
                "all": reads.count(session, store=store),
                "churn": reads.count(session, store=store, model="churn"),
                "churn v3": reads.count(session, store=store, model="churn", version=3),
                "churn v4": reads.count(session, store=store, model="churn", version=4),
                "recent 10": _seen(reads.recent(session, store=store, limit=10)),
                "recent other": _seen(reads.recent(session, store=store, model="other", limit=50)),
                "recent all": _seen(reads.recent(session, store=store, limit=100)),
                "lookup": _seen(reads.by_request(session, request_id=logged["v3"][4], store=store)),
            }

    before = read()
    assert (before["all"], before["churn"], before["churn v3"], before["churn v4"]) == (61, 54, 30, 24)
    assert len(before["recent all"]) == 61 and len(before["recent other"]) == 7
    result = compact(factory, store)
    assert result["rows"] == 57 and hot(factory) == 4 and hot(factory, "other") == 0
    after = read()
    assert after == before, "a reader lost or changed predictions that left the hot table"
    assert [r[0] for r in after["recent 10"][:4]] == logged["hot"][::-1], "newest first, the open hour on top"


def test_everything_compacted_still_shows_on_the_overview(factory, tmp_path: Path) -> None:
    """A model quiet for an hour has no row left in the table: its newest predictions, the version it served
    and its traffic over a longer window come from the partitions."""
    store = LocalStore(tmp_path)
    ids = log_rows(factory, at=NOW - timedelta(hours=2), n=12, version=5)
    with factory() as session:
        before = traffic.traffic(session, store=store, window_minutes=180, now=NOW)
        newest = _seen(traffic.recent_predictions(session, store=store, limit=5))
    compact(factory, store)
    assert hot(factory) == 0
    with factory() as session:
        after = traffic.traffic(session, store=store, window_minutes=180, now=NOW)
        assert _seen(traffic.recent_predictions(session, store=store, limit=5)) == newest
        assert traffic.traffic(session, store=store, window_minutes=15, now=NOW) == []
    assert [(t.model, t.served_version, t.requests, t.records) for t in after] == [("churn", 5, 12, 12)]
    assert after == before
    assert [row[0] for row in newest] == ids[::-1][:5]


def test_live_performance_and_the_drift_window_read_the_partitions(factory, tmp_path: Path, logged) -> None:
    store = LocalStore(tmp_path)
    with transaction(factory) as session:
        for rid in logged["v3"][:20] + logged["hot"]:
            session.add(Feedback(request_id=rid, record_index=0, model="churn", label=1, created_by="t",
                                 ts=utcnow()))

    def read() -> tuple:
        with factory() as session:
            pairs = performance.labelled(session, model="churn", store=store)
        frame = checks.window_frame(factory, model="churn", hours=6, now=NOW, store=store).frame
        return len(pairs), sorted(p[1] for p in pairs), len(frame), sorted(frame["age"])

    before = read()
    assert before[0] == 24 and before[2] == 54
    compact(factory, store)
    assert read() == before


def test_retention_keeps_the_labels_of_compacted_predictions(factory, tmp_path: Path) -> None:
    """Labels of a prediction not in the table used to count as orphans: retention deleted every label of every
    compacted prediction, however young. Only those of predictions older than the cutoff go now."""
    from tests.support.factories import admin_actor

    store = LocalStore(tmp_path)
    young = log_rows(factory, at=NOW - timedelta(hours=3), n=3)
    old = log_rows(factory, at=NOW - timedelta(days=3), n=2)
    with transaction(factory) as session:
        for rid in young + old + ["legacy-id-with-no-time"]:
            session.add(Feedback(request_id=rid, record_index=0, model="churn", label=1, created_by="t",
                                 ts=utcnow()))
    compact(factory, store)
    assert hot(factory) == 0
    done = retention.purge(factory, actor=admin_actor(), days=1, now=NOW)
    assert done["feedback"] == 2, "only the labels of the predictions older than a day go"
    parquet.drop_partitions(store, before=NOW - timedelta(days=1))
    with factory() as session:
        kept = performance.labelled(session, model="churn", store=store)
        assert sorted(feedback_for(session, request_id=rid) for rid in young) == [[1]] * 3
        assert feedback_for(session, request_id="legacy-id-with-no-time") == [1]
    assert len(kept) == 3


def test_shadow_pairs_are_the_same_after_compaction(factory, tmp_path: Path) -> None:
    """The challenger's shadow comparison pairs its rows with the champion's answers to the same records; a
    challenger runs for days, so most pairs are compacted by the time it is judged."""
    import numpy as np
    from sqlalchemy import Table, insert

    from core.platform.prediction_log.writer import Served
    from db.models import PredictionLog

    store = LocalStore(tmp_path)
    items = []
    for hours_ago, n in ((3, 8), (0.1, 3)):
        at = NOW - timedelta(hours=hours_ago)
        for i in range(n):
            rid = parquet.new_request_id(at)
            cols = {"age": np.array([30.0 + i, 40.0 + i]), "plan": np.array(["basic", "pro"], dtype=object)}
            items.append(Served(rid, at, "churn", "champion", 3, cols, [i % 2, 1], 2.0))
            items.append(Served(rid, at, "churn", "shadow", 4, cols, [1, 1], 5.0))
    items.append(Served(parquet.new_request_id(NOW), NOW - timedelta(hours=3), "churn", "shadow", 4,
                        {"age": np.array([1.0]), "plan": np.array(["x"], dtype=object)}, [0], 5.0))  # no champion row
    with transaction(factory) as session:
        session.execute(insert(cast(Table, PredictionLog.__table__)), rows_of(items))
        session.add(Feedback(request_id=items[0].request_id, record_index=1, model="churn", label=0, created_by="t",
                             ts=utcnow()))

    def pairs(since=None) -> list:
        with factory() as session:
            found = reads.shadow_pairs(session, store, model="churn", champion=3, challenger=4,
                                       since=since, limit=1000)
        return sorted(found, key=lambda row: (row[1], str(row[4]), str(row[6])))

    before = pairs()
    assert len(before) == 22 and sum(row[6] is not None for row in before) == 1
    compact(factory, store)
    assert hot(factory) == 12
    after = pairs()
    assert [(r[1], r[2], r[3], r[4], r[5], r[6]) for r in after] == [(r[1], r[2], r[3], r[4], r[5], r[6])
                                                                     for r in before]
    assert len(pairs(since=NOW - timedelta(hours=1))) == 6
    with factory() as session:
        newest = reads.shadow_pairs(session, store, model="churn", champion=3, challenger=4, since=None,
                                    limit=5)
    assert len(newest) == 5 and min(r[0] for r in newest) >= max(r[0] for r in after if r[0] not in
                                                                 {n[0] for n in newest})
