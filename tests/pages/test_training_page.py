"""Training page (AppTest): launch form, live queue, run list paged in SQL, run detail, compare, reproduce."""

from __future__ import annotations

import re
import time

import pytest
import streamlit as st
from sqlalchemy import insert

from core.errors import InvalidInput
from core.platform import job_queue
from core.platform.database import transaction
from core.training import runs
from db.models import TrainingRun, utcnow
from jobs import runner
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn
from tests.support.worker import drain


def button(at, label):
    return next(b for b in at.button if b.label == label)


def queued(factory) -> list[job_queue.JobView]:
    with factory() as s:
        return job_queue.list_jobs(s, statuses=("queued",), kind="train")


def test_scientist_launches_training_and_it_returns_at_once(open_page, factory, workspace):
    add_dataset(factory, workspace, small_churn())
    at = open_page("app_pages/training.py", role="scientist")
    assert not at.exception
    assert at.selectbox(key="tr-dataset").value == "churn"
    assert at.selectbox(key="tr-target-churn-churn").value is None  # a new model: the user picks its target
    assert not [b for b in at.button if b.label == "Launch training"]
    at.selectbox(key="tr-target-churn-churn").set_value("churn").run()
    assert at.selectbox(key="tr-task-churn:1-churn-churn").value == "classification"
    assert at.selectbox(key="tr-model").value == "random_forest"
    at.number_input(key="tr-param-random_forest-classification-n_estimators").set_value(30)
    at.selectbox(key="tr-sensitive-churn").set_value("gender")
    started = time.monotonic()
    button(at, "Launch training").click().run()
    assert time.monotonic() - started < 15 and not at.exception
    (job,) = queued(factory)
    assert at.success[0].value.startswith(f"Queued training job #{job.id} on churn:1")
    assert job.params["params"]["n_estimators"] == 30 and job.params["sensitive"] == "gender"
    assert job.params["dataset"] == "churn:1" and job.params["task"] == "classification"
    at.run()  # the live panel lists the queued job with a Cancel button
    at.button(key=f"tr-cancel-{job.id}").click().run()
    with factory() as s:
        assert job_queue.get(s, job.id).status == "cancelled"


def test_changing_the_model_and_task_changes_the_parameter_form(open_page, factory, workspace):
    frame = small_churn()
    frame["spend"] = frame["monthly_charges"].fillna(50) * 2.5
    add_dataset(factory, workspace, frame)
    at = open_page("app_pages/training.py", role="scientist")
    at.selectbox(key="tr-target-churn-churn").set_value("spend").run()
    assert at.selectbox(key="tr-task-churn:1-spend-churn").value == "regression"
    at.selectbox(key="tr-model").set_value("linear").run()
    labels = {n.label for n in at.number_input}
    assert "alpha" in labels and "C" not in labels
    at.selectbox(key="tr-search").set_value("random").run()
    button(at, "Launch training").click().run()
    (job,) = queued(factory)
    assert job.params["model"] == "linear" and job.params["params"] == {"alpha": 1.0}
    assert job.params["search"] == {"method": "random", "candidates": 8, "folds": 3}


def test_viewer_sees_runs_but_cannot_launch(open_page, factory, workspace):
    add_dataset(factory, workspace, small_churn())
    at = open_page("app_pages/training.py", role="viewer")
    assert not at.exception
    assert not [b for b in at.button if b.label == "Launch training"]
    assert "No training runs yet." in [i.value for i in at.info]


def test_run_detail_shows_metrics_charts_and_reproduces(open_page, factory, workspace):
    add_dataset(factory, workspace, small_churn())
    drain(factory, workspace)  # the version's retrain.consider follow-up (no champion: nothing follows)
    for seed in (1, 2):
        at = open_page("app_pages/training.py", role="scientist")
        if seed == 1:  # a new model has no default target; the second run defaults to the model's
            at.selectbox(key="tr-target-churn-churn").set_value("churn").run()
        at.number_input(key="tr-param-random_forest-classification-n_estimators").set_value(18 + seed)
        at.number_input(key="tr-seed").set_value(seed)
        button(at, "Launch training").click().run()
        assert runner.run_next(factory, workspace, "test-worker") is not None
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["name"]) == ["churn v2", "churn v1"] and set(table["status"]) == {"succeeded"}
    assert table["score"].dtype == "float64"  # a number, so the column sorts as one
    assert {m.label for m in at.metric} >= {"accuracy", "f1", "roc_auc"}
    assert len(at.get("plotly_chart")) >= 4  # confusion matrix, importance, ROC, PR (+ compare)
    assert any("MLflow** run" in m.value for m in at.markdown)
    at.multiselect(key="tr-compare").set_value([2, 1]).run()
    compare = at.dataframe[-2].value  # the compare view: metrics, then the parameters that differ
    assert list(compare.columns) == ["churn v2", "churn v1", "best"] and "f1" in compare.index
    diff = at.dataframe[-1].value
    assert set(diff.index) == {"seed", "n_estimators"} and set(diff["comparison"]) == {"different"}
    assert list(diff.loc["n_estimators", ["churn v2", "churn v1"]]) == ["20", "19"]
    button(at, "Reproduce").click().run()
    (job,) = queued(factory)
    assert job.params["reproduces"] == 2 and job.params["seed"] == 2


