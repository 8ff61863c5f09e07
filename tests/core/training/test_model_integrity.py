"""A model name keeps its target, task and input schema (issue 19 item 1), whichever entry trains it.

The issue's case: a new dataset version with one more column at the end made the Training form pick
that column as target, and Launch registered a regressor as the next version of the classifier.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import cli
from core.accounts import auth
from core.actors import Actor
from core.errors import InvalidInput
from core.platform.database import transaction
from core.promotion import registration
from core.training import integrity, pipeline
from core.training.spec import parse_spec
from db.models import Job, TrainingRun
from tests.support.training import *  # noqa: F403
from tests.support.training import SCIENTIST, add_dataset, small_churn

FAST = {"model": "linear"}


def with_balance():
    """The issue's new dataset version: the same rows plus one numeric column at the end."""
    frame = small_churn()
    frame["balance"] = np.random.default_rng(1).normal(1000, 200, len(frame)).round(2)
    return frame


def train(factory, settings, **spec):
    spec = {"dataset": "churn", "target": "churn", "allow_failed_certificate": True, **FAST, **spec}
    return registration.train(factory, settings, spec,
                              actor=SCIENTIST, log=lambda line: None)


def versions(factory, model="churn"):
    with factory() as session:
        return sorted(session.scalars(select(TrainingRun.model_version).where(
            TrainingRun.model_name == model, TrainingRun.model_version.is_not(None))))


@pytest.fixture
def bound(factory, workspace):
    """Model ``churn`` v1: a classifier of column ``churn``; then dataset churn:2 with a ``balance`` column.
    churn:2's certificate fails (a column v1 did not have), so the tests name it: ``churn`` alone means churn:1,
    the newest certified version (issue 26)."""
    add_dataset(factory, workspace, small_churn())
    assert train(factory, workspace)["model_version"] == 1
    add_dataset(factory, workspace, with_balance())
    return workspace


def test_another_target_is_refused_naming_the_models_target_and_task(factory, bound):
    with pytest.raises(InvalidInput, match=r"model 'churn' predicts target 'churn' \(classification\) since its "
                                           r"version 1; this run asks for target 'balance'"
                                           r".*train under a new model name instead"):
        train(factory, bound, dataset="churn:2", target="balance")
    assert versions(factory) == [1]
    # under a new name it is a new model, bound to its own target
    assert train(factory, bound, dataset="churn:2", target="balance", model_name="balance")["task"] == "regression"


def test_another_task_on_the_same_target_is_refused(factory, bound):
    with pytest.raises(InvalidInput, match=r"predicts target 'churn' \(classification\).*'churn' \(regression\)"):
        with transaction(factory) as session:
            pipeline.launch(session, actor=SCIENTIST, spec=parse_spec(
                {"dataset": "churn:1", "target": "churn", "task": "regression"}))


def test_a_changed_input_schema_needs_confirmation_and_then_binds(factory, bound):
    with pytest.raises(InvalidInput, match=r"input columns of 'churn' would change from its version 1 "
                                           r"\(added: balance\); confirm the schema change"):
        train(factory, bound, dataset="churn:2")
    assert versions(factory) == [1]
    assert train(factory, bound, dataset="churn:2", allow_schema_change=True)["model_version"] == 2
    assert train(factory, bound, dataset="churn:2")["model_version"] == 3  # the confirmed schema is the model's now
    with pytest.raises(InvalidInput, match=r"from its version 3 \(removed: balance\)"):
        train(factory, bound, dataset="churn:1")


def test_launch_refuses_before_queueing(factory, bound):
    with transaction(factory) as session:
        before = session.scalar(select(func.count()).select_from(Job))
    for spec, words in (({"target": "balance"}, "predicts target 'churn'"), ({}, "added: balance")):
        with pytest.raises(InvalidInput, match=words):
            with transaction(factory) as session:
                pipeline.launch(session, actor=SCIENTIST, spec=parse_spec({"dataset": "churn:2", "target": "churn"}
                                                                          | spec))
    with transaction(factory) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == before
        job = pipeline.launch(session, actor=SCIENTIST, spec=parse_spec(
            {"dataset": "churn:2", "target": "churn", "allow_schema_change": True}))
        assert job.params["allow_schema_change"] is True


