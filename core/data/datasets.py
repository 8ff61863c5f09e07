"""Datasets and their versions: register (content-addressed, certified, profiled), resolve, load.

A version's file is canonical Parquet at ``<store>/datasets/<sha256>.parquet`` (the workspace
folder, or ``s3://bucket/prefix/`` — ``store`` is the workspace's data store, or a folder for a local one); identical
content is stored once and registering it again creates nothing. Registration writes the file
under a temporary name, inserts the rows, then renames it into place; if the caller's
transaction rolls back afterwards the file is removed again, so the store and the database
never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, desc, event, func, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.accounts.auth import require
from core.actors import Actor, system_actor
from core.data.profile import VersionDiff, compare_profiles, compute_profile
from core.data.quality import Certificate, certify, infer_schema
from core.data.tables import Input, TableLimits, read_parquet, read_table, write_parquet
from core.errors import IntegrityError, InvalidInput, NotFound, StoreUnavailable
from core.platform import job_queue
from core.platform.storage import DataStore, LocalStore, as_store
from core.settings import Settings
from db.models import Dataset, DatasetSchema, DatasetVersion, utcnow

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
NAME_RULE = "use 1-64 letters, digits, '_' or '-', starting with a letter or digit"
API_SOURCE = "api:"  # the source of a version uploaded through the HTTP API starts so: "api:<file name>"


@dataclass(frozen=True)
class DatasetVersionView:
    """What callers see of a version. ``path`` is the store key, relative to the store root."""

    id: int
    dataset_id: int
    name: str
    version: int
    sha256: str
    rows: int
    columns: list[str]
    dtypes: dict[str, str]
    size_bytes: int
    source: str
    source_query: str | None
    description: str
    parent_version: int | None
    schema_version: int
    certificate_passed: bool
    certificate_at: datetime
    created_by: str
    created_at: datetime
    path: str
    deprecated_at: datetime | None = None
    deprecated_by: str | None = None
    deprecation_reason: str | None = None

    @property
    def deprecated(self) -> bool:
        return self.deprecated_at is not None

    @property
    def trusted(self) -> bool:
        """Whether a default may pick this version: its certificate passed and it is not deprecated."""
        return self.certificate_passed and self.deprecated_at is None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def file(self, settings: Settings) -> Path:
        """Where the version's file is in a local workspace."""
        return settings.home / self.path


