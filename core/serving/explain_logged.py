"""The explanation of one logged prediction (the Audit log's lookup): the version that answered it, loaded the way
serving loads it, explaining the inputs the log kept."""

from __future__ import annotations

from typing import Any

from core.serving.explain import explain


def explain_logged(factory: Any, settings: Any, *, request_id: str, record_index: int) -> dict[str, Any]:
    """The explanation of one logged record (a request's or a batch's), by the version that answered it, from the
    inputs the log kept: ``{model, version, contributions: {column: value}, base, output, explained, method}``.

    Raises:
        NotFound: no such logged record.
    """
    from core.errors import NotFound
    from core.platform.prediction_log import reads
    from core.serving import batch
    from core.serving.signature import Column, InputSchema

    with factory() as session:
        found = [r for r in reads.lookup(session, settings.data_store, request_id=request_id)
                 if r["record_index"] == record_index]
    if not found:
        raise NotFound(f"no logged record {record_index} of request {request_id!r}")
    record = found[0]
    loaded = batch.load_model(factory, settings, model=record["model"], version=int(record["version"]))
    inputs = {k: v for k, v in record["inputs"].items()}
    schema = loaded.schema or InputSchema(tuple(Column(str(k)) for k in inputs), typed=False)
    coerced = schema.coerce([inputs])
    why = explain(loaded.model, schema.frame(coerced.columns))
    return {"model": record["model"], "version": int(record["version"]),
            "contributions": why.records()[0], "base": float(why.base[0]), "output": float(why.output[0]),
            "explained": why.explained, "method": why.method}
