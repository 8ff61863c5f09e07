"""Feedback: ground-truth labels for logged predictions, and who may send them.

Labels drive live performance and so the automatic rollback, which is why a label is bound to whoever
made the prediction (``writer.requester``, logged as ``requested_by``) unless the model's policy lets a
role label any request. The log itself (``core/platform/prediction_log``) keeps the labels beside the
predictions and reads them; the rule of who may write one is serving's.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from core import audit, policy
from core.accounts.auth import require
from core.actors import Actor
from core.errors import InvalidInput, NotFound, PermissionDenied
from core.platform.prediction_log import reads, writer
from core.platform.prediction_log.writer import plain_value, requester
from core.platform.storage import DataStore
from core.policy import Policies
from db.models import utcnow


def record_feedback(session: Session, *, actor: Actor, model: str, request_id: str, labels: list[Any],
                    store: DataStore, policies: Policies | None = None) -> int:
    """Store ground-truth ``labels`` for the records of a logged request (replacing earlier ones).

    Labels drive live performance and so the automatic rollback: only the actor that made the
    prediction (``requested_by``) may label it, or an actor whose role is at least the model's
    policy ``feedback.label_any_request`` (``admin`` by default; read from the workspace's ``policies``,
    the default policy when None). A request logged before requesters were recorded can be labelled
    only by that role. Replacing labels is audited with the old and new values.

    ``store`` is the workspace's ``data_store``: a request already compacted into the Parquet partitions
    is found there (labels often come late).

    Raises:
        NotFound: no prediction of ``model`` has this request_id (yet).
        PermissionDenied: the actor may not send feedback, or may not label this request.
        InvalidInput: the number of labels differs from the number of records predicted.
    """
    require(session, actor, "feedback.write", f"model:{model}")
    if not isinstance(labels, list) or not labels:
        raise InvalidInput("labels must be a non-empty list with one label per record of the request")
    logged = reads.logged_records(session, store, request_id=request_id)  # hot or compacted (labels come late)
    if not logged or logged[0].model != model:
        raise NotFound(f"no prediction of model {model!r} with request_id {request_id!r}")
    _check_labeler(actor, model=model, request_id=request_id, requested_by=logged[0].requested_by,
                    policies=policies)
    if len(labels) != len(logged):
        raise InvalidInput(f"labels has {len(labels)} value(s) but request {request_id} predicted "
                           f"{len(logged)} record(s); send one label per record, in order")
    for i, label in enumerate(labels):
        if isinstance(label, dict | list):
            raise InvalidInput(f"labels[{i}] must be a single value (a class or a number), got {label!r:.60}")
    new = [plain_value(label) for label in labels]
    earlier = reads.labels_of(session, request_id=request_id)
    if earlier:
        changed = [{"record": row.record_index, "old": row.label, "new": new[row.record_index]}
                   for row in earlier if _json(row.label) != _json(new[row.record_index])]  # indices < len(logged)
        audit.record(session, actor, "prediction.feedback_overwritten", f"model:{model}",
                     {"request_id": request_id, "replaced": len(earlier), "changed": changed,
                      "previous_by": sorted({row.created_by for row in earlier})})
    writer.replace_labels(session, request_id=request_id, model=model, labels=new, created_by=actor.name,
                          ts=utcnow())
    audit.record(session, actor, "prediction.feedback", f"model:{model}",
                 {"request_id": request_id, "labels": len(labels)})
    return len(labels)


def _json(value: Any) -> str:
    """A label as JSON text: ``True`` and ``1`` (equal in Python) are different labels."""
    return json.dumps(value, sort_keys=True, default=str)


def _check_labeler(actor: Actor, *, model: str, request_id: str, requested_by: str | None,
                   policies: Policies | None) -> None:
    """Refuse (and audit the refusal) unless ``actor`` made the request or may label any request of ``model``."""
    if requested_by is not None and requester(actor) == requested_by:
        return
    rules = policies.rules_for(model) if policies is not None else policy.ModelPolicy()
    needed = rules.feedback.label_any_request
    if actor.at_least(needed):
        return
    whose = ("was logged before requesters were recorded" if requested_by is None
             else "was made by another token or user")
    denied = PermissionDenied(
        f"{actor.name} may not label request {request_id} of {model}: it {whose}; only the token or user that "
        f"made a prediction may label it, or role {needed!r} or higher (policy feedback.label_any_request)")
    denied.after_rollback.append(lambda own: audit.record(
        own, actor, "permission.denied", f"model:{model}",
        {"permission": "feedback.write", "request_id": request_id, "role": actor.role, "needs": needed,
         "reason": "not the requester"}))
    raise denied


def feedback_for(session: Session, *, request_id: str) -> list[Any]:
    """The labels stored for a request, in record order."""
    return [row.label for row in reads.labels_of(session, request_id=request_id)]


def record_batch_feedback(session: Session, *, actor: Actor, model: str, batch_id: str, ids: list[Any],
                          labels: list[Any], store: DataStore, policies: Policies | None = None) -> int:
    """Ground-truth ``labels`` for rows of a batch scoring run, named by the run's id column (``ids``, in the order
    of ``labels``; the row number when the run had no id column). Who may label is decided as for a request:
    the actor that ran the batch, or the model's policy ``feedback.label_any_request`` role.

    Raises:
        NotFound: no batch ``batch_id`` of ``model``, or some ids are not among its rows (the first few named).
        PermissionDenied: the actor may not label this batch.
        InvalidInput: ids and labels differ in length, or an id repeats.
    """
    from core.platform.prediction_log import batches

    require(session, actor, "feedback.write", f"model:{model}")
    if not isinstance(ids, list) or not ids or not isinstance(labels, list) or len(ids) != len(labels):
        raise InvalidInput(f"ids ({len(ids) if isinstance(ids, list) else 0}) and labels "
                           f"({len(labels) if isinstance(labels, list) else 0}) must be non-empty lists of the same "
                           "length: one label per id")
    keys = [str(i) for i in ids]
    if len(set(keys)) != len(keys):
        raise InvalidInput("ids repeat; send each row's id once")
    for i, label in enumerate(labels):
        if isinstance(label, dict | list):
            raise InvalidInput(f"labels[{i}] must be a single value (a class or a number), got {label!r:.60}")
    found = batches.batch_records(store, model=model, batch_id=batch_id, ids=keys)
    if not found and not batches.batch_exists(store, model=model, batch_id=batch_id):
        raise NotFound(f"no batch {batch_id!r} of model {model!r} in the prediction log")
    index = {rid: (i, who) for i, rid, who in found}
    missing = [k for k in keys if k not in index]
    if missing:
        raise NotFound(f"{len(missing)} id(s) are not rows of batch {batch_id}: {', '.join(map(repr, missing[:5]))}")
    _check_labeler(actor, model=model, request_id=batch_id, requested_by=found[0][2], policies=policies)
    new = {index[k][0]: plain_value(label) for k, label in zip(keys, labels, strict=True)}
    writer.replace_record_labels(session, request_id=batch_id, model=model, labels=new, created_by=actor.name,
                                 ts=utcnow())
    audit.record(session, actor, "prediction.feedback", f"model:{model}",
                 {"batch_id": batch_id, "labels": len(labels)})
    return len(labels)
