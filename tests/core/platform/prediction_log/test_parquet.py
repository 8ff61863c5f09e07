"""The prediction log's Parquet tier: compaction per model and hour, crash-safe and idempotent; reads of both tiers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Table, func, insert, select

from core.platform import leases
from core.platform.database import transaction
from core.platform.prediction_log import parquet, reads
from core.platform.prediction_log.export import export
from core.platform.prediction_log.writer import Served, input_hash, rows_of
from core.platform.storage import LocalStore
from core.serving.feedback import feedback_for, record_feedback
from db.models import PredictionLog
from tests.support.factories import admin_actor

NOW = datetime(2026, 11, 30, 12, 40, tzinfo=UTC)


def log_rows(factory, *, model: str = "churn", at: datetime, n: int, version: int = 3, wide: bool = False,
             requested_by: str | None = "token:ci") -> list[str]:
    """``n`` single-record requests of ``model`` logged at ``at`` + i seconds; their request ids."""
    items = []
    for i in range(n):
        cols = {"age": np.array([20.5 + i]), "plan": np.array(["basic" if i % 2 else "pro"], dtype=object),
                "n": np.array([i], dtype=np.int64)}
        if wide:
            cols["income"] = np.array([1000.0 * i])
        items.append(Served(parquet.new_request_id(at), at + timedelta(seconds=i), model, "champion",
                            version, cols, [i % 2], 1.5, requested_by))
    with transaction(factory) as session:
        session.execute(insert(cast(Table, PredictionLog.__table__)), rows_of(items))
    return [item.request_id for item in items]


def hot(factory, model: str = "churn") -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(PredictionLog).where(PredictionLog.model == model)) or 0


def compact(factory, store, **kw):
    return parquet.compact(factory, store, actor=admin_actor(), holder="test", scratch=store.root / "tmp",
                           now=NOW, **kw)


def test_closed_hours_move_to_typed_parquet_and_reads_see_both_tiers(factory, tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    old = log_rows(factory, at=NOW - timedelta(hours=3), n=30)
    log_rows(factory, at=NOW - timedelta(hours=2), n=20, model="other")
    recent = log_rows(factory, at=NOW - timedelta(minutes=5), n=10)
    before = reads.window(factory, store, model="churn", since=NOW - timedelta(days=1), until=NOW,
                          features=["age", "plan", "n"])
    result = compact(factory, store)
    assert (result["rows"], result["partitions"], result["files"]) == (50, 2, 2)
    assert hot(factory) == 10 and hot(factory, "other") == 0, "the open hour stays hot, closed hours leave"
    (key,) = parquet.list_files(store, "prediction-log/churn")
    assert key.startswith("prediction-log/churn/2026-11-30/09/")
    schema = pq.read_schema(store.path(key))
    assert {f.name: f.type for f in schema}.items() >= {
        "inputs.age": pa.float64(), "inputs.plan": pa.string(), "inputs.n": pa.int64(), "request_id": pa.string(),
        "record_index": pa.int32(), "version": pa.int32(), "output": pa.int64(), "requested_by": pa.string(),
        "ts": parquet.TS}.items()
    after = reads.window(factory, store, model="churn", since=NOW - timedelta(days=1), until=NOW,
                         features=["age", "plan", "n"])
    pd.testing.assert_frame_equal(after, before, check_dtype=False)
    only_age = reads.window(factory, store, model="churn", since=NOW - timedelta(hours=4),
                            until=NOW - timedelta(hours=2), features=["age"])
    assert list(only_age.columns) == ["ts", "version", "output", "age"] and len(only_age) == 30
    found = reads.lookup(factory, store, request_id=old[7])
    assert [(r["model"], r["record_index"], r["inputs"], r["output"], r["requested_by"]) for r in found] == [
        ("churn", 0, {"age": 27.5, "n": 7, "plan": "basic"}, 1, "token:ci")]
    assert found[0]["input_hash"] == input_hash({"age": 27.5, "n": 7, "plan": "basic"})
    assert reads.lookup(factory, store, request_id=recent[0])[0]["model"] == "churn"
    assert reads.lookup(factory, store, request_id=uuid.uuid4().hex) == []


def test_a_rerun_after_a_crash_between_file_and_delete_duplicates_nothing(factory, tmp_path: Path) -> None:
    """The state a compactor killed after its file was durable leaves: the file, and its rows still hot."""
    store = LocalStore(tmp_path)
    log_rows(factory, at=NOW - timedelta(hours=3), n=40)
    with factory() as session:
        rows = [dict(r._mapping) for r in session.execute(select(PredictionLog.__table__))]
    compact(factory, store)
    with transaction(factory) as session:  # put the rows back, same ids: as if the delete never happened
        session.execute(insert(cast(Table, PredictionLog.__table__)), rows)
    again = compact(factory, store)
    assert (again["rows"], again["files"], again["already_compacted"]) == (0, 0, 40)
    assert hot(factory) == 0 and len(parquet.list_files(store, "prediction-log")) == 1
    frame = reads.window(factory, store, model="churn", since=NOW - timedelta(days=1), until=NOW)
    assert len(frame) == 40
    assert compact(factory, store)["rows"] == 0, "a second run finds nothing to do"


def test_a_version_with_other_columns_gets_its_own_partition(factory, tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    log_rows(factory, at=NOW - timedelta(hours=3), n=5, version=3)
    log_rows(factory, at=NOW - timedelta(hours=3, minutes=-10), n=5, version=4, wide=True)
    compact(factory, store)
    files = parquet.list_files(store, "prediction-log/churn")
    assert len(files) == 2 and len({f.split("/")[4] for f in files}) == 2
    frame = reads.window(factory, store, model="churn", since=NOW - timedelta(days=1), until=NOW,
                         features=["age", "income"])
    assert len(frame) == 10 and frame["income"].isna().sum() == 5


def test_one_compactor_at_a_time(factory, tmp_path: Path) -> None:
    with transaction(factory) as session:
        leases.acquire(session, name=parquet.LEASE, holder="elsewhere", ttl=60)
    with pytest.raises(leases.LeaseHeld):
        compact(factory, LocalStore(tmp_path))


def test_retention_deletes_whole_hours(factory, tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    log_rows(factory, at=NOW - timedelta(hours=5), n=3)
    log_rows(factory, at=NOW - timedelta(hours=3), n=3)
    compact(factory, store)
    assert parquet.drop_partitions(store, before=NOW - timedelta(hours=3, minutes=30)) == 1
    (left,) = parquet.list_files(store, "prediction-log")
    assert "/2026-11-30/09/" in left


def test_a_replay_skips_requests_already_compacted(factory, tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    ids = log_rows(factory, at=NOW - timedelta(hours=3), n=4)
    compact(factory, store)
    items = [Served(rid, NOW - timedelta(hours=3), "churn", "champion", 3, {"age": np.array([1.0])}, [0], 1.0)
             for rid in [*ids[:2], "f" * 32]]
    assert parquet.compacted_request_ids(store, items) == set(ids[:2])


def test_a_window_drift_check_reads_the_partitions_too(factory, tmp_path: Path) -> None:
    from core.monitoring.checks import window_frame

    store = LocalStore(tmp_path)
    log_rows(factory, at=NOW - timedelta(hours=3), n=30)
    log_rows(factory, at=NOW - timedelta(minutes=5), n=10)
    compact(factory, store)
    current = window_frame(factory, model="churn", hours=6, now=NOW, store=store)
    assert len(current.frame) == 40 and sorted(current.frame.columns) == ["age", "n", "plan"]
    assert current.outputs is not None and list(current.outputs[:2]) == [0, 1]
    assert len(window_frame(factory, model="churn", hours=1, now=NOW, store=store).frame) == 10


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_export_writes_both_tiers_one_column_per_input(factory, tmp_path: Path, suffix: str) -> None:
    store = LocalStore(tmp_path / "ws")
    first = log_rows(factory, at=NOW - timedelta(hours=3), n=6, version=3)
    log_rows(factory, at=NOW - timedelta(hours=2), n=4, version=4, wide=True)
    log_rows(factory, at=NOW - timedelta(minutes=5), n=5)
    log_rows(factory, at=NOW - timedelta(hours=2), n=3, model="other")
    compact(factory, store)
    out = tmp_path / f"churn{suffix}"
    result = export(factory, store, actor=admin_actor(), model="churn", out=out)
    assert result == {"path": str(out), "rows": 15}
    frame = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out)
    assert list(frame.columns) == ["request_id", "record_index", "ts", "version", "age", "income", "n", "plan",
                                   "output"]
    assert set(first) <= set(frame["request_id"]) and frame["income"].notna().sum() == 4
    ranged = export(factory, store, actor=admin_actor(), model="churn", out=out,
                    since=NOW - timedelta(hours=2, minutes=30), until=NOW - timedelta(minutes=30))
    assert ranged["rows"] == 4


def test_export_refuses_an_unknown_format(factory, tmp_path: Path) -> None:
    from core.errors import InvalidInput

    with pytest.raises(InvalidInput, match=r"\.parquet or \.csv"):
        export(factory, LocalStore(tmp_path), actor=admin_actor(), model="churn",
               out=tmp_path / "x.json")


def test_cli_export_prints_path_and_rows(factory, settings, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    log_rows(factory, at=NOW - timedelta(hours=3), n=6)
    compact(factory, settings.data_store)
    log_rows(factory, at=NOW - timedelta(minutes=5), n=2)
    env = os.environ | {"LEANOPS_HOME": str(settings.home), "LEANOPS_DB_URL": settings.db_url,
                        "LEANOPS_SCHEDULER": "off"}
    root = Path(__file__).resolve().parents[4]
    out = tmp_path / "out.csv"
    done = subprocess.run([sys.executable, "cli.py", "predictions", "export", "churn", "--since",
                           (NOW - timedelta(hours=4)).isoformat(), "--out", str(out), "--json"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"path": str(out), "rows": 8}
    bad = subprocess.run([sys.executable, "cli.py", "predictions", "export", "churn", "--since", "yesterday",
                          "--out", str(out), "--json"], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--since 'yesterday' is not an ISO date" in json.loads(bad.stdout)["error"]


def test_labelled_predictions_are_found_after_compaction(factory, tmp_path: Path) -> None:
    from core.monitoring import performance
    from db.models import Feedback, utcnow

    store = LocalStore(tmp_path)
    old = log_rows(factory, at=NOW - timedelta(hours=3), n=5)
    recent = log_rows(factory, at=NOW - timedelta(minutes=5), n=2)
    with transaction(factory) as session:
        for rid in [*old[:3], *recent]:
            session.add(Feedback(request_id=rid, record_index=0, model="churn", label=1, created_by="t", ts=utcnow()))
    with factory() as session:
        before = performance.labelled(session, model="churn", store=store)
    compact(factory, store)
    with factory() as session:
        after = performance.labelled(session, model="churn", store=store)
        hot_only = performance.labelled(session, model="churn", store=LocalStore(tmp_path / "elsewhere"))
    assert len(before) == 5 and len(hot_only) == 2
    assert after == before, "the labelled join lost or changed predictions that left the hot table"
    with factory() as session:
        assert len(performance.labelled(session, model="churn", store=store, limit=3)) == 3


def test_rows_that_reuse_the_ids_of_compacted_rows_are_compacted_too(factory, tmp_path: Path) -> None:
    """SQLite hands out the ids of deleted rows again: a record is known by request id and index, not row id."""
    store = LocalStore(tmp_path)
    first = log_rows(factory, at=NOW - timedelta(hours=3), n=5)
    compact(factory, store)
    late = log_rows(factory, at=NOW - timedelta(hours=3, minutes=-30), n=5)  # the same hour, written late
    compact(factory, store)
    frame = reads.window(factory, store, model="churn", since=NOW - timedelta(days=1), until=NOW,
                         meta=("ts", "version", "output", "request_id"))
    assert sorted(frame["request_id"]) == sorted(first + late) and hot(factory) == 0
    assert len(parquet.list_files(store, "prediction-log")) == 2


def test_feedback_for_a_compacted_request_is_stored(factory, tmp_path: Path) -> None:
    """Ground truth often arrives days later, when the request's hour has left the table."""
    from core.errors import NotFound
    from tests.support.factories import make_user

    store = LocalStore(tmp_path)
    ids = log_rows(factory, at=NOW - timedelta(hours=3), n=2, requested_by=None)
    compact(factory, store)
    admin = make_user(factory, "labeller", "admin")
    with transaction(factory) as session:
        with pytest.raises(NotFound):  # another artifact store: only the hot table has something to find
            record_feedback(session, actor=admin, model="churn", request_id=ids[0], labels=[1],
                            store=LocalStore(tmp_path / "elsewhere"))
    with transaction(factory) as session:
        assert record_feedback(session, actor=admin, model="churn", request_id=ids[0], labels=[1],
                               store=store) == 1
    with factory() as session:
        assert feedback_for(session, request_id=ids[0]) == [1]
