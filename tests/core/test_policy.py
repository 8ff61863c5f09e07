"""Policy as code: parsing with line numbers, per-model overrides, and gate decisions as tables."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core import policy
from core.actors import Actor
from core.errors import InvalidInput
from core.platform.database import transaction
from db.models import AuditEvent, Job

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
DEFAULT = policy.parse(policy.DEFAULT_POLICY_YAML)


def test_default_policy_has_the_seed_numbers():
    churn = policy.for_model(DEFAULT, "churn")
    other = policy.for_model(DEFAULT, "other")
    assert churn.metrics["classification"] == {"f1": ">= 0.85"}
    assert churn.metrics["regression"] == {"r2": ">= 0.5"}
    assert churn.improvement.min_relative == 0.02
    assert (churn.fairness.column, churn.fairness.demographic_parity_ratio_min) == ("gender", 0.8)
    assert other.fairness.column is None
    assert not churn.approval.required


@pytest.mark.parametrize("text, message", [
    ("default:\n  metrics:\n    classification:\n      f1: 'about 0.8'\n",
     "line 4: default.metrics.classification.f1: rule"),
    ("default:\n  approval:\n    approvers: 0\n", "line 3: default.approval.approvers"),
    ("models:\n  churn:\n    fairness:\n      colum: x\n", "line 4: models.churn: fairness.colum"),
    ("default: [1\n", "not valid YAML"),
    ("- 1\n- 2\n", "must be a mapping"),
    ("default:\n  auto_promote: true\n  approval:\n    required: true\n", "auto_promote cannot be true"),
    ("default:\n  drift:\n    schedule: '99 99 * * *'\n",
     "line 3: default.drift.schedule: cron '99 99 * * *': the minute field '99' is refused"),
    ("default:\n  retrain:\n    on_drift: true\n    schedule: '0 25 * * *'\n",
     "line 4: default.retrain.schedule: cron '0 25 * * *': the hour field '25' is refused"),
    ("models:\n  churn:\n    retrain:\n      schedule: '0 3 * * 8'\n",
     "line 4: models.churn: retrain.schedule: cron '0 3 * * 8': the day-of-week field '8' is refused"),
    ("default:\n  drift:\n    schedule: '0 6 * *'\n",
     "line 3: default.drift.schedule: cron '0 6 * *' has 4 fields, not five fields"),
])
def test_bad_policy_files_name_the_line_and_rule(text, message):
    with pytest.raises(InvalidInput, match=re.escape(message)):
        policy.parse(text)


@pytest.mark.parametrize("value, auto", [("true", True), ("false", False), ("approve", "approve"), ("no", False)])
def test_rollback_auto_is_true_false_or_approve(value, auto):
    text = policy.DEFAULT_POLICY_YAML + f"  m:\n    rollback:\n      auto: {value}\n"
    assert policy.for_model(policy.parse(text), "m").rollback.auto == auto
    assert policy.for_model(policy.parse(text), "churn").rollback.auto is True


@pytest.mark.parametrize("text, message", [
    ("default:\n  rollback:\n    auto: sometimes\n",
     "line 3: default.rollback.auto: must be true, false or approve (an approver confirms each rollback), "
     "got 'sometimes'"),
    ("models:\n  m:\n    rollback:\n      auto: Approve\n", "line 4: models.m: rollback.auto: must be true, false or "
                                                            "approve"),
    ("default:\n  feedback:\n    label_any_request: viewer\n",
     "line 3: default.feedback.label_any_request: Input should be 'scientist', 'approver' or 'admin'"),
])
def test_bad_rollback_and_feedback_values_name_the_line(text, message):
    with pytest.raises(InvalidInput, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        policy.parse(text)


def test_an_s3_batch_source_goes_to_an_s3_prefix_and_only_there():
    ok = policy.parse("models:\n  m:\n    batch:\n      source: s3://lake/in/\n      destination: s3://lake/out/\n")
    assert policy.for_model(ok, "m").batch.destination == "s3://lake/out/"
    for source, destination in [("s3://lake/in/", "folder:/srv/out"), ("dataset:churn", "s3://lake/out/")]:
        with pytest.raises(InvalidInput, match="an s3:// batch.source is scored into an s3://bucket/prefix/"):
            policy.parse(f"models:\n  m:\n    batch:\n      source: '{source}'\n      destination: '{destination}'\n")
    with pytest.raises(InvalidInput, match="batch.destination"):  # a run folder goes under a prefix, not a file
        policy.parse("models:\n  m:\n    batch:\n      source: s3://lake/in/\n      destination: s3://lake/out.parquet\n")


def test_a_cron_the_scheduler_would_refuse_is_refused_when_the_policy_is_saved(factory, tmp_path):
    """``99 99 * * *`` fails at save, with its line and field, not at the scheduler's next start."""
    policies = policy.Policies.at(tmp_path / policy.POLICY_FILE)
    policies.write_default()
    before = policies.path.read_text()
    text = policy.DEFAULT_POLICY_YAML.replace('schedule: "0 6 * * *"', 'schedule: "99 99 * * *"')
    line = text[:text.index("99 99")].count("\n") + 1
    with pytest.raises(InvalidInput, match=re.escape(f"line {line}: default.drift.schedule: cron '99 99 * * *': "
                                                     "the minute field '99' is refused: the last value (99) is "
                                                     "higher than the maximum value (59)")):
        with transaction(factory) as s:
            policies.save(s, actor=Actor("root", "admin"), text=text)
    assert policies.path.read_text() == before
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 0
        assert s.scalar(select(func.count()).select_from(Job)) == 0


