"""Creating and upgrading a workspace: folders, schema, first admin, default schedules, demo data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from core import audit, audit_checkpoints, secrets
from core.accounts import auth
from core.actors import system_actor
from core.platform import job_queue, schedules
from core.platform.database import migrate, transaction
from core.registry import state
from core.settings import Settings

DEFAULT_SCHEDULES = (
    ("audit-verify", "audit.verify", "30 3 * * *", "Verify the audit hash chain every night"),
    ("audit-checkpoint", "audit.checkpoint", "*/10 * * * *",
     "Sign the audit chain's head when LEANOPS_AUDIT_CHECKPOINT_EVENTS events came or an hour passed"),
    ("prediction-retention", "predictions.retention", "15 4 * * *",
     "Delete prediction log rows older than LEANOPS_PREDICTION_RETENTION_DAYS (183 by default)"),
    ("prediction-compaction", "predictions.compact", "7 * * * *",
     "Move each closed hour of the prediction log into Parquet partitions in the artifact store"),
    ("dataset-sweep", "datasets.sweep", "45 4 * * *",
     "Remove what killed uploads left in the data store: temporary files and files no dataset version points at"),
    ("alias-sync", "aliases.sync", "*/10 * * * *",
     "Keep MLflow's champion and challenger aliases as LeanOps recorded them; put back and alert hand moves"),
    ("monitor-performance", "monitor.performance", "*/15 * * * *",
     "Live performance, automatic rollback and data-growth retrains of every champion; per-model schedules"),
)


@dataclass(frozen=True)
class InitResult:
    home: str
    admin_user: str | None
    admin_password: str | None  # only when it was generated just now
    demo_files: tuple[str, ...]
    audit_public_key: str = ""  # verifies the signed audit checkpoints; printed so others keep a copy

    def as_dict(self) -> dict[str, object]:
        return {"home": self.home, "admin_user": self.admin_user, "admin_password": self.admin_password,
                "demo_files": list(self.demo_files), "audit_public_key": self.audit_public_key}


def _owner_only(settings: Settings) -> None:
    """The workspace folder 0700 and LeanOps' own files in it 0600 (the SQLite DB and its WAL, the keys, the
    checkpoint log): created under the process's umask (often 0644), they would be world-readable."""
    home = settings.home
    home.chmod(0o700)
    for name in ("leanops.db", "leanops.db-wal", "leanops.db-shm", "mlflow.db", "secret.key", "audit.key",
                 "audit-checkpoints.jsonl"):
        path = home / name
        if path.is_file():
            path.chmod(0o600)


def init_workspace(factory: sessionmaker[Session], settings: Settings, *, demo: bool,
                   generate_admin: bool = True) -> InitResult:
    """Idempotent: safe on an existing workspace (upgrades the schema, keeps users and data).

    Without ``LEANOPS_SECRET_KEY`` the workspace gets its key file (``secret.key``, 0600) when it has none;
    secrets stored in plain text by an older version are sealed here. Likewise without ``LEANOPS_AUDIT_KEY``
    it gets the Ed25519 key signing audit checkpoints (``audit.key``, 0600; public half in ``audit.pub``).
    """
    home, admin_user = settings.home, settings.admin_user
    admin_password = settings.admin_password.get_secret_value() if settings.admin_password else None
    home.mkdir(parents=True, exist_ok=True)
    _owner_only(settings)  # the workspace holds the DB, the keys and the checkpoint log: no one else reads into it
    settings.policies.write_default()
    keys = secrets.workspace_keys(settings)
    audit_public, audit_key_created = audit_checkpoints.ensure_key(settings)
    migrate(settings.db_url)
    _owner_only(settings)
    system = system_actor("init")
    with transaction(factory) as session:
        secrets.seal_plain(session, actor=system, keys=keys)
        if audit_key_created:  # the public key goes into the chain too: a copy the key file's owner cannot swap
            audit.record(session, system, "audit.key_created", "audit", {"public_key": audit_public})
        # Without a configured password the first admin's is generated, returned once for the caller to show
        # (`cli.py init` prints it on the terminal). A server whose output goes to a log passes
        # generate_admin=False: no admin is made there until `cli.py init` runs.
        fresh = auth.count_users(session) == 0 and bool(admin_password or generate_admin)
        generated = auth.bootstrap_admin(session, username=admin_user, password=admin_password) if fresh else None
        for name, kind, cron, description in DEFAULT_SCHEDULES:
            schedules.ensure(session, actor=system, name=name, kind=kind, cron=cron, description=description)
        if state.any_moves(session):
            # a workspace with champions: their drift/retrain schedules follow the policy (run by the worker)
            job_queue.enqueue(session, actor=system, kind="schedules.sync", params={})
    demo_files: list[str] = []
    if demo:
        demo_csv = write_demo_csv(settings)
        demo_files.append(str(demo_csv))
        register_demo_dataset(factory, settings, path=demo_csv)
    return InitResult(str(home), admin_user if fresh else None, generated, tuple(demo_files), audit_public)


def register_demo_dataset(factory: sessionmaker[Session], settings: Settings, *, path: Path) -> None:
    """The demo CSV as dataset "churn" (identical content on a re-run creates nothing)."""
    from core.data import datasets

    with transaction(factory) as session:
        datasets.register(session, actor=system_actor("init"), name="churn", data=path, filename=path.name,
                          store=settings.data_store, settings=settings, source="demo",
                          description="synthetic customer churn (demo)")


def write_demo_csv(settings: Settings) -> Path:
    from core.workspace.demo import churn_frame

    path = settings.home / "demo" / "churn.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        churn_frame().to_csv(tmp, index=False)
        tmp.replace(path)
    return path