def _bulk_runs(factory, n: int) -> None:
    """Rows straight into the table: a scale fixture only (runs are otherwise made through the job)."""
    now = utcnow()
    rows = [{"dataset_name": "churn", "dataset_version": 1, "dataset_sha256": "0" * 64, "model_name": "churn",
             "model_version": i, "model_kind": "random_forest", "task": "classification", "target": "churn",
             "params": {}, "spec": {}, "seed": 42, "primary_metric": "f1", "score": 0.9, "metrics": {"f1": 0.9},
             "status": "succeeded", "code_version": "test", "created_by": "sam", "started_at": now,
             "finished_at": now} for i in range(1, n + 1)]
    with transaction(factory) as s:
        s.execute(insert(TrainingRun), rows)
    st.cache_data.clear()  # written behind the page's back: its cached lists would be a few seconds stale


def _render(open_page) -> tuple[float, object]:
    started = time.monotonic()
    at = open_page("app_pages/training.py", role="viewer")
    return time.monotonic() - started, at


def test_run_list_renders_the_same_at_10_and_10000_runs(open_page, factory, workspace):
    _bulk_runs(factory, 10)
    _render(open_page)  # warm imports
    small_time, small = _render(open_page)
    assert len(small.dataframe[0].value) == 10 and "10 run(s), newest first" in [c.value for c in small.caption]
    _bulk_runs(factory, 9_990)
    big_time, big = _render(open_page)
    assert not big.exception and len(big.dataframe[0].value) == 25
    assert "10,000 run(s), newest first" in [c.value for c in big.caption]
    assert big.number_input(key="tr-page").max == 400
    assert big_time < small_time * 3 + 1.0, (small_time, big_time)
    big.selectbox(key="tr-filter-status").set_value("failed").run()
    assert "No run matches these filters." in [i.value for i in big.info]
    with factory() as s:
        assert runs.count_runs(s) == 10_000


def test_a_models_target_is_the_default_and_another_target_is_refused(open_page, factory, workspace):
    """Issue 19: a dataset version with one more column made the form pick it as the target, and Launch
    registered a regressor as the next version of the classifier."""
    import numpy as np

    from core.promotion import registration
    from tests.support.training import SCIENTIST

    add_dataset(factory, workspace, small_churn())
    registration.train(factory, workspace, {"dataset": "churn", "target": "churn", "model": "linear"},
                       actor=SCIENTIST, log=lambda line: None)
    frame = small_churn()
    frame["balance"] = np.random.default_rng(1).normal(1000, 200, len(frame))
    add_dataset(factory, workspace, frame)
    at = open_page("app_pages/training.py", role="scientist")
    assert not at.exception
    assert at.selectbox(key="tr-version-churn").value == 1  # v2 failed its certificate: not the default
    at.selectbox(key="tr-version-churn").set_value(2).run()  # chosen on purpose
    assert at.selectbox(key="tr-target-churn-churn").value == "churn"  # the model's target, not the last column
    assert at.selectbox(key="tr-task-churn:2-churn-churn").value == "classification"
    assert any("predicts `churn` (classification) since its version 1" in c.value for c in at.caption)
    assert any("added: balance" in w.value for w in at.warning)
    at.checkbox(key="tr-allow").check().run()  # the extra column also fails the dataset's certificate
    button(at, "Launch training").click().run()  # not confirmed: refused, nothing queued
    assert "confirm the schema change" in at.error[-1].value and not queued(factory)
    at.checkbox(key="tr-allow-schema").check().run()
    button(at, "Launch training").click().run()
    (job,) = queued(factory)
    assert job.params["allow_schema_change"] is True and job.params["target"] == "churn"

    at.selectbox(key="tr-target-churn-churn").set_value("balance").run()
    assert "will be refused" in at.error[0].value
    button(at, "Launch training").click().run()
    assert "model 'churn' predicts target 'churn' (classification)" in at.error[-1].value.replace("\\", "")
    assert len(queued(factory)) == 1


