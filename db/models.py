"""SQLAlchemy 2.0 typed models of the metadata store. Alembic owns the schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    # Set for a generated password (shown once): the next login must choose a new one.
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    # The user the token acts for (separation of duties compares owners); it dies with their deactivation.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", name="fk_api_tokens_owner_id_users"))
    expires_at: Mapped[datetime | None]


class BrowserSession(Base):
    """A signed-in browser: the HttpOnly cookie holds a random id, this row its sha256 (never the id)."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    client: Mapped[str] = mapped_column(String(64), default="")


class LoginThrottle(Base):
    """Failed logins per key (``user:NAME`` or ``client:ADDRESS``): backoff, and one audit event a window."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    first_failed_at: Mapped[datetime]
    last_failed_at: Mapped[datetime]
    blocked_until: Mapped[datetime | None]


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_ts", "ts"),
        Index("ix_audit_actor", "actor"),
        Index("ix_audit_action", "action"),
        Index("ix_audit_subject", "subject"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    # Canonical JSON text exactly as hashed (core.audit.dumps_details); read it through .details.
    details_json: Mapped[str] = mapped_column("details", Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    @property
    def details(self) -> dict[str, Any]:
        return json.loads(self.details_json)


class AuditHead(Base):
    """One row: the chain's last sequence number and hash. Updating it serialises appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    hash: Mapped[str] = mapped_column(String(64))


