"""The ``retrain`` and ``monitor.performance`` jobs end to end on a real MLflow store and the small churn data."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core import policy
from core.actors import Actor
from core.platform import job_queue
from core.platform.database import transaction
from core.promotion import moves
from core.promotion.registration import train
from core.retraining import triggers
from db.models import Alert, AuditEvent, Job, TrainingRun
from jobs import runner
from tests.support import aliases
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn
from tests.support.worker import drain

ADMIN = Actor("root", "admin")
SPEC = {"dataset": "churn", "target": "churn", "model": "linear", "params": {"C": 0.05}, "seed": 11,
        "sensitive": "gender", "model_name": "churn"}


def write_policy(settings, *, auto_promote: bool) -> None:
    text = policy.DEFAULT_POLICY_YAML.replace("auto_promote: false", f"auto_promote: {str(auto_promote).lower()}")
    # The sensitive column named at training still feeds the fairness gate; its floor is 0 here (400 rows with a
    # quarter of the labels wrong have a noisy parity ratio, and these tests are about the retrain).
    text = text.replace('f1: ">= 0.85"', 'f1: ">= 0.5"').replace("column: gender", "column: null")
    text = text.replace("demographic_parity_ratio_min: 0.8", "demographic_parity_ratio_min: 0.0")
    (settings.home / policy.POLICY_FILE).write_text(text)


@pytest.fixture
def champion(factory, workspace):
    """churn v1 trained on 400 rows with a quarter of the labels wrong and made champion; then the
    dataset grows to 600 clean rows (so a retrain beats it)."""
    noisy = small_churn(rows=400, seed=7)
    flip = noisy.index[::4]
    noisy.loc[flip, "churn"] = 1 - noisy.loc[flip, "churn"]
    add_dataset(factory, workspace, noisy)
    first = train(factory, workspace, SPEC, actor=Actor("sam", "scientist", "job"), log=lambda line: None)
    moves.promote(factory, workspace, actor=ADMIN, model="churn", version=first["model_version"], reason="test",
                  force=True)
    drain(factory, workspace)  # the schedules.sync follow-up the promotion queued
    add_dataset(factory, workspace, small_churn(rows=600, seed=8))
    with transaction(factory) as s:  # these tests pull each trigger themselves, not through the upload's follow-up
        [consider] = job_queue.list_jobs(s, kind="retrain.consider", statuses=("queued",))
        job_queue.cancel(s, actor=ADMIN, job_id=consider.id)
    return first


def run_job(factory, settings, job_id):
    assert runner.run_next(factory, settings, "test-worker") == job_id
    with factory() as s:
        return job_queue.get(s, job_id)


def chain(factory):
    with factory() as s:
        return [(e.actor, e.action, e.details) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.seq))]


def test_growth_retrain_reuses_the_champion_config_and_auto_promotes(factory, workspace, champion):
    write_policy(workspace, auto_promote=True)
    [request] = triggers.on_dataset_version(factory, workspace, dataset="churn", version=2, via_api=False)
    assert request.queued and "600 rows vs 400" in request.reason
    job = run_job(factory, workspace, request.job_id)
    assert job.status == "succeeded", job.error
    assert (job.result["outcome"], job.result["model_version"], job.result["dataset"]) == ("promoted", 2, "churn:2"), \
        job.result["gates"]
    assert aliases.get(workspace, model="churn", alias="champion") == 2
    with factory() as s:
        run = s.scalar(select(TrainingRun).where(TrainingRun.model_version == 2))
        assert (run.model_kind, run.params["C"], run.seed, run.sensitive, run.created_by) == (
            "linear", 0.05, 11, "gender", "system:retrain")
    events = [(a, act) for a, act, _ in chain(factory) if a.startswith("system:retrain")]
    assert events == [("system:retrain", "job.queued"), ("system:retrain", "retrain.requested"),
                      ("system:retrain", "retrain.started"), ("system:retrain", "dataset.run_linked"),
                      ("system:retrain", "model.trained"),
                      ("system:retrain", "model.challenger"), ("system:retrain", "model.promote"),
                      ("system:retrain", "model.challenger_cleared"), ("system:retrain", "retrain.finished")]
    promoted = next(d for a, act, d in chain(factory) if act == "model.promote" and a == "system:retrain")
    assert promoted["reason"].startswith("auto-promoted retrain (growth): churn v2: 600 rows vs 400")
    # The growth is used up: the periodic check does not queue it again.
    assert not triggers.check_growth(factory, workspace, "churn").act


def test_without_auto_promote_the_version_is_challenger_and_approvers_are_alerted(factory, workspace, champion):
    write_policy(workspace, auto_promote=False)
    request = triggers.request_retrain(factory, workspace, model="churn", reason="drift share 0.8", trigger="drift")
    job = run_job(factory, workspace, request.job_id)
    assert job.status == "succeeded", job.error
    assert job.result["outcome"] == "challenger"
    assert aliases.all_for(workspace, model="churn") == {"champion": 1, "challenger": 2}
    finished = [d for _, act, d in chain(factory) if act == "retrain.finished"]
    assert [(d["trigger"], d["reason"], d["outcome"], d["version"]) for d in finished] == [
        ("drift", "drift share 0.8", "challenger", 2)]
    with factory() as s:
        alert = s.scalar(select(Alert).where(Alert.condition == "retrain"))
    assert "is the challenger: approvers, please review" in alert.title


def test_scheduled_retrain_is_a_system_job_and_monitor_checks_every_champion(factory, workspace, champion):
    write_policy(workspace, auto_promote=False)
    with transaction(factory) as s:
        job = job_queue.enqueue(s, actor=Actor("system:schedule:monitor-performance", "admin", "system"),
                           kind="monitor.performance")
        job_id = job.id
    done = run_job(factory, workspace, job_id)
    assert done.status == "succeeded", done.error
    report = done.result["models"]["churn"]
    assert report["performance"]["status"] == "insufficient"
    assert not report["rollback"]["rolled_back"]
    assert report["growth"]["queued"] and "600 rows vs 400" in report["growth"]["reason"]
    with factory() as s:
        queued = s.scalars(select(Job).where(Job.kind == "retrain")).all()
    assert [(j.created_by, j.params["trigger"]) for j in queued] == [("system:retrain", "growth")]


def test_retrain_of_a_model_without_champion_fails_with_a_reason(factory, workspace):
    with transaction(factory) as s:
        job_id = job_queue.enqueue(s, actor=ADMIN, kind="retrain", params={"model": "nope", "trigger": "manual"}).id
    job = run_job(factory, workspace, job_id)
    assert job.status == "failed" and "nope has no champion" in job.error