def test_only_admins_label_any_request_by_default():
    assert policy.for_model(DEFAULT, "churn").feedback.label_any_request == "admin"


def gates(*, task="classification", metrics=None, champion=None, fairness=None, cert=True, cert_age_days=1,
          approvals=(), model="churn", text=policy.DEFAULT_POLICY_YAML):
    rules = policy.for_model(policy.parse(text), model)
    return policy.evaluate(rules, task=task, metrics=metrics or {"f1": 0.9}, champion_metrics=champion,
                           fairness=fairness if fairness is not None else {"gender": {"demographic_parity_ratio": 0.9}},
                           certificate_passed=cert, certificate_at=NOW - timedelta(days=cert_age_days), now=NOW,
                           trainer="sam", approvals=approvals)


@pytest.mark.parametrize("kwargs, passed, failing", [
    ({}, True, []),
    ({"metrics": {"f1": 0.84}}, False, ["metric f1"]),
    ({"metrics": {"accuracy": 0.99}}, False, ["metric f1"]),
    ({"champion": {"f1": 0.88}, "metrics": {"f1": 0.89}}, False, ["improvement on f1 over champion"]),
    ({"champion": {"f1": 0.88}, "metrics": {"f1": 0.90}}, True, []),
    ({"fairness": {"gender": {"demographic_parity_ratio": 0.7}}}, False,
     ["fairness demographic parity ratio on gender"]),
    ({"fairness": {}}, False, ["fairness demographic parity ratio on gender"]),
    ({"fairness": {}, "model": "other"}, True, []),
    ({"cert": False}, False, ["data certificate passed"]),
    ({"cert_age_days": 31}, False, ["data certificate age (days)"]),
    ({"task": "regression", "metrics": {"r2": 0.4}}, False, ["metric r2"]),
    ({"task": "regression", "metrics": {"r2": 0.6}, "champion": {"r2": 0.55}}, True, []),
])
def test_gate_table(kwargs, passed, failing):
    result = gates(**kwargs)
    assert result.passed is passed
    assert [c.name for c in result.failed()] == failing
    assert all(c.required is not None for c in result.checks)


APPROVAL = policy.DEFAULT_POLICY_YAML.replace("required: false\n    approvers: 1", "required: true\n    approvers: 2")


@pytest.mark.parametrize("approvals, passed", [
    ((), False), (("sam",), False), (("ann",), False), (("ann", "sam"), False), (("ann", "bob"), True),
    (("ann", "ann"), False),
])
def test_approvals_exclude_the_trainer_and_count_people_once(approvals, passed):
    result = gates(approvals=approvals, text=APPROVAL)
    check = next(c for c in result.checks if c.name == "approvals")
    assert check.passed is passed and result.passed is passed