class Lease(Base):
    """A named, expiring claim held by one process (e.g. the one scheduler of a deployment)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime]


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(255), default="queued")
    log: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    worker: Mapped[str | None] = mapped_column(String(255))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # issue 26: ``error`` is the one-line reason in words; the traceback (workspace paths removed) is for admins
    traceback: Mapped[str | None] = mapped_column(Text)


class Schedule(Base):
    """A recurring job. The scheduler process mirrors these rows into APScheduler."""

    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    cron: Mapped[str] = mapped_column(String(64))
    paused: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str] = mapped_column(String(255), default="")
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- datasets (issue 3) ---------------------------------------------------------------------------

class Dataset(Base):
    """A named table whose contents change over time as numbered, content-addressed versions."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Bumped with a guarded UPDATE when a version is added: it serialises concurrent registrations.
    latest_version: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetSchema(Base):
    """One version of a dataset's expected schema (inferred from version 1, then edited by people)."""

    __tablename__ = "dataset_schemas"
    __table_args__ = (UniqueConstraint("dataset_id", "version", name="uq_dataset_schemas_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int]
    spec: Mapped[dict[str, Any]]
    note: Mapped[str] = mapped_column(String(255), default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatasetVersion(Base):
    """One stored version: its file is ``datasets/<sha256>.parquet`` in the workspace store."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_version"),
        UniqueConstraint("dataset_id", "sha256", name="uq_dataset_versions_sha256"),
        Index("ix_dataset_versions_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[list[str]] = mapped_column(JSON)
    dtypes: Mapped[dict[str, Any]]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(255))
    source_query: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id", ondelete="SET NULL"))
    schema_version: Mapped[int]
    certificate_passed: Mapped[bool]
    certificate_at: Mapped[datetime]
    certificate: Mapped[list[dict[str, Any]]] = mapped_column(JSON, deferred=True)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # issue 26: a deprecated version is never picked by default (training, retrain, scoring); restore clears it
    deprecated_at: Mapped[datetime | None]
    deprecated_by: Mapped[str | None] = mapped_column(String(128))
    deprecation_reason: Mapped[str | None] = mapped_column(Text)


class DatasetRun(Base):
    """A training run (MLflow run id) that used a dataset version: the lineage link."""

    __tablename__ = "dataset_runs"
    __table_args__ = (
        UniqueConstraint("dataset_version_id", "run_id", name="uq_dataset_runs_run"),
        Index("ix_dataset_runs_run_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str | None] = mapped_column(String(255))
    model_version: Mapped[int | None]
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceDatabase(Base):
    """A database an admin configured as a source of dataset versions (queried read-only)."""

    __tablename__ = "source_databases"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(255), default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lock(Base):
    """A named row that transactions update to serialise work on one thing (e.g. one model's aliases)."""

    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    counter: Mapped[int] = mapped_column(default=0)


class AliasMove(Base):
    """Every move of a model alias (champion, challenger): the production history."""

    __tablename__ = "alias_history"
    __table_args__ = (Index("ix_alias_history_model", "model", "alias", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None]
    to_version: Mapped[int | None]
    action: Mapped[str] = mapped_column(String(32))  # promote | force_promote | rollback | challenger
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    forced: Mapped[bool] = mapped_column(default=False)
    checks: Mapped[dict[str, Any] | None]
    ts: Mapped[datetime] = mapped_column(default=utcnow)


class CurrentAlias(Base):
    """Where each model alias (champion, challenger) points now: the truth serving and every flow read.

    Written only with a row of ``alias_history`` (``core/registry/state.py``). MLflow's alias is a projection
    of this row; ``projected`` is the version the ``aliases.sync`` job last set there (None: nothing yet), so
    that job can tell a projection still to be made from a move made by hand in MLflow.
    """

    __tablename__ = "current_aliases"

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int | None]  # None: the alias was removed
    move_id: Mapped[int] = mapped_column(ForeignKey("alias_history.id"))
    since: Mapped[datetime] = mapped_column(default=utcnow)
    projected: Mapped[int | None]


class GateEvaluation(Base):
    """The policy gates of one model version as evaluated at a moment (registration, promotion)."""

    __tablename__ = "gate_evaluations"
    __table_args__ = (Index("ix_gate_evaluations_version", "model", "version", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    version: Mapped[int]
    context: Mapped[str] = mapped_column(String(32))
    passed: Mapped[bool]
    checks: Mapped[dict[str, Any]]
    ts: Mapped[datetime] = mapped_column(default=utcnow)


class PromotionRequest(Base):
    __tablename__ = "promotion_requests"
    __table_args__ = (Index("ix_promotion_requests_model", "model", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    version: Mapped[int]
    requested_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|approved|rejected|promoted
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]


class Approval(Base):
    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("request_id", "approver", name="uq_approvals_request_approver"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("promotion_requests.id", ondelete="CASCADE"))
    approver: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject
    comment: Mapped[str] = mapped_column(Text, default="")
    ts: Mapped[datetime] = mapped_column(default=utcnow)


# -- training (issue 4) ---------------------------------------------------------------------------

class TrainingRun(Base):
    """One training run: what was trained on which data version, how it scored, where MLflow keeps it.

    A row is written when the job starts (status ``running``) and completed in one transaction with
    the ``model.trained`` audit event; heavy JSON (plots, reference statistics) is loaded only on demand.
    """

    __tablename__ = "training_runs"
    __table_args__ = (
        Index("ix_training_runs_dataset", "dataset_name", "id"),
        Index("ix_training_runs_model", "model_name", "model_version"),
        Index("ix_training_runs_status", "status", "id"),
        Index("ix_training_runs_kind", "model_kind", "id"),
        Index("ix_training_runs_job", "job_id"),
        Index("ix_training_runs_mlflow_run", "mlflow_run_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id", ondelete="SET NULL"))
    dataset_name: Mapped[str] = mapped_column(String(64))
    dataset_version: Mapped[int]
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[int | None]
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    mlflow_experiment_id: Mapped[str | None] = mapped_column(String(64))
    model_uri: Mapped[str | None] = mapped_column(String(255))
    model_kind: Mapped[str] = mapped_column(String(64))
    task: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(255))
    sensitive: Mapped[str | None] = mapped_column(String(255))
    params: Mapped[dict[str, Any]]
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    primary_metric: Mapped[str | None] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any] | None]
    baseline: Mapped[dict[str, Any] | None]
    fairness: Mapped[dict[str, Any] | None]
    plots: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)
    reference: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)
    search: Mapped[dict[str, Any] | None] = mapped_column(JSON, deferred=True)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running|succeeded|failed|cancelled
    error: Mapped[str | None] = mapped_column(Text)
    code_version: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


# -- serving (issue 6) ----------------------------------------------------------------------------

_BIGINT_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only INTEGER keys


class PredictionLog(Base):
    """One served prediction (one record of a request): what came in, what the model said, how fast.

    ``inputs`` is the record as the model saw it (its columns, cast); ``input_hash`` is the sha256
    of that record's canonical JSON. Written in batches by the API's background writer.
    """

    __tablename__ = "prediction_log"
    __table_args__ = (
        Index("ix_prediction_log_model_ts", "model", "ts"),
        Index("ix_prediction_log_request", "request_id", "record_index"),
        Index("ix_prediction_log_ts", "ts"),
    )

    id: Mapped[int] = mapped_column(_BIGINT_ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64))
    record_index: Mapped[int]
    ts: Mapped[datetime]
    model: Mapped[str] = mapped_column(String(255))
    alias: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    input_hash: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]]
    output: Mapped[Any] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)
    # The actor (``user:NAME`` / ``token:NAME``) whose request this was; feedback is bound to it.
    requested_by: Mapped[str | None] = mapped_column(String(128))


