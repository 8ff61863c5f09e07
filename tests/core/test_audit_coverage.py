"""Every mutating core operation writes to the audit log.

"Mutating" is found by introspection: every public function of a ``core`` module whose first parameter
is a Session or a session factory and that takes an ``actor``, plus the few audited operations that
have no actor parameter (logins, the first admin). Each one has a case below that calls it for real
in one workspace (a real MLflow store, a trained model) and must leave at least one new audit event.
A new mutating function without a case fails ``test_every_mutating_function_has_a_case``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

import core
from core import audit
from core.actors import Actor, cli_actor, system_actor
from core.platform.database import transaction
from core.training.spec import parse_spec
from db.models import AuditEvent
from tests.support.training import *  # noqa: F403
from tests.support.training import add_dataset, small_churn

ADMIN, SAM, ANN = cli_actor(), Actor("sam", "scientist"), Actor("ann", "approver")

# Not operations of their own: the audit append itself, and the permission check (audited on refusal,
# see tests/core/test_auth.py).
EXEMPT = {"audit.record": "is the audit log", "accounts.auth.require": "a check; a refusal is audited",
          "monitoring.shadow_comparison.compare":
              "reads only (the decision that acts on it, shadow_comparison.run, is audited)",
          "monitoring.shadow_comparison.shared": "reads only: compare, shared per window",
          "accounts.sessions.start": "opened by a login, which auth.login records as login.ok",
          "promotion.test_reports.issue": "the signed record of a gate evaluation; the registration, approval or "
                                          "promotion it documents is the audited act",
          "promotion.gates.evaluate_gates": "stores a gate evaluation inside registration, approval or promotion "
                                            "(the audited acts); its actor only names the evaluator",
          "promotion.approvals.pending_for": "reads only: the requests an approver may decide (the inbox)",
          "promotion.approvals.count_pending_for": "reads only: how many requests wait (the sidebar's count)",
          "platform.job_queue.traceback_of": "reads only: a failed job's traceback, for admins"}
EXTRA = {"accounts.auth.login", "accounts.auth.bootstrap_admin"}  # audited, but act for no actor parameter


def mutating_functions() -> set[str]:
    found = set(EXTRA)
    for info in pkgutil.walk_packages(core.__path__, "core."):
        module = importlib.import_module(info.name)
        short = info.name.removeprefix("core.")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("_") or fn.__module__ != module.__name__:
                continue
            params = list(inspect.signature(fn).parameters.values())
            first = str(params[0].annotation) if params else ""
            if "actor" in {p.name for p in params} and ("Session" in first or "sessionmaker" in first):
                found.add(f"{short}.{name}")
    return found - set(EXEMPT)


class Ctx:
    """One workspace shared by the cases, in order (a later case may use what an earlier one made)."""

    def __init__(self, factory: Any, settings: Any) -> None:
        self.factory, self.settings = factory, settings
        self.ids: dict[str, Any] = {}

    def tx(self, fn: Callable[[Any], Any]) -> Any:
        with transaction(self.factory) as session:
            return fn(session)

def _train(ctx: Ctx, **spec: Any) -> int:
    from core.promotion.registration import train

    spec = {"dataset": "churn", "target": "churn", "model": "linear", "sensitive": "gender"} | spec
    return train(ctx.factory, ctx.settings, spec, actor=Actor("sam", "scientist", "job"),
                 log=lambda line: None)["model_version"]


def _source_db(ctx: Ctx) -> str:
    path = ctx.settings.home.parent / "source.db"  # outside the workspace, as a source must be
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (a INTEGER, b TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"x{i}") for i in range(20)])
    return f"sqlite:///{path}"


def _complete(ctx: Ctx) -> None:
    """Record a run as completed (what the train job does after registering the version)."""
    from core.training import runs

    spec = parse_spec({"dataset": "churn:1", "target": "churn", "model": "dummy"})
    run_id = ctx.tx(lambda s: runs.start(
        s, job_id=None, spec=spec, dataset_version_id=ctx.ids["dataset_version_id"], dataset_name="churn",
        dataset_version=1, sha256=ctx.ids["sha256"], task="classification", params={}, code_version="test",
        created_by="sam"))
    ctx.tx(lambda s: runs.complete(
        s, run_id=run_id, actor=SAM, params={}, metrics={"f1": 0.5}, baseline={}, fairness={}, plots={},
        reference={}, search=None, model_version=99, model_uri="models:/m-none"))


def _served(ctx: Ctx, hours_ago: float = 0) -> None:
    """One logged prediction (what the serving API's log writer inserts) for feedback to refer to."""
    from datetime import timedelta

    from db.models import PredictionLog, utcnow

    request_id = "req-1" if not hours_ago else f"req-old-{hours_ago}"
    ts = utcnow() - timedelta(hours=hours_ago)
    ctx.tx(lambda s: s.add(PredictionLog(request_id=request_id, record_index=0, ts=ts, model="churn",
                                         alias="champion", version=1, input_hash="0" * 64, inputs={"a": 1},
                                         output="yes", latency_ms=1.0, requested_by=SAM.name)))


def _channel(ctx: Ctx) -> int:
    from core.alerts import channels

    if "channel" not in ctx.ids:
        ctx.ids["channel"] = ctx.tx(lambda s: channels.add_channel(
            s, actor=ADMIN, name="ops-hook", kind="webhook",
            config={"url": "http://127.0.0.1:9/hook", "secret": "s3cret-s3cret-s3cret"},
            keys=core.secrets.load_keys(ctx.settings))).id
    return ctx.ids["channel"]


# name → the call; run in this order. Each case must leave at least one new audit event.
CASES: dict[str, Callable[[Ctx], Any]] = {
    "audit_checkpoints.verify_and_record": lambda c: core.audit_checkpoints.verify_and_record(
        c.factory, c.settings, actor=ADMIN),
    "audit_checkpoints.write": lambda c: (core.audit_checkpoints.ensure_key(c.settings),
                                          core.audit_checkpoints.write(c.factory, c.settings, actor=ADMIN)),
    "audit_checkpoints.write_if_due": lambda c: (core.audit_checkpoints.ensure_key(c.settings),
                                                 core.audit_checkpoints.write_if_due(  # an hour on: due
                                                     c.factory, c.settings, actor=ADMIN,
                                                     now=core.audit.utcnow() + core.audit_checkpoints.HOURLY * 2)),
    "accounts.auth.bootstrap_admin": lambda c: c.tx(lambda s: core.accounts.auth.bootstrap_admin(
        s, username="root-admin", password="admin-pass-123")),
    "accounts.auth.create_user": lambda c: c.tx(lambda s: core.accounts.auth.create_user(
        s, actor=ADMIN, username="ann", role="approver", password="password-123")),
    "accounts.auth.login": lambda c: c.tx(lambda s: core.accounts.auth.login(
        s, username="ann", password="password-123", max_failures=5, lockout_seconds=60)),
    "accounts.auth.logout": lambda c: c.tx(lambda s: core.accounts.auth.logout(s, actor=ANN)),
    "accounts.auth.set_role": lambda c: c.tx(lambda s: core.accounts.auth.set_role(s, actor=ADMIN, username="ann",
                                                                                   role="admin")),
    "accounts.auth.reset_password": lambda c: c.tx(lambda s: core.accounts.auth.reset_password(
        s, actor=ADMIN, username="ann", password="password-456")),
    "accounts.auth.change_password": lambda c: c.tx(lambda s: core.accounts.auth.change_password(
        s, actor=ANN, current="password-456", new="password-789")),
    "accounts.auth.set_active": lambda c: c.tx(lambda s: core.accounts.auth.set_active(s, actor=ADMIN, username="ann",
                                                                                       active=False)),
    "accounts.auth.create_token": lambda c: c.ids.__setitem__("token", c.tx(lambda s: core.accounts.auth.create_token(
        s, actor=ADMIN, role="viewer", name="ci")[1].id)),
    "accounts.auth.revoke_token": lambda c: c.tx(lambda s: core.accounts.auth.revoke_token(s, actor=ADMIN,
                                                                                           token_id=c.ids["token"])),
    "data.datasets.register": lambda c: c.tx(lambda s: core.data.datasets.register(
        s, actor=SAM, name="extra", data=small_churn(200), store=c.settings.home, source="test")),
    "data.schemas.update_schema": lambda c: c.tx(lambda s: core.data.schemas.update_schema(
        s, actor=SAM, name="extra", spec=_edited_schema(s), note="tighter")),
    "data.sources.add_source": lambda c: c.tx(lambda s: core.data.sources.add_source(
        s, c.settings, actor=ADMIN, name="warehouse", url=_source_db(c))),
    "data.sources.register_query": lambda c: c.tx(lambda s: core.data.sources.register_query(
        s, c.settings, actor=SAM, source="warehouse", sql="SELECT a, b FROM t", name="from-sql")),
    "data.sources.remove_source": lambda c: c.tx(lambda s: core.data.sources.remove_source(
        s, actor=ADMIN, name="warehouse", keys=core.secrets.load_keys(c.settings))),
    "platform.job_queue.enqueue": lambda c: c.ids.__setitem__("job", c.tx(lambda s: core.platform.job_queue.enqueue(
        s, actor=SAM, kind="train", params={"dataset": "churn", "target": "churn"}).id)),
    "platform.job_queue.cancel": lambda c: c.tx(lambda s: core.platform.job_queue.cancel(
        s, actor=SAM, job_id=c.ids["job"])),
    "training.pipeline.launch": lambda c: c.tx(lambda s: core.training.pipeline.launch(
        s, actor=SAM, spec=core.training.spec.parse_spec({"dataset": "churn", "target": "churn"}))),
    "training.runs.complete": _complete,
    "training.runs.reproduce": lambda c: c.tx(lambda s: core.training.runs.reproduce(
        s, actor=SAM, run_id=c.ids["run_id"])),
    "training.workflow.train": lambda c: core.training.workflow.train(
        c.factory, c.settings, {"dataset": "churn", "target": "churn", "model": "dummy"}, actor=SAM,
        log=lambda line: None),
    "promotion.registration.train": lambda c: _train(c, model="dummy"),
    "data.lineage.link_run": lambda c: c.tx(lambda s: core.data.lineage.link_run(
        s, actor=SAM, ref="churn:1", run_id="external-run-1")),
    "registry.cards.save": lambda c: c.tx(lambda s: core.registry.cards.save(
        s, actor=SAM, model="churn", version=1, intended_use="churn ranking", limitations="", owner="sam")),
    "registry.state.move": lambda c: c.tx(lambda s: core.registry.state.move(
        s, actor=ADMIN, model="churn", alias="challenger", to=1, action="challenger", reason="test")),
    "promotion.moves.set_challenger": lambda c: c.tx(lambda s: core.promotion.moves.set_challenger(
        s, c.settings, actor=SAM, model="churn", version=1, reason="test")),
    "promotion.approvals.request_promotion": lambda c: c.ids.__setitem__("request", c.tx(
        lambda s: core.promotion.approvals.request_promotion(
            s, actor=SAM, model="churn", version=1, reason="ready").id)),
    "promotion.approvals.decide": lambda c: core.promotion.approvals.decide(
        c.factory, c.settings, actor=ANN, request_id=c.ids["request"], approve=True),
    "promotion.moves.promote": lambda c: core.promotion.moves.promote(
        c.factory, c.settings, actor=ADMIN, model="churn", version=2, reason="emergency", force=True),
    "promotion.moves.rollback": lambda c: core.promotion.moves.rollback(
        c.factory, c.settings, actor=ANN, model="churn"),
    "promotion.moves.promote_in": lambda c: c.tx(lambda s: core.promotion.moves.promote_in(
        s, c.settings, actor=ADMIN, model="churn", version=2, reason="emergency again", force=True)),
    "promotion.moves.rollback_in": lambda c: c.tx(lambda s: core.promotion.moves.rollback_in(
        s, c.settings, actor=ANN, model="churn", reason="back again")),
    "retraining.retrain.retrain": lambda c: core.retraining.retrain.retrain(
        c.factory, c.settings, {"model": "churn", "trigger": "manual", "reason": "test"}, actor=SAM,
        log=lambda line: None),
    "serving.feedback.record_feedback": lambda c: (_served(c), c.tx(
        lambda s: core.serving.feedback.record_feedback(
            s, actor=SAM, model="churn", request_id="req-1", labels=["yes"], store=c.settings.data_store))),
    "platform.prediction_log.retention.purge": lambda c: core.platform.prediction_log.retention.purge(
        c.factory, actor=system_actor("retention"), days=1),
    "platform.prediction_log.parquet.compact": lambda c: (
        _served(c, hours_ago=3), core.platform.prediction_log.parquet.compact(
            c.factory, c.settings.data_store, actor=system_actor("compaction"), holder="test",
            scratch=c.settings.home / "tmp")),
    "platform.prediction_log.export.export": lambda c: core.platform.prediction_log.export.export(
        c.factory, c.settings.data_store, actor=ADMIN, model="churn", out=c.settings.home / "export.csv"),
    "platform.schedules.ensure": lambda c: c.tx(lambda s: core.platform.schedules.ensure(
        s, actor=ADMIN, name="nightly", kind="audit.verify", cron="30 3 * * *")),
    "platform.schedules.set_cron": lambda c: c.tx(lambda s: core.platform.schedules.set_cron(
        s, actor=ADMIN, name="nightly", cron="15 4 * * *")),
    "platform.schedules.set_paused": lambda c: c.tx(lambda s: core.platform.schedules.set_paused(
        s, actor=ADMIN, name="nightly", paused=True)),
    "platform.schedules.remove": lambda c: c.tx(lambda s: core.platform.schedules.remove(
        s, actor=ADMIN, name="nightly")),
    "alerts.channels.add_channel": _channel,
    "alerts.channels.change_channel": lambda c: c.tx(lambda s: core.alerts.channels.change_channel(
        s, actor=ADMIN, channel_id=_channel(c), keys=core.secrets.load_keys(c.settings), enabled=False)),
    "alerts.notify.send_test": lambda c: core.alerts.notify.send_test(
        c.factory, c.settings, actor=ADMIN, channel_id=_channel(c)),
    "alerts.channels.remove_channel": lambda c: c.tx(lambda s: core.alerts.channels.remove_channel(
        s, actor=ADMIN, channel_id=_channel(c), keys=core.secrets.load_keys(c.settings))),
    "monitoring.checks.run_check": lambda c: core.monitoring.checks.run_check(
        c.factory, c.settings, actor=SAM, model="churn", version=1, source="upload", current=small_churn(300),
        filename="batch.csv", report=False),
    "compliance.reports.generate": lambda c: core.compliance.reports.generate(
        c.factory, c.settings, actor=ANN, model="churn", version=1, fmt="json"),
    "compliance.reports.write": lambda c: core.compliance.reports.write(
        c.factory, c.settings, actor=ADMIN, model="churn", version=1, fmt="pdf", out=c.settings.home / "r.pdf"),
    "secrets.seal_plain": lambda c: c.tx(lambda s: (_plain_source(s), core.secrets.seal_plain(
        s, actor=system_actor("init"), keys=core.secrets.load_keys(c.settings)))),
    "secrets.rotate_key": lambda c: core.secrets.rotate_key(c.factory, c.settings, actor=ADMIN),
}
CASES["promotion.moves.discard_challenger_in"] = lambda c: c.tx(lambda s: (
    core.promotion.moves.set_challenger(s, c.settings, actor=ADMIN, model="churn", version=1, reason="to discard"),
    core.promotion.moves.discard_challenger_in(s, c.settings, actor=ADMIN, model="churn", version=1,
                                               reason="shadow: not better")))
CASES["registry.stewardship.save_profile"] = lambda c: c.tx(lambda s: core.registry.stewardship.save_profile(
    s, actor=SAM, model="churn", owner="", intended_use="churn risk ranking", out_of_scope_use="pricing",
    tags=["retention"]))
CASES["registry.stewardship.record_review"] = lambda c: c.tx(lambda s: core.registry.stewardship.record_review(
    s, c.settings, actor=ANN, model="churn", outcome="continue", notes="metrics and drift looked at"))
CASES["accounts.sessions.revoke"] = lambda c: c.tx(lambda s: core.accounts.sessions.revoke(s, actor=ADMIN,
                                                                                           session_id=_session(s)))
CASES["accounts.auth.unlock"] = lambda c: c.tx(lambda s: (  # last: its user must not stop bootstrap_admin's
    core.accounts.auth.create_user(s, actor=ADMIN, username="locked-out", role="viewer", password="password-123"),
    core.accounts.auth.unlock(s, actor=ADMIN, username="locked-out")))



def _batch(ctx: Ctx) -> None:
    """Score dataset churn:1 with churn's champion into a file (batch scoring), remembering its batch id."""
    from core.serving import batch, batch_io

    source = batch.open_source(ctx.factory, ctx.settings, dataset="churn:1")
    ctx.ids["batch"] = batch.score(ctx.factory, ctx.settings, actor=SAM, model="churn", source=source,
                                   output=batch_io.FileOutput(ctx.settings.home / "scored.parquet")).batch_id


CASES["data.sources.query"] = lambda c: c.tx(lambda s: (
    core.data.sources.add_source(s, c.settings, actor=ADMIN, name="crm", url=_source_db(c)),
    core.data.sources.query(s, c.settings, actor=SAM, source="crm", sql="SELECT a, b FROM t")))
CASES["serving.batch.sql_source"] = lambda c: core.serving.batch.sql_source(
    c.factory, c.settings, actor=SAM, source="crm:SELECT a FROM t")
CASES["serving.batch.score"] = _batch


def _batch_s3(ctx: Ctx) -> None:
    """Score dataset churn:1, put on S3 (moto's server in a thread: the real protocol), into an S3 prefix."""
    from moto.server import ThreadedMotoServer
    from pydantic import SecretStr

    from core.serving import batch_parts
    from tests.support.net import free_port
    from tests.support.s3 import S3_KEY, S3_REGION, S3_SECRET, S3Server

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3Server(f"http://127.0.0.1:{port}")
        bucket = s3.new_bucket()
        s3.client().upload_file(str(ctx.settings.data_store.path(_dataset_key(ctx))), bucket, "in/churn.parquet")
        settings = ctx.settings.model_copy(update={
            "s3_endpoint_url": s3.endpoint, "s3_access_key_id": S3_KEY, "s3_secret_access_key": SecretStr(S3_SECRET),
            "s3_region": S3_REGION})
        batch_parts.score_s3(ctx.factory, settings, actor=SAM, model="churn", source=f"s3://{bucket}/in/",
                             out=f"s3://{bucket}/scores/")
    finally:
        server.stop()


def _dataset_key(ctx: Ctx) -> str:
    from core.data import datasets
    from core.platform.database import reading

    with reading(ctx.factory) as session:
        return datasets.resolve(session, ref="churn:1").path


CASES["serving.batch_parts.score_s3"] = _batch_s3
CASES["data.datasets.deprecate"] = lambda c: c.tx(lambda s: core.data.datasets.deprecate(
    s, actor=SAM, name="extra", version=1, reason="a test deprecation"))
CASES["data.datasets.restore"] = lambda c: c.tx(lambda s: core.data.datasets.restore(
    s, actor=SAM, name="extra", version=1))
CASES["compliance.reports.generate_pair"] = lambda c: core.compliance.reports.generate_pair(
    c.factory, c.settings, actor=ANN, model="churn", version=1)
CASES["serving.feedback.record_batch_feedback"] = lambda c: c.tx(
    lambda s: core.serving.feedback.record_batch_feedback(s, actor=SAM, model="churn", batch_id=c.ids["batch"],
                                                          ids=["0", "1"], labels=[0, 1], store=c.settings.data_store))
CASES["serving.batch_jobs.queue"] = lambda c: c.ids.__setitem__("batch_job", c.tx(
    lambda s: core.serving.batch_jobs.queue(s, c.settings, actor=SAM, model="churn", dataset="churn:1").id))
CASES["serving.batch_jobs.run"] = lambda c: core.serving.batch_jobs.run(
    c.factory, c.settings, actor=SAM, job_id=c.ids["batch_job"], params={"model": "churn", "dataset": "churn:1"},
    progress=lambda share, stage: None)


BYOM_FEATURES = ["tenure_months", "monthly_charges"]


def _byom_pipeline() -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline([("impute", SimpleImputer()), ("model", LogisticRegression())])


def _byom_import(ctx: Ctx, fn: Callable[..., Any]) -> Any:
    """A notebook's skops pipeline imported as a version of 'byom_cov' (the first import makes v1)."""
    import skops.io

    frame = small_churn()
    data = skops.io.dumps(_byom_pipeline().fit(frame[BYOM_FEATURES], frame["churn"]))
    return fn(ctx.factory, ctx.settings, actor=SAM, log=lambda line: None, model="byom_cov", file_name="m.skops",
              data=data, dataset="churn", target="churn")


def _byom_refit(ctx: Ctx, fn: Callable[..., Any]) -> Any:
    """A retrain's refit of the imported 'byom_cov' v1: an unfitted clone fitted on the dataset again."""
    with ctx.factory() as s:
        record = core.training.imports.of_version(s, model="byom_cov", version=1)
    return fn(ctx.factory, ctx.settings, actor=SAM, log=lambda line: None, champion=record,
              estimator=_byom_pipeline(), features=BYOM_FEATURES, dataset="churn", target="churn", sensitive=None)


def _byom_retrain_refit(ctx: Ctx) -> Any:
    from db.models import TrainingRun

    with ctx.factory() as s:
        record = core.training.imports.of_version(s, model="byom_cov", version=1)
        run = s.scalar(select(TrainingRun).where(TrainingRun.model_name == "byom_cov", TrainingRun.model_version == 1))
    return core.retraining.imported.refit(ctx.factory, ctx.settings, record=record, run=run, dataset="churn",
                                          actor=SAM, job_id=None, progress=None, log=lambda line: None)


CASES["training.imports.import_model"] = lambda c: _byom_import(c, core.training.imports.import_model)
CASES["promotion.imports.import_model"] = lambda c: _byom_import(c, core.promotion.imports.import_model)
CASES["training.imports.refit"] = lambda c: _byom_refit(c, core.training.imports.refit)
CASES["promotion.imports.refit"] = lambda c: _byom_refit(c, core.promotion.imports.refit)
CASES["retraining.imported.refit"] = _byom_retrain_refit



def _session(session: Any) -> int:
    """A browser session of ann's (what the login route opens), its row id."""
    from db.models import BrowserSession, User

    user_id = session.scalar(select(User.id).where(User.username == "ann"))
    core.accounts.sessions.start(session, actor=Actor("ann", "approver", user_id=user_id), user_agent="test",
                        client="127.0.0.1", max_hours=12)
    return session.scalar(select(func.max(BrowserSession.id)))


def _plain_source(session: Any) -> None:
    """A source row as a version before sealing stored it (its URL in plain text)."""
    from db.models import SourceDatabase

    session.add(SourceDatabase(name="plain", url="postgresql://reader:pw@db.example/w", created_by="admin"))
    session.flush()


def _edited_schema(session: Any) -> dict[str, Any]:
    """The current schema of dataset 'extra' with one rule tightened (a real edit)."""
    spec = core.data.schemas.current_schema(session, name="extra").spec
    columns = dict(spec["columns"])
    first = next(iter(columns))
    columns[first] = dict(columns[first]) | {"nullable": not columns[first].get("nullable", True)}
    return spec | {"columns": columns}


# How many mutating functions the flat core/ had before it became stage packages: the walk over the
# sub-packages must find at least these, so a move can never quietly empty this test.
FOUND_BEFORE_THE_MOVE = 40


def test_the_walk_finds_every_mutating_function_of_the_sub_packages():
    found = mutating_functions()
    assert len(found) >= FOUND_BEFORE_THE_MOVE, sorted(found)
    assert {name.split(".")[0] for name in found} >= {"data", "training", "promotion", "alerts", "platform"}


def test_every_mutating_function_has_a_case():
    missing = mutating_functions() - set(CASES)
    assert not missing, f"mutating core functions without an audit coverage case: {sorted(missing)}"


def test_every_mutating_function_records_an_audit_event(factory, workspace):
    mutating_functions()  # imports every core module the cases use
    ctx = Ctx(factory, workspace)
    registered = add_dataset(factory, workspace, small_churn())
    ctx.ids |= {"dataset_version_id": registered.id, "sha256": registered.sha256}
    _train(ctx)
    _train(ctx, model="dummy")  # v2: fails the F1 gate, so promoting it needs force
    with factory() as s:
        from db.models import TrainingRun

        ctx.ids["run_id"] = s.scalar(select(TrainingRun.id).where(TrainingRun.model_version == 1))
    silent, errors = [], []
    for name, case in CASES.items():
        module, _, fn = name.rpartition(".")
        if not hasattr(importlib.import_module(f"core.{module}") if _exists(module) else None, fn):
            continue  # not written yet (another issue); the completeness test catches it once it is
        with factory() as s:
            before = s.scalar(select(func.max(AuditEvent.seq))) or 0
        try:
            case(ctx)
        except Exception as exc:  # noqa: BLE001 - collected so one run names every broken case
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        with factory() as s:
            after = s.scalars(select(AuditEvent.action).where(AuditEvent.seq > before)).all()
        if not after:
            silent.append(name)
    assert not errors, "cases that could not run:\n" + "\n".join(errors)
    assert not silent, f"these mutating functions recorded no audit event: {silent}"
    with factory() as s:
        assert audit.verify(s).ok


def _exists(module: str) -> bool:
    return importlib.util.find_spec(f"core.{module}") is not None


@pytest.mark.parametrize("name", sorted(EXEMPT))
def test_exemptions_are_still_real_functions(name):
    module, _, fn = name.rpartition(".")
    assert callable(getattr(importlib.import_module(f"core.{module}"), fn))


def test_a_new_unaudited_function_would_be_caught(monkeypatch):
    """The introspection finds a mutating function it has never seen."""
    from sqlalchemy.orm import Session

    def rename_everything(session: Session, *, actor: Actor) -> None:  # pragma: no cover - never called
        return None

    rename_everything.__module__ = "core.data.datasets"
    monkeypatch.setattr(core.data.datasets, "rename_everything", rename_everything, raising=False)
    assert "data.datasets.rename_everything" in mutating_functions() - set(CASES)
