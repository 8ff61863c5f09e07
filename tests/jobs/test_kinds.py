"""Job kinds: one JobKind per kind (core: name, permission, attempts), one adapter per kind (jobs: run, clean-up)."""

from __future__ import annotations

import ast

import pytest

from core.accounts.auth import PERMISSIONS
from core.actors import Actor
from core.errors import InvalidInput, PermissionDenied
from core.platform import job_queue
from core.platform.database import transaction
from db.models import Job
from jobs import kinds, runner
from tests.support.paths import ROOT


def test_every_kind_has_one_adapter_and_a_known_permission() -> None:
    assert set(kinds.ADAPTERS) == set(job_queue.KINDS.values())
    assert all(name == kind.name for name, kind in job_queue.KINDS.items())
    assert all(kind.permission in PERMISSIONS and kind.attempts >= 1 for kind in job_queue.KINDS.values())
    assert {k.name for k, a in kinds.ADAPTERS.items() if a.cleanup} == {"train", "retrain"}


def test_the_job_runtime_names_its_code_not_strings_to_import() -> None:
    sources = sorted((ROOT / "jobs").glob("*.py"))
    assert len(sources) >= 5
    for path in sources:
        tree = ast.parse(path.read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "importlib" not in imported, f"{path.relative_to(ROOT)} resolves code from strings"


def test_a_kind_is_queued_by_its_name_with_its_permission(factory) -> None:
    with transaction(factory) as s:
        job = job_queue.enqueue(s, actor=Actor("sam", "scientist"), kind="diagnostic.sleep", params={"seconds": 0})
    assert job.kind == "diagnostic.sleep"
    with pytest.raises(PermissionDenied), transaction(factory) as s:
        job_queue.enqueue(s, actor=Actor("sam", "scientist"), kind="datasets.sweep")
    with pytest.raises(InvalidInput, match="job kind 'nope' is unknown; kinds are: aliases.sync, audit.checkpoint"):
        job_queue.kind_named("nope")


def test_a_row_of_a_kind_this_version_does_not_know_fails_with_the_reason(factory, settings) -> None:
    with transaction(factory) as s:
        job_id = job_queue.enqueue(s, actor=Actor("root", "admin"), kind="diagnostic.sleep").id
        s.get(Job, job_id).kind = "retired.kind"  # a kind an older version queued
    assert runner.run_next(factory, settings, "w1") == job_id
    with factory() as s:
        job = job_queue.get(s, job_id)
    assert job.status == "failed" and "job kind 'retired.kind' is unknown" in job.error
    runner.clean_up(factory, settings, job_id=job_id, kind="retired.kind")  # the reaper's pass does not crash