class Feedback(Base):
    """Ground truth for one logged prediction (request_id + record index), for performance monitoring."""

    __tablename__ = "prediction_feedback"
    __table_args__ = (
        UniqueConstraint("request_id", "record_index", name="uq_prediction_feedback_record"),
        Index("ix_prediction_feedback_model_ts", "model", "ts"),
        # issue 29: labelled predictions are read newest request first (request ids begin with their time)
        Index("ix_prediction_feedback_model_request", "model", "request_id"),
    )

    id: Mapped[int] = mapped_column(_BIGINT_ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64))
    record_index: Mapped[int]
    model: Mapped[str] = mapped_column(String(255))
    label: Mapped[Any] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(128))
    ts: Mapped[datetime] = mapped_column(default=utcnow)


class PredictionError(Base):
    """A refused or failed predict request (no prediction was served), for the error rate."""

    __tablename__ = "prediction_errors"
    __table_args__ = (Index("ix_prediction_errors_model_ts", "model", "ts"),)

    id: Mapped[int] = mapped_column(_BIGINT_ID, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime]
    model: Mapped[str] = mapped_column(String(255))
    alias: Mapped[str] = mapped_column(String(64))
    status: Mapped[int]
    message: Mapped[str] = mapped_column(Text)


class DriftCheck(Base):
    """One drift comparison of current data against a model version's reference statistics.

    ``columns`` maps column → {kind, method, statistic, p_value, psi, distance, drifted, ...};
    ``predictions`` holds the same for the model's outputs; ``report_path`` is the Evidently HTML.
    """

    __tablename__ = "drift_checks"
    __table_args__ = (Index("ix_drift_checks_model_ts", "model", "ts"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(String(255))
    version: Mapped[int]
    source: Mapped[str] = mapped_column(String(16))  # window | upload | dataset
    window: Mapped[str] = mapped_column(String(255))  # human description: "last 24 h", "file x.csv", "churn v3"
    current_rows: Mapped[int]
    reference_rows: Mapped[int]
    threshold: Mapped[float] = mapped_column(Float)  # drift share above which the dataset counts as drifted
    drift_share: Mapped[float] = mapped_column(Float)
    drift_detected: Mapped[bool]
    columns: Mapped[dict[str, Any]]
    predictions: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    report_path: Mapped[str | None] = mapped_column(String(1024))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(128))


class AlertChannel(Base):
    """Where alerts go: a Slack incoming webhook, a generic HMAC-signed webhook, or email over SMTP."""

    __tablename__ = "alert_channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # slack | webhook | email
    config: Mapped[dict[str, Any]]
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Base):
    """One raised alert (drift, performance, job failure, promotion, rollback, certificate) and its deliveries.

    ``suppressed`` alerts fell inside the cooldown of an earlier one for the same model and condition:
    stored and shown, not sent. ``deliveries`` lists {channel, ok, attempts, error} per channel.
    """

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_ts", "ts"), Index("ix_alerts_model_condition", "model", "condition", "ts"))

    id: Mapped[int] = mapped_column(primary_key=True)
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str | None] = mapped_column(String(255))
    condition: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    title: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
    suppressed: Mapped[bool] = mapped_column(default=False)
    deliveries: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # issue 26: what the cooldown is about within the condition (a job kind, a dataset version); None: the model
    subject: Mapped[str | None] = mapped_column(String(255))


class ModelCard(Base):
    """Model card fields of one model version, edited by scientists and audited."""

    __tablename__ = "model_cards"

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    intended_use: Mapped[str] = mapped_column(Text, default="")
    limitations: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(128), default="")
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- issue 28: the model inventory, periodic reviews and signed test reports ----------------------