def _train_through_jobs(factory, workspace, *kinds: str) -> None:
    """Each kind launched as a job and run by a worker, as the page does (so every run has a job and a version)."""
    from core.training import pipeline
    from core.training.spec import parse_spec
    from tests.support.training import SCIENTIST

    for kind in kinds:
        with transaction(factory) as s:
            pipeline.launch(s, actor=SCIENTIST, spec=parse_spec({"dataset": "churn", "target": "churn", "model": kind}))
        assert drain(factory, workspace), "a worker runs the launched job (after the dataset's follow-up)"
    st.cache_data.clear()


def test_runs_are_named_by_their_version_and_link_to_their_job_and_version_both_ways(open_page, factory, workspace):
    """Issue 19 item 7: "run 2" was job #1, which made churn version 1, and pickers offered bare numbers.
    Job #1 here is the dataset version's retrain.consider follow-up; the runs are jobs #2 and #3."""
    add_dataset(factory, workspace, small_churn())
    _train_through_jobs(factory, workspace, "linear", "dummy")  # v1 scores better than v2
    at = open_page("app_pages/training.py", role="viewer")
    assert not at.exception
    picker = at.selectbox(key="tr-run")
    assert re.fullmatch(r"churn v2 · dummy baseline · f1 0\.\d+ · \d{4}-\d\d-\d\d \d\d:\d\d", picker.options[0])
    assert picker.options[1].startswith("churn v1 · logistic regression · f1 ")
    assert re.match(r"### churn v2 · dummy baseline · f1 0\\\.\d+ · \d+ s ago", at.markdown[0].value)
    assert "Run 2 · ran as job #3 · registered **churn v2**" in [m.value for m in at.markdown]
    assert at.button(key="tr-open-version").label == "Open churn v2 in Registry"
    assert at.button(key="tr-open-job").label == "Open job #3 in Jobs"
    assert not [b for b in at.get("link_button")]  # no LEANOPS_MLFLOW_UI_URL: no link to MLflow's UI

    at.selectbox(key="tr-order").set_value("best").run()  # ranked in SQL over every run, not one page
    assert list(at.dataframe[0].value["name"]) == ["churn v1", "churn v2"]
    assert "2 run(s), best score first" in [c.value for c in at.caption]
    at.multiselect(key="tr-columns").set_value(["name", "job", "f1", "C"]).run()  # the column chooser
    table = at.dataframe[0].value
    assert list(table.columns) == ["name", "job", "f1", "C"] and list(table["C"]) == ["1.0", ""]

    registry = open_page("app_pages/registry.py", role="viewer")
    opener = registry.button(key="reg-open-run")
    assert opener.label.startswith("Trained by churn v2") and "(run 2, job #3)" in opener.label
    jobs = open_page("app_pages/jobs.py", role="viewer")
    assert list(jobs.dataframe[0].value["made"]) == ["churn v2 (run 2)", "churn v1 (run 1)", ""]
    jobs.selectbox(key="job-log").set_value(2).run()
    assert jobs.button(key="job-open-run").label == "Open churn v1 \\(run 1\\) in Training"
    with factory() as s, pytest.raises(InvalidInput, match="order 'worst' is unknown; orders are: newest, best"):
        runs.list_runs(s, order="worst")


def test_a_run_links_to_mlflow_s_own_ui_when_its_address_is_set(open_page, factory, workspace, monkeypatch):
    monkeypatch.setenv("LEANOPS_MLFLOW_UI_URL", "http://mlflow.internal:5000/")
    add_dataset(factory, workspace, small_churn())
    _train_through_jobs(factory, workspace, "dummy")
    at = open_page("app_pages/training.py", role="viewer")
    with factory() as s:
        run = runs.get_run(s, 1)
    (link,) = at.get("link_button")
    assert link.proto.url == f"http://mlflow.internal:5000/#/experiments/{run.mlflow_experiment_id}/runs/" \
                             f"{run.mlflow_run_id}"
