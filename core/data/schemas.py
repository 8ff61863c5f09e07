"""A dataset's schema: inferred from version 1, then edited by people; every edit is a new schema version.

Registration holds each new version to the current schema (``core.data.datasets.register``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from core import audit
from core.accounts.auth import require
from core.actors import Actor
from core.data.datasets import dataset_row, schema_row
from core.data.quality import check_schema
from core.errors import InvalidInput
from db.models import Dataset, DatasetSchema, utcnow


@dataclass(frozen=True)
class SchemaView:
    name: str
    version: int
    spec: dict[str, Any]
    note: str
    created_by: str
    created_at: datetime


def current_schema(session: Session, *, name: str) -> SchemaView:
    dataset = dataset_row(session, name=name)
    row = schema_row(session, dataset.id)
    assert row is not None  # a dataset gets schema version 1 with its first version
    return SchemaView(name=name, version=row.version, spec=row.spec, note=row.note, created_by=row.created_by,
                      created_at=row.created_at)


def update_schema(session: Session, *, actor: Actor, name: str, spec: dict[str, Any], note: str = "") -> SchemaView:
    """Store an edited schema as the dataset's next schema version; later versions are held to it."""
    require(session, actor, "datasets.write", f"dataset:{name}")
    check_schema(spec)
    dataset = dataset_row(session, name=name)
    session.execute(update(Dataset).where(Dataset.id == dataset.id).values(updated_at=utcnow()))  # lock
    current = schema_row(session, dataset.id)
    if current is not None and current.spec == spec:
        raise InvalidInput(f"the schema of {name!r} is unchanged (still schema version {current.version})")
    row = DatasetSchema(dataset_id=dataset.id, version=(current.version if current else 0) + 1, spec=spec,
                        note=note[:255], created_by=actor.name)
    session.add(row)
    session.flush()
    audit.record(session, actor, "dataset.schema_updated", f"dataset:{name}",
                 {"name": name, "schema_version": row.version, "note": row.note})
    return SchemaView(name=name, version=row.version, spec=spec, note=row.note, created_by=row.created_by,
                      created_at=row.created_at)