class ModelProfile(Base):
    """A model's inventory entry (the model-level card): its owner account, intended and out-of-scope use, tags."""

    __tablename__ = "model_profiles"

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), default="")  # a username ("" : nobody named yet)
    intended_use: Mapped[str] = mapped_column(Text, default="")
    out_of_scope_use: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelReview(Base):
    """One periodic review of a model, recorded by an approver: notes and outcome (continue, retrain, retire)."""

    __tablename__ = "model_reviews"
    __table_args__ = (Index("ix_model_reviews_model", "model", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    version: Mapped[int | None]  # the champion when reviewed
    reviewer: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))
    notes: Mapped[str] = mapped_column(Text)
    risk_tier: Mapped[str] = mapped_column(String(16))
    next_due: Mapped[datetime | None]  # None: the tier asks for no periodic review
    ts: Mapped[datetime] = mapped_column(default=utcnow)


class SignedTestReport(Base):
    """A dated, signed test report of one gate evaluation: the signed document exactly as handed out."""

    __tablename__ = "test_reports"
    __table_args__ = (Index("ix_test_reports_version", "model", "version", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(255))
    version: Mapped[int]
    context: Mapped[str] = mapped_column(String(32))
    passed: Mapped[bool]
    report_sha256: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)  # the signed file (canonical JSON): report + signatures
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- issue 25: batch scoring --------------------------------------------------------------------------

class BatchRun(Base):
    """One batch scoring run (``cli.py score``, a queued or scheduled batch job): what was scored with which
    version, where the output went and its sha256. Its rows are in the prediction log under ``id`` (the batch
    id is the request id of every row it scored)."""

    __tablename__ = "batch_runs"
    __table_args__ = (Index("ix_batch_runs_model", "model", "started_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the batch id (time-prefixed, 32 hex)
    model: Mapped[str] = mapped_column(String(255))
    version: Mapped[int]
    alias: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(Text)  # where the rows came from (a file name, dataset:V, sql:NAME)
    out: Mapped[str] = mapped_column(Text)  # where the output went (a path, s3:// key, sql:NAME/TABLE)
    id_column: Mapped[str | None] = mapped_column(String(255))
    explain: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | succeeded | failed
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    output_sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None]
    schedule: Mapped[str | None] = mapped_column(String(255))  # the schedule that fired it, if any
    created_by: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    seconds: Mapped[float | None] = mapped_column(Float)


# -- issue 24: bring your own model ------------------------------------------------------------------

class ModelImport(Base):
    """A model version that came from a file trained elsewhere (``cli.py model import``, the Registry page, the
    API), or a retrain that refitted such a model: where it came from, its format and sha256. Its evaluation,
    gates and lineage are its ``training_runs`` row's, like any version's."""

    __tablename__ = "model_imports"
    __table_args__ = (Index("ix_model_imports_model", "model_name", "model_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    training_run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), unique=True)
    model_name: Mapped[str] = mapped_column(String(255))
    model_version: Mapped[int]
    file_name: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(32))  # skops | xgboost-json | xgboost-ubj | lightgbm-text
    estimator: Mapped[str] = mapped_column(String(512))  # e.g. "Pipeline(ColumnTransformer → XGBClassifier)"
    refittable: Mapped[bool] = mapped_column(default=False)
    trusted_types: Mapped[dict[str, Any]]  # {"types": [...]}: the skops types beyond skops' defaults it needed
    claimed_metrics: Mapped[dict[str, Any] | None]  # what the notebook said; shown, never gated
    description: Mapped[str | None] = mapped_column(Text)
    refit_of: Mapped[int | None]  # the version a retrain refitted (None: imported from a file)
    imported_by: Mapped[str] = mapped_column(String(128))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- issue 29: speed and crash safety ------------------------------------------------------------------

class PendingRegistration(Base):
    """A model version being registered: recorded before MLflow is asked to create it (keyed by the MLflow
    run), ``committed`` once LeanOps has stored the version's run and gates, gone once the version's
    ``leanops.pending`` tag is removed in MLflow. A row whose job stopped is what the sweep of any process
    that opens the workspace (``core.training.pending``) takes back: the version deleted, audited."""

    __tablename__ = "pending_registrations"

    mlflow_run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    training_run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"))
    job_id: Mapped[int | None]
    model_name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default="registering")  # registering | committed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
