"""Live performance reads stay bounded by what is shown, however long labels have been arriving (issue 29).

Ninety days of hourly partitions, every hour labelled: the Overview's verdict (``performance.evaluate``) and
the Drift page's chart (``performance.chart``) read the newest hours only, counted by the prediction log's
own counter of files read and folders listed (``parquet.counting``), not timed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow.parquet as pq
import pytest
from sqlalchemy import insert, update

from core import policy
from core.monitoring import performance
from core.platform.database import transaction
from core.platform.prediction_log import parquet
from core.platform.prediction_log.writer import Served, rows_of
from core.platform.storage import LocalStore
from db.models import Feedback, TrainingRun
from tests.support.performance import add_run

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
DAYS, PER_HOUR = 90, 4
WINDOW = 100
CHART = 400  # labels a chart scores


class _Row:
    """A hot-tier row as ``parquet.to_tables`` reads one (the compactor's own conversion)."""

    def __init__(self, row: dict) -> None:
        self.__dict__.update(row)


@pytest.fixture(scope="module")
def partitions(tmp_path_factory) -> tuple[LocalStore, list[dict]]:
    """PER_HOUR labelled predictions in every hour of the last DAYS days (v1 until two days ago, then v2), each
    hour written as the compactor writes it (one file sorted by request id under its hour's folder); and the
    labels, as rows of the feedback table. Written once for both databases."""
    store = LocalStore(tmp_path_factory.mktemp("artifacts"))
    rng = np.random.default_rng(7)
    feedback = []
    start = NOW - timedelta(days=DAYS)
    for h in range(DAYS * 24):
        at = start + timedelta(hours=h)
        version = 1 if at < NOW - timedelta(days=2) else 2
        items = []
        for i in range(PER_HOUR):
            when = at + timedelta(minutes=10 * i)
            label = int(rng.integers(0, 2))
            output = label if rng.random() < 0.8 else 1 - label
            items.append(Served(parquet.new_request_id(when), when, "m", "champion", version,
                                {"x": np.array([float(i)])}, [output], 1.0, "token:ci"))
            feedback.append({"request_id": items[-1].request_id, "record_index": 0, "model": "m", "label": label,
                             "created_by": "sam"})
        rows = [_Row({"id": h * PER_HOUR + n, **r}) for n, r in enumerate(rows_of(items))]
        for table in parquet.to_tables(rows):
            table = table.sort_by([("request_id", "ascending")])
            path = store.path(f"{parquet.hour_prefix('m', at)}/{parquet.schema_id(table)}/part-{h}.parquet")
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
    return store, feedback


@pytest.fixture
def store(factory, partitions) -> LocalStore:
    store, feedback = partitions
    add_run(factory, version=1, metrics={"accuracy": 0.8, "f1": 0.8})
    add_run(factory, version=2, metrics={"accuracy": 0.8, "f1": 0.8})
    with transaction(factory) as session:  # v2 was trained three days ago, v1 long before
        session.execute(update(TrainingRun).where(TrainingRun.model_version == 2)
                        .values(started_at=NOW - timedelta(days=3)))
        session.execute(update(TrainingRun).where(TrainingRun.model_version == 1)
                        .values(started_at=NOW - timedelta(days=DAYS + 1)))
        session.execute(insert(Feedback), feedback)
    return store


def _rules() -> policy.ModelPolicy:
    base = policy.ModelPolicy().model_dump()
    base["performance"] |= {"window": WINDOW, "min_labels": 20}
    return policy.ModelPolicy.model_validate(base)


def test_verdict_and_chart_read_the_newest_hours_only(factory, store) -> None:
    assert len(parquet.list_files(store, "prediction-log/m")) == DAYS * 24
    with factory() as session, parquet.counting() as verdicts:
        v2 = performance.evaluate(session, model="m", version=2, rules=_rules(), store=store)
        v1 = performance.evaluate(session, model="m", version=1, rules=_rules(), store=store)
    assert (v2.labels, v1.labels) == (WINDOW, WINDOW), "each window full of its own version's labels"
    # v2's window is its last 25 hours; v1's the 25 hours before v2 took over, found by walking back through
    # v2's two days: neither reads further back than what it shows, out of 2,160 hourly files.
    hours = WINDOW // PER_HOUR
    assert len(verdicts.files) <= (hours + 2) + (48 + hours + 2), len(verdicts.files)
    with factory() as session, parquet.counting() as chart:
        drawn = performance.chart(session, model="m", rules=_rules(), store=store, labels=CHART)
    assert drawn.labels == CHART and not drawn.complete, "the chart says it leaves older labels out"
    assert drawn.since is not None and drawn.since >= NOW - timedelta(hours=CHART // PER_HOUR + 2)
    assert {p.version for p in drawn.points} == {1, 2}
    assert len(chart.files) <= CHART // PER_HOUR + 3, len(chart.files)
    assert chart.listings <= 2 * (CHART // PER_HOUR + 3)

    # what the walk back returns is the newest window a fuller read (the last four days, every file) gives
    with factory() as session:
        fuller = performance.labelled(session, model="m", store=store, since=NOW - timedelta(days=4))
        newest = performance.labelled(session, model="m", store=store, limit=WINDOW)
        of_v1 = performance.labelled(session, model="m", store=store, version=1, limit=WINDOW)
    assert len(fuller) == 4 * 24 * PER_HOUR
    assert newest == fuller[:WINDOW]
    assert of_v1 == [row for row in fuller if row[1] == 1][:WINDOW]
    shown = [row for row in fuller if row[1] == 2][:WINDOW]
    assert v2.metrics == performance.score("classification", [r[3] for r in shown], [r[2] for r in shown])
