"""The crash-recovery sweep of the data store runs as the scheduled ``datasets.sweep`` job."""

from __future__ import annotations

import os
import time
from pathlib import Path

from core.actors import system_actor
from core.platform import job_queue, schedules
from core.platform.database import transaction
from core.workspace.bootstrap import init_workspace
from jobs import runner
from tests.support.training import add_dataset, small_churn


def test_the_default_workspace_schedules_the_sweep(factory, settings) -> None:
    init_workspace(factory, settings, demo=False)
    with factory() as session:
        found = {s.name: s for s in schedules.list_schedules(session)}
    assert (found["dataset-sweep"].kind, found["dataset-sweep"].cron) == ("datasets.sweep", "45 4 * * *")


def test_the_sweep_job_removes_only_old_files_no_version_points_at(factory, settings) -> None:
    kept = add_dataset(factory, settings, small_churn())
    folder = Path(settings.home) / "datasets"
    orphan, young = folder / ("f" * 64 + ".parquet"), folder / ("e" * 64 + ".parquet")
    partial = folder / ".tmp-123-x.parquet"
    for path in (orphan, partial, young):
        path.write_bytes(b"left by a killed upload")
    hours_ago = time.time() - 2 * 3600
    for path in (orphan, partial, folder / Path(kept.path).name):
        os.utime(path, (hours_ago, hours_ago))
    with transaction(factory) as s:  # what the schedule does
        job_id = job_queue.enqueue(s, actor=system_actor("schedule:dataset-sweep"), kind="datasets.sweep").id
    while (ran := runner.run_next(factory, settings, "w1")) != job_id:  # the version's follow-up runs first
        assert ran is not None
    with factory() as s:
        job = job_queue.get(s, job_id)
    assert job.status == "succeeded", job.error
    assert job.result == {"temporary": 1, "orphans": [f"datasets/{'f' * 64}.parquet"]}
    assert sorted(p.name for p in folder.iterdir()) == sorted([Path(kept.path).name, young.name])
