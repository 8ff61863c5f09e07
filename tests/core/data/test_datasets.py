"""Dataset versions on both backends: register, identical content, resolve, load, list, diff, lineage."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.actors import Actor
from core.data import datasets, lineage, schemas
from core.errors import IntegrityError, InvalidInput, NotFound, PermissionDenied
from core.platform.database import transaction
from db.models import AuditEvent, Dataset, DatasetSchema, DatasetVersion

ALICE = Actor("alice", "scientist")


def churn(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.integers(18, 80, rows),
        "charges": rng.normal(60, 15, rows).round(2),
        "plan": rng.choice(["basic", "pro", "team"], rows),
        "churn": rng.integers(0, 2, rows),
    })


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def register(factory: sessionmaker[Session], settings, data, *, name: str = "churn", actor: Actor = ALICE,
             filename: str = "churn.csv", **kwargs) -> datasets.Registration:
    with transaction(factory) as session:
        return datasets.register(session, actor=actor, name=name, data=data, filename=filename,
                                 store=settings.home, source=f"test:{filename}", **kwargs)


def stored_files(settings) -> list[str]:
    folder = Path(settings.home) / "datasets"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def events(factory: sessionmaker[Session], action: str) -> list[AuditEvent]:
    with factory() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)))


def test_first_version_is_stored_certified_profiled_and_audited(factory, settings) -> None:
    reg = register(factory, settings, csv_bytes(churn()))
    v = reg.version
    assert reg.created and reg.certificate.passed
    assert (v.name, v.version, v.rows, v.columns) == ("churn", 1, 300, ["age", "charges", "plan", "churn"])
    assert v.dtypes == {"age": "int64", "charges": "float64", "plan": "object", "churn": "int64"}
    assert v.path == f"datasets/{v.sha256}.parquet" and v.file(settings).is_file()
    assert v.size_bytes == v.file(settings).stat().st_size
    assert (v.parent_version, v.created_by, v.source, v.schema_version) == (None, "alice", "test:churn.csv", 1)
    assert stored_files(settings) == [f"{v.sha256}.parquet"]
    doc = reg.as_dict()
    assert list(doc) == ["name", "version", "sha256", "rows", "columns", "quality", "created"]
    assert doc["quality"]["passed"] is True and {"check", "column", "passed", "observed", "expected"} == set(
        doc["quality"]["checks"][0])
    [event] = events(factory, "dataset.version_registered")
    assert event.subject == "dataset:churn" and event.actor == "alice"
    assert event.details["rows"] == 300 and event.details["sha256"] == v.sha256
    assert event.details["previous_rows"] is None and event.details["new_dataset"] is True
    with factory() as s:
        [schema] = s.scalars(select(DatasetSchema)).all()
    assert schema.version == 1 and set(schema.spec["columns"]) == {"age", "charges", "plan", "churn"}


def test_identical_content_creates_nothing_whatever_the_format(factory, settings) -> None:
    frame = churn()
    first = register(factory, settings, csv_bytes(frame))
    buf = io.BytesIO()
    frame.to_parquet(buf)
    again = register(factory, settings, buf.getvalue(), filename="churn.parquet")
    assert not again.created
    assert again.version == first.version
    sha = first.version.sha256[:12]
    assert again.message == f"This content is already churn version 1 (sha256 {sha}); nothing new."
    with factory() as s:
        assert s.scalar(select(DatasetVersion.id).where(DatasetVersion.version == 2)) is None
    assert len(events(factory, "dataset.version_registered")) == 1
    assert len(stored_files(settings)) == 1


def test_second_version_breaking_the_schema_fails_its_certificate(factory, settings) -> None:
    register(factory, settings, csv_bytes(churn()))
    bad = churn(seed=1)
    bad["age"] = bad["age"] * 12  # months instead of years
    bad.loc[:3, "plan"] = "enterprise"
    reg = register(factory, settings, csv_bytes(bad), description="ages in months")
    assert reg.created and not reg.certificate.passed
    assert reg.version.version == 2 and reg.version.parent_version == 1 and reg.previous_rows == 300
    failed = {(c["check"], c["column"]) for c in reg.certificate.failed}
    assert failed == {("range", "age"), ("allowed values", "plan")}
    assert reg.message == "Registered churn version 2: 300 rows, certificate failed 2 check(s)."
    event = events(factory, "dataset.version_registered")[-1]
    assert event.details["previous_rows"] == 300 and event.details["previous_version"] == 1
    assert event.details["failed_checks"] == ["range:age", "allowed values:plan"]
    with factory() as s:
        cert = datasets.get_certificate(s, ref="churn:2")
    assert not cert.passed and cert.at == reg.certificate.at


def test_more_rows_pass_and_the_audit_event_carries_the_growth(factory, settings) -> None:
    register(factory, settings, csv_bytes(churn(300)))
    reg = register(factory, settings, csv_bytes(churn(340, seed=2)))
    assert reg.certificate.passed, reg.certificate.failed
    event = events(factory, "dataset.version_registered")[-1]
    assert (event.details["rows"], event.details["previous_rows"]) == (340, 300)


def test_resolve_and_its_helpful_errors(factory, settings) -> None:
    with factory() as s, pytest.raises(NotFound, match="no dataset named 'churn'; there are no datasets yet"):
        datasets.resolve(s, ref="churn")
    register(factory, settings, csv_bytes(churn()))
    register(factory, settings, csv_bytes(churn(seed=3)))
    register(factory, settings, csv_bytes(churn(seed=4)), name="prices")
    with factory() as s:
        assert datasets.resolve(s, ref="churn").version == 2
        assert datasets.resolve(s, ref="churn:1").version == 1
        assert datasets.resolve(s, ref="churn:latest").version == 2
        with pytest.raises(NotFound, match="no dataset named 'chrun'; datasets are: churn, prices"):
            datasets.resolve(s, ref="chrun")
        with pytest.raises(NotFound, match="dataset 'churn' has no version 7; versions are 1–2"):
            datasets.resolve(s, ref="churn:7")
        with pytest.raises(NotFound, match="has no version 2; the only version is 1"):
            datasets.resolve(s, ref="prices:2")
        with pytest.raises(InvalidInput, match=r"reference 'churn:v2' is malformed: use NAME or NAME:VERSION"):
            datasets.resolve(s, ref="churn:v2")


def test_load_frame_returns_the_registered_data_and_detects_tampering(factory, settings) -> None:
    frame = churn()
    frame.loc[5, "charges"] = np.nan
    reg = register(factory, settings, csv_bytes(frame))
    with factory() as s:
        view, loaded = datasets.load_frame(s, store=settings.home, ref="churn")
    assert view == reg.version
    pd.testing.assert_frame_equal(loaded, frame)

    path = view.file(settings)
    frame.assign(churn=1).to_parquet(path)
    with factory() as s, pytest.raises(IntegrityError, match=r"churn:1 was altered: its file hashes to"):
        datasets.load_frame(s, store=settings.home, ref="churn:1")
    path.unlink()
    with factory() as s, pytest.raises(IntegrityError, match="the file of churn:1 is missing from the store"):
        datasets.load_frame(s, store=settings.home, ref="churn:1")


def test_listing_is_paged_in_sql(factory, settings) -> None:
    for seed in range(25):
        register(factory, settings, churn(rows=20, seed=seed), filename="")
    register(factory, settings, churn(rows=20), name="other")
    with factory() as s:
        assert datasets.count_versions(s, name="churn") == 25
        assert [v.version for v in datasets.list_versions(s, name="churn", limit=10)] == list(range(25, 15, -1))
        assert [v.version for v in datasets.list_versions(s, name="churn", limit=10, offset=20)] == [5, 4, 3, 2, 1]
        summary = {d.name: d for d in datasets.list_datasets(s)}
    assert list(summary) == ["churn", "other"]
    assert (summary["churn"].versions, summary["churn"].latest_rows) == (25, 20)
    assert summary["other"].latest_passed is True


def test_viewers_cannot_register_and_the_refusal_is_audited(factory, settings) -> None:
    with pytest.raises(PermissionDenied, match="bob has role 'viewer', which may not datasets.write"):
        register(factory, settings, csv_bytes(churn()), actor=Actor("bob", "viewer"))
    assert stored_files(settings) == []
    [denied] = events(factory, "permission.denied")
    assert denied.subject == "dataset:churn"


def test_diff_between_versions(factory, settings) -> None:
    register(factory, settings, churn())
    changed = churn(seed=1).drop(columns=["plan"]).assign(region="north")
    changed["charges"] += 30
    register(factory, settings, changed)
    with factory() as s:
        d = datasets.diff(s, name="churn", a=1, b=2)
    assert (d.added, d.removed, d.rows_a, d.rows_b) == (["region"], ["plan"], 300, 300)
    charges = next(c for c in d.columns if c["column"] == "charges")
    assert charges["changed"] and charges["shift_sd"] > 1.5


def test_schema_edits_are_versioned_and_apply_to_later_versions(factory, settings) -> None:
    register(factory, settings, churn())
    with factory() as s:
        spec = schemas.current_schema(s, name="churn").spec
    spec["columns"]["age"]["max"] = 1000
    with transaction(factory) as s:
        edited = schemas.update_schema(s, actor=ALICE, name="churn", spec=spec, note="ages up to 1000")
    assert edited.version == 2
    older = churn(seed=5)
    older["age"] = older["age"] * 12
    reg = register(factory, settings, older)
    assert reg.certificate.passed and reg.version.schema_version == 2
    with transaction(factory) as s, pytest.raises(InvalidInput, match="unchanged \\(still schema version 2\\)"):
        schemas.update_schema(s, actor=ALICE, name="churn", spec=spec)
    with transaction(factory) as s, pytest.raises(InvalidInput, match="dtype 'number' is unknown"):
        schemas.update_schema(s, actor=ALICE, name="churn", spec={"columns": {"age": {"dtype": "number"}}})
    with pytest.raises(PermissionDenied), transaction(factory) as s:
        schemas.update_schema(s, actor=Actor("bob", "viewer"), name="churn", spec=spec)
    assert [e.details["schema_version"] for e in events(factory, "dataset.schema_updated")] == [2]


def test_training_runs_are_linked_to_the_version_they_used(factory, settings) -> None:
    register(factory, settings, churn())
    register(factory, settings, churn(seed=1))
    with transaction(factory) as s:
        lineage.link_run(s, actor=ALICE, ref="churn:1", run_id="run-a")
        lineage.link_run(s, actor=ALICE, ref="churn:1", run_id="run-a", model_name="churn-model", model_version=3)
        lineage.link_run(s, actor=ALICE, ref="churn:1", run_id="run-b")
    with factory() as s:
        runs = lineage.runs_for(s, ref="churn:1")
        assert lineage.runs_for(s, ref="churn:2") == []
    assert [(r.run_id, r.model_name, r.model_version, r.ref) for r in runs] == [
        ("run-b", None, None, "churn:1"), ("run-a", "churn-model", 3, "churn:1")]
    assert len(events(factory, "dataset.run_linked")) == 2


def test_registering_the_demo_workspace_twice_makes_one_version(factory, settings) -> None:
    from core.workspace.bootstrap import init_workspace

    for _ in range(2):
        result = init_workspace(factory, settings, demo=True)
    with factory() as s:
        view = datasets.resolve(s, ref="churn")
    assert (view.version, view.created_by, view.certificate_passed) == (1, "system:init", True)
    assert result.demo_files == (str(Path(settings.home) / "demo" / "churn.csv"),)


def test_same_content_in_two_datasets_is_stored_once(factory, settings) -> None:
    a = register(factory, settings, churn(), name="a")
    b = register(factory, settings, churn(), name="b")
    assert a.created and b.created and a.version.sha256 == b.version.sha256
    assert len(stored_files(settings)) == 1
    with factory() as s:
        assert s.scalar(select(Dataset.latest_version).where(Dataset.name == "b")) == 1