@dataclass(frozen=True)
class Registration:
    """The outcome of ``register``: a new version, or the existing one with the same content."""

    created: bool
    version: DatasetVersionView
    certificate: Certificate
    previous_rows: int | None
    retrain_consider: int | None = None  # the follow-up job a new version queued (``register``)

    @property
    def message(self) -> str:
        v = self.version
        if not self.created:
            return f"This content is already {v.name} version {v.version} (sha256 {v.sha256[:12]}); nothing new."
        verdict = "passed" if self.certificate.passed else f"failed {len(self.certificate.failed)} check(s)"
        return f"Registered {v.name} version {v.version}: {v.rows} rows, certificate {verdict}."

    def as_dict(self) -> dict[str, Any]:
        v = self.version
        return {"name": v.name, "version": v.version, "sha256": v.sha256, "rows": v.rows, "columns": v.columns,
                "quality": {"passed": self.certificate.passed, "checks": self.certificate.checks},
                "created": self.created}


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    description: str
    versions: int
    latest_rows: int | None
    latest_passed: bool | None
    updated_at: datetime
    created_by: str


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInput(f"dataset name {name!r} is not allowed: {NAME_RULE}")
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` (the default version: the newest certified, not deprecated) or ``NAME:VERSION``."""
    name, _, version = (ref or "").strip().partition(":")
    check_name(name)
    if not version or version == "latest":
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(f"dataset reference {ref!r} is malformed: use NAME or NAME:VERSION (a number ≥ 1)")
    return name, int(version)


def key_for(sha256: str) -> str:
    return f"datasets/{sha256}.parquet"


# -- registering ---------------------------------------------------------------------------------

def register(session: Session, *, actor: Actor, name: str, data: Input, store: Path | DataStore, source: str,
             filename: str = "", description: str = "", source_query: str | None = None,
             max_bytes: int | None = None, limits: TableLimits | None = None,
             settings: Settings | None = None) -> Registration:
    """Register ``data`` (a path, bytes, a binary file or a DataFrame) as the next version of ``name``.

    Identical content (same sha256) creates nothing and returns the existing version. Bad input
    raises ``InvalidInput`` before anything is written. The caller commits. A file is refused over
    ``max_bytes`` (pass ``LEANOPS_MAX_UPLOAD_MB``) and, before its data is read, over ``limits``
    (pass ``TableLimits.of(settings)``; default: the settings' defaults). A new version queues its
    ``retrain.consider`` follow-up in the same transaction (``Registration.retrain_consider``).
    """
    require(session, actor, "datasets.write", f"dataset:{name}")
    check_name(name)
    table = read_table(data, filename=filename, max_bytes=max_bytes, limits=limits)
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is not None and (same := _by_sha(session, dataset.id, table.sha256)) is not None:
        return _existing(session, dataset, same)
    previous = _latest(session, dataset.id) if dataset is not None else None
    profile = compute_profile(table.frame, table.arrow, row_hashes=table.row_hashes)
    schema = schema_row(session, dataset.id) if dataset is not None else None
    spec = schema.spec if schema is not None else infer_schema(profile)
    now = utcnow()
    cert = certify(table.frame, profile=profile, spec=spec, schema_version=schema.version if schema else 1,
                   previous_rows=previous.rows if previous else None, at=now,
                   row_change_blocks=_row_change_blocks(settings))

    store = as_store(store)
    key = key_for(table.sha256)
    with store.staged(key, lambda tmp: write_parquet(table.arrow, tmp)) as staged:
        size = staged.size
        try:
            if dataset is None:
                dataset = Dataset(name=name, description=description, created_by=actor.name, latest_version=0)
                session.add(dataset)
                session.flush()
                session.add(DatasetSchema(dataset_id=dataset.id, version=1, spec=spec, created_by=actor.name,
                                          note="inferred from version 1"))
            else:  # take the dataset's lock, then look again: a concurrent registration may have won
                session.execute(update(Dataset).where(Dataset.id == dataset.id).values(updated_at=now))
                if (same := _by_sha(session, dataset.id, table.sha256)) is not None:
                    return _existing(session, dataset, same)
                previous = _latest(session, dataset.id)
            number = (previous.version if previous else 0) + 1
            row = DatasetVersion(
                dataset_id=dataset.id, version=number, sha256=table.sha256, rows=len(table.frame),
                columns=list(table.dtypes), dtypes=table.dtypes, size_bytes=size, source=source[:255],
                source_query=source_query, description=description, parent_id=previous.id if previous else None,
                schema_version=cert.schema_version, certificate_passed=cert.passed, certificate_at=now,
                certificate=cert.checks, profile=profile, created_by=actor.name, created_at=now)
            session.add(row)
            session.execute(update(Dataset).where(Dataset.id == dataset.id)
                            .values(latest_version=number, updated_at=now))
            session.flush()
        except DBIntegrityError as exc:
            if "UNIQUE" not in str(exc.orig).upper() and getattr(exc.orig, "sqlstate", None) != "23505":
                raise
            raise StoreUnavailable(f"another registration of dataset {name!r} happened at the same moment; "
                                   "try again") from None
        if staged.commit():
            _remove_if_rolled_back(session, store, key)
    audit.record(session, actor, "dataset.version_registered", f"dataset:{name}", {
        "name": name, "version": number, "sha256": table.sha256, "rows": row.rows,
        "previous_version": previous.version if previous else None,
        "previous_rows": previous.rows if previous else None, "columns": len(row.columns),
        "certificate_passed": cert.passed, "failed_checks": [_label(c) for c in cert.failed],
        "source": row.source, "new_dataset": number == 1})
    if not cert.passed:
        _alert_failed_certificate(session, settings, store, name, number, cert)
    # A new version may start a retrain (policy retrain.on_upload, retrain.on_data_growth): a later stage's
    # work, asked for by a job queued with the version, whichever entry uploaded it; the worker decides by
    # policy. retrain.on_upload is about versions pushed through the HTTP API, hence ``via_api``.
    follow_up = job_queue.enqueue(session, actor=system_actor("dataset-upload"), kind="retrain.consider",
                                  params={"dataset": name, "version": number,
                                          "via_api": source.startswith(API_SOURCE)})
    return Registration(created=True, version=_view(row, name), certificate=cert,
                        previous_rows=previous.rows if previous else None, retrain_consider=follow_up.id)


def _alert_failed_certificate(session: Session, settings: Settings | None, store: DataStore, name: str,
                              number: int, cert: Certificate) -> None:
    """A ``certificate`` alert once the registration commits, with the caller's settings (every entry passes
    them). Without them (a test registering into a bare folder): the local store's folder as the workspace
    and default delivery settings, built without reading the environment."""
    from core.alerts import notify

    failed = [_label(c) for c in cert.failed]
    settings = settings or Settings.model_construct(home=Path(getattr(store, "root", None) or "."))
    notify.notify_after_commit(
        session, settings, condition="certificate", model=f"dataset:{name}", subject=f"dataset:{name}:{number}",
        title=f"dataset {name}:{number}'s certificate failed ({cert.summary(limit=2)})",
        message=f"{name}:{number} failed {len(failed)} quality check(s): {cert.summary(limit=10)}. Defaults "
                "(training, retraining, scoring) keep using the newest version that passed.",
        details={"dataset": name, "version": number, "failed_checks": failed})


def _row_change_blocks(settings: Settings | None) -> bool:
    """Policy ``certificate.row_change`` (its ``default``): a row-count change fails a certificate only with
    ``check``; without settings (a bare folder) it warns."""
    if settings is None:
        return False
    try:
        return settings.policies.file().default.certificate.row_change == "check"
    except (InvalidInput, OSError):  # a broken policies.yaml does not stop an upload: the safe default
        return False


def _label(check: dict[str, Any]) -> str:
    return f"{check['check']}:{check['column']}" if check["column"] else check["check"]


def _by_sha(session: Session, dataset_id: int, sha256: str) -> DatasetVersion | None:
    return session.scalar(select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id,
                                                       DatasetVersion.sha256 == sha256))


def _latest(session: Session, dataset_id: int) -> DatasetVersion | None:
    return session.scalar(select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
                          .order_by(desc(DatasetVersion.version)).limit(1))


def schema_row(session: Session, dataset_id: int) -> DatasetSchema | None:
    """The dataset's current (newest) schema row."""
    return session.scalar(select(DatasetSchema).where(DatasetSchema.dataset_id == dataset_id)
                          .order_by(desc(DatasetSchema.version)).limit(1))


def _existing(session: Session, dataset: Dataset, row: DatasetVersion) -> Registration:
    cert = Certificate(passed=row.certificate_passed, checks=row.certificate, at=row.certificate_at,
                       schema_version=row.schema_version)
    parent = session.get(DatasetVersion, row.parent_id) if row.parent_id else None
    return Registration(created=False, version=_view(row, dataset.name), certificate=cert,
                        previous_rows=parent.rows if parent else None)


def _remove_if_rolled_back(session: Session, store: DataStore, key: str) -> None:
    """Delete a newly stored file again unless the transaction that points at it commits."""
    pending: list[tuple[DataStore, str]] = session.info.setdefault("leanops.new_files", [])
    pending.append((store, key))
    if session.info.get("leanops.file_hooks"):
        return
    session.info["leanops.file_hooks"] = True

    @event.listens_for(session, "after_commit")
    def _kept(s: Session) -> None:
        s.info["leanops.new_files"].clear()

    @event.listens_for(session, "after_transaction_end")
    def _undo(s: Session, transaction: Any) -> None:
        if transaction.parent is not None or not s.info["leanops.new_files"]:
            return
        files, s.info["leanops.new_files"] = list(s.info["leanops.new_files"]), []
        bind = s.get_bind()
        assert isinstance(bind, Engine)  # sessions come from sessionmaker(engine) (db.session)
        with bind.connect() as conn:
            for st, k in files:
                sha = k.removeprefix("datasets/").removesuffix(".parquet")
                if conn.scalar(select(func.count()).select_from(DatasetVersion)
                               .where(DatasetVersion.sha256 == sha)) == 0:
                    st.delete(k)


@dataclass(frozen=True)
class Sweep:
    temporary: int  # temporary files removed
    orphans: list[str]  # version files no row pointed at


def sweep_store(session: Session, *, store: Path | DataStore, older_than_s: float = 3600) -> Sweep:
    """Remove what killed registrations left in the store: temporary files, and version files no
    row points at (a process killed between the rename and the commit). Only files older than
    ``older_than_s`` are touched, so registrations in flight are safe."""
    found: Any = as_store(store)  # LocalStore or S3Store: both sweep and list, beyond the DataStore protocol
    temporary = found.sweep_temporary(older_than_s=older_than_s)
    old = {key.removeprefix("datasets/").removesuffix(".parquet"): key
           for key, age in found.keys("datasets") if age > older_than_s and key.endswith(".parquet")}
    shas, known = list(old), set()
    for i in range(0, len(shas), 500):
        known |= set(session.scalars(select(DatasetVersion.sha256).where(DatasetVersion.sha256.in_(shas[i:i + 500]))))
    orphans = [key for sha, key in old.items() if sha not in known and found.delete(key)]
    return Sweep(temporary=temporary, orphans=orphans)


# -- reading -------------------------------------------------------------------------------------

def _view(row: DatasetVersion, name: str) -> DatasetVersionView:
    return DatasetVersionView(
        id=row.id, dataset_id=row.dataset_id, name=name, version=row.version, sha256=row.sha256, rows=row.rows,
        columns=list(row.columns), dtypes=dict(row.dtypes), size_bytes=row.size_bytes, source=row.source,
        source_query=row.source_query, description=row.description,
        parent_version=row.version - 1 if row.parent_id else None,  # the parent is always the version before
        schema_version=row.schema_version, certificate_passed=row.certificate_passed,
        certificate_at=row.certificate_at, created_by=row.created_by, created_at=row.created_at,
        path=key_for(row.sha256), deprecated_at=row.deprecated_at, deprecated_by=row.deprecated_by,
        deprecation_reason=row.deprecation_reason)


def dataset_row(session: Session, *, name: str) -> Dataset:
    """The dataset named ``name``; NotFound lists the datasets there are."""
    check_name(name)
    dataset = session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        names = session.scalars(select(Dataset.name).order_by(Dataset.name).limit(20)).all()
        known = f"datasets are: {', '.join(names)}" if names else "there are no datasets yet"
        raise NotFound(f"no dataset named {name!r}; {known}")
    return dataset


def version_row(session: Session, ref: str) -> tuple[Dataset, DatasetVersion]:
    """The ORM rows behind a reference (for core modules; pages get views). A bare ``NAME`` means the
    version a default picks (``default_row``): the newest whose certificate passed and that is not
    deprecated, never merely the newest."""
    name, number = parse_ref(ref)
    dataset = dataset_row(session, name=name)
    if number is None:
        return dataset, default_row(session, dataset)
    row = session.scalar(select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id,
                                                      DatasetVersion.version == number))
    if row is None:
        have = dataset.latest_version
        known = f"versions are 1–{have}" if have > 1 else ("the only version is 1" if have else "it has no versions")
        raise NotFound(f"dataset {name!r} has no version {number}; {known}")
    return dataset, row


def default_row(session: Session, dataset: Dataset) -> DatasetVersion:
    """The version everything that implies one uses (the Training form, ``train --dataset NAME``, a retrain,
    a dataset drift check, scoring a dataset): the newest version whose certificate passed and that is not
    deprecated. NotFound says why no version qualifies and how to name one explicitly."""
    row = session.scalar(select(DatasetVersion).where(
        DatasetVersion.dataset_id == dataset.id, DatasetVersion.certificate_passed.is_(True),
        DatasetVersion.deprecated_at.is_(None)).order_by(desc(DatasetVersion.version)).limit(1))
    if row is not None:
        return row
    if not dataset.latest_version:
        raise NotFound(f"dataset {dataset.name!r} has no versions")
    newest = session.execute(select(DatasetVersion.version, DatasetVersion.certificate_passed,
                                    DatasetVersion.deprecated_at).where(DatasetVersion.dataset_id == dataset.id)
                             .order_by(desc(DatasetVersion.version)).limit(5)).all()
    why = ", ".join(f"v{v} {'is deprecated' if dep is not None else 'failed its certificate'}"
                    for v, passed, dep in newest)
    raise NotFound(f"dataset {dataset.name!r} has no version a default may use (certificate passed, not "
                   f"deprecated): {why}; name one explicitly as {dataset.name}:VERSION or register a version "
                   "that passes")


def default_version(session: Session, *, name: str) -> DatasetVersionView:
    """The trusted default version of dataset ``name`` (see ``default_row``)."""
    dataset = dataset_row(session, name=name)
    return _view(default_row(session, dataset), dataset.name)


def default_number(session: Session, *, name: str) -> int | None:
    """The number of ``default_version``; None when no version qualifies (or there is no such dataset)."""
    try:
        return default_version(session, name=name).version
    except NotFound:
        return None


def deprecate(session: Session, *, actor: Actor, name: str, version: int, reason: str) -> DatasetVersionView:
    """Mark ``name`` v``version`` deprecated: no default picks it any more (it stays readable by its number
    and in every lineage). Audited with the reason; the caller commits."""
    require(session, actor, "datasets.write", f"dataset:{name}")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("a deprecation needs a reason (--reason): say what is wrong with the version")
    dataset, row = version_row(session, f"{name}:{version}")
    if row.deprecated_at is not None:
        raise InvalidInput(f"{name}:{version} is already deprecated (by {row.deprecated_by}: "
                           f"{row.deprecation_reason})")
    row.deprecated_at, row.deprecated_by, row.deprecation_reason = utcnow(), actor.name, reason[:2000]
    session.flush()
    audit.record(session, actor, "dataset.version_deprecated", f"dataset:{name}",
                 {"name": name, "version": version, "reason": row.deprecation_reason})
    return _view(row, dataset.name)


def restore(session: Session, *, actor: Actor, name: str, version: int) -> DatasetVersionView:
    """Undo ``deprecate``: defaults may pick ``name`` v``version`` again (if its certificate passed). Audited."""
    require(session, actor, "datasets.write", f"dataset:{name}")
    dataset, row = version_row(session, f"{name}:{version}")
    if row.deprecated_at is None:
        raise InvalidInput(f"{name}:{version} is not deprecated; nothing to restore")
    was = row.deprecation_reason
    row.deprecated_at, row.deprecated_by, row.deprecation_reason = None, None, None
    session.flush()
    audit.record(session, actor, "dataset.version_restored", f"dataset:{name}",
                 {"name": name, "version": version, "was_deprecated_for": was})
    return _view(row, dataset.name)


def version_by_id(session: Session, *, version_id: int) -> DatasetVersion | None:
    """The ORM row of the dataset version with this id (what a training run records); None once it is gone."""
    return session.get(DatasetVersion, version_id)


def rows_of(session: Session, *, name: str, version: int) -> int | None:
    """How many rows ``name`` v``version`` has; None when there is no such version."""
    return session.scalar(select(DatasetVersion.rows).join(Dataset, Dataset.id == DatasetVersion.dataset_id)
                          .where(Dataset.name == name, DatasetVersion.version == version))


def newest_number(session: Session, *, name: str) -> int | None:
    """The highest version number of dataset ``name``; None when it has none (or no such dataset)."""
    return session.scalar(select(func.max(DatasetVersion.version)).join(
        Dataset, Dataset.id == DatasetVersion.dataset_id).where(Dataset.name == name))


def schema_spec(session: Session, *, dataset_id: int, version: int) -> dict[str, Any] | None:
    """The spec of schema version ``version`` of a dataset; None when there is no such schema version."""
    return session.scalar(select(DatasetSchema.spec).where(DatasetSchema.dataset_id == dataset_id,
                                                           DatasetSchema.version == version))


def resolve(session: Session, *, ref: str) -> DatasetVersionView:
    """``NAME`` (the trusted default: ``default_row``) or ``NAME:VERSION`` → the version; NotFound lists what
    exists."""
    dataset, row = version_row(session, ref)
    return _view(row, dataset.name)


def load_frame(session: Session, *, store: Path | DataStore, ref: str,
               verify: bool = True) -> tuple[DatasetVersionView, pd.DataFrame]:
    """The version and its data as pandas (the dtypes it was hashed with).

    With ``verify`` the data is hashed again and must match the registered sha256.
    """
    from core.data.tables import content_hash

    view = resolve(session, ref=ref)
    store = as_store(store)
    if not store.exists(view.path):
        raise IntegrityError(f"the file of {view.ref} is missing from the store: {store.uri(view.path)}")
    if isinstance(store, LocalStore):  # pyarrow reads a path natively, faster than through a file object
        frame = read_parquet(store.path(view.path))
    else:
        with store.open(view.path) as fh:
            frame = read_parquet(fh)
    if verify and (actual := content_hash(frame)[0]) != view.sha256:
        raise IntegrityError(f"{view.ref} was altered: its file hashes to {actual[:12]}…, "
                             f"the registry says {view.sha256[:12]}…")
    return view, frame


def list_datasets(session: Session) -> list[DatasetSummary]:
    latest = (select(DatasetVersion.dataset_id, DatasetVersion.rows, DatasetVersion.certificate_passed)
              .join(Dataset, (Dataset.id == DatasetVersion.dataset_id)
                    & (Dataset.latest_version == DatasetVersion.version)).subquery())
    rows = session.execute(
        select(Dataset, latest.c.rows, latest.c.certificate_passed)
        .outerjoin(latest, latest.c.dataset_id == Dataset.id).order_by(Dataset.name))
    return [DatasetSummary(name=d.name, description=d.description, versions=d.latest_version, latest_rows=r,
                           latest_passed=p, updated_at=d.updated_at, created_by=d.created_by) for d, r, p in rows]


def count_versions(session: Session, *, name: str) -> int:
    dataset = session.scalar(select(Dataset).where(Dataset.name == check_name(name)))
    return dataset.latest_version if dataset is not None else 0


def list_versions(session: Session, *, name: str, limit: int = 20, offset: int = 0) -> list[DatasetVersionView]:
    """Newest first, one page at a time (the paging happens in SQL)."""
    rows = session.execute(
        select(DatasetVersion).join(Dataset, Dataset.id == DatasetVersion.dataset_id)
        .where(Dataset.name == check_name(name)).order_by(desc(DatasetVersion.version))
        .limit(limit).offset(offset)).scalars().all()
    return [_view(r, name) for r in rows]


def get_certificate(session: Session, *, ref: str) -> Certificate:
    _, row = version_row(session, ref)
    return Certificate(passed=row.certificate_passed, checks=row.certificate, at=row.certificate_at,
                       schema_version=row.schema_version)


def get_profile(session: Session, *, ref: str) -> dict[str, Any]:
    return version_row(session, ref)[1].profile


def diff(session: Session, *, name: str, a: int, b: int) -> VersionDiff:
    """Schema diff, row counts and per-column distribution changes from version ``a`` to ``b``."""
    prof_a, prof_b = get_profile(session, ref=f"{name}:{a}"), get_profile(session, ref=f"{name}:{b}")
    return compare_profiles(name, a, b, prof_a, prof_b)