def test_two_queued_jobs_racing_for_a_new_name_cannot_both_bind_it(factory, workspace):
    """Both pass the launch check (no version yet); the one that runs second is refused in the workflow."""
    add_dataset(factory, workspace, with_balance())
    queued = []
    for target in ("churn", "balance"):
        with transaction(factory) as session:
            job = pipeline.launch(session, actor=SCIENTIST, spec=parse_spec(
                {"dataset": "churn", "target": target, "model_name": "credit", "allow_failed_certificate": True,
                 **FAST}))
            queued.append(job.params)
    assert registration.train(factory, workspace, queued[0], actor=SCIENTIST, log=lambda line: None)[
        "model_version"] == 1
    with pytest.raises(InvalidInput, match="model 'credit' predicts target 'churn' \\(classification\\)"):
        registration.train(factory, workspace, queued[1], actor=SCIENTIST, log=lambda line: None)
    assert versions(factory, "credit") == [1]


def test_the_recording_transaction_checks_again_under_the_models_lock(factory, bound):
    """The last check, where a version that lost a race is taken back (its run and version undone)."""
    spec = parse_spec({"dataset": "churn:2", "target": "balance"})
    dtypes = {"region": "object", "balance": "float64"}
    with pytest.raises(InvalidInput, match="predicts target 'churn'"):
        with transaction(factory) as session:
            integrity.check_for_data(session, spec, dtypes=dtypes, task="regression", lock=True)


def test_cli_train_exits_2_naming_the_target_and_task(capsys, monkeypatch, factory, bound):
    monkeypatch.setenv("LEANOPS_HOME", str(bound.home))
    monkeypatch.setenv("LEANOPS_DB_URL", bound.db_url)
    code = cli.main(["train", "--dataset", "churn:2", "--target", "balance", "--model-name", "churn",
                     "--allow-failed-certificate", "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and "predicts target 'churn' (classification)" in json.loads(out)["error"]
    assert "error: model 'churn' predicts target 'churn'" in err
    code = cli.main(["train", "--dataset", "churn:2", "--target", "churn", "--model", "linear",
                     "--allow-schema-change", "--allow-failed-certificate", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["model_version"] == 2


def test_api_training_job_is_refused_with_422(factory, bound):
    from api.app import create_app

    with transaction(factory) as session:
        token, _ = auth.create_token(session, actor=Actor("root", "admin"), role="scientist", name="t")
    with TestClient(create_app(bound, factory=factory)) as client:
        answer = client.post("/v1/training-jobs", headers={"Authorization": f"Bearer {token}"},
                             json={"dataset": "churn:2", "target": "balance", "model_name": "churn"})
        assert answer.status_code == 422, answer.text
        assert "predicts target 'churn' (classification)" in answer.json()["detail"]
        answer = client.post("/v1/training-jobs", headers={"Authorization": f"Bearer {token}"},
                             json={"dataset": "churn:2", "target": "churn", "allow_schema_change": True,
                                   "allow_failed_certificate": True})
        assert answer.status_code == 202, answer.text


@pytest.mark.parametrize(("before", "after", "words"), [
    ({"a": "number"}, {"a": "number"}, []),
    ({"a": "number"}, {"a": "number", "b": "text"}, ["added: b"]),
    ({"a": "number", "b": "text"}, {"a": "number"}, ["removed: b"]),
    ({"a": "number"}, {"a": "text"}, ["changed kind: a (number → text)"]),
])
def test_schema_changes_in_words(before, after, words):
    assert integrity.schema_changes(before, after) == words


@pytest.mark.parametrize(("dtype", "kind"), [
    ("int64", "number"), ("float64", "number"), ("Int64", "number"), ("bool", "number"), ("object", "text"),
    ("string", "text"), ("category", "text"), ("datetime64[ns]", "date/time"), ("datetime64[ns, UTC]", "date/time"),
    ("nonsense", "text"),
])
def test_column_kinds(dtype, kind):
    assert integrity.column_kind(dtype) == kind
