"""One prediction request end to end: check the records, find the served model, predict, log.

``Predictor`` ties the model cache (which version an alias serves), the micro-batcher (how the
prediction is computed) and the prediction log writer together, so an entry (the HTTP API, a test)
only parses its transport and calls ``predict``. Timings of the three stages come back with the
answer for the entry's metrics.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from core.errors import InvalidInput
from core.platform.aliases import CHAMPION
from core.serving.batching import Batcher
from core.serving.cache import LoadedModel, ModelCache, check_alias
from core.serving.predictions import LogFull, LogWriter, Refused, Served
from core.serving.shadow import ShadowScorer
from core.serving.signature import Column, InputSchema
from db.models import utcnow

MAX_NAME = 255


@dataclass(frozen=True)
class Answer:
    request_id: str
    model: str
    alias: str
    version: int
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None
    ignored_columns: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)  # seconds: validate, predict, log

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"model": self.model, "version": self.version, "predictions": self.predictions,
                               "request_id": self.request_id, "alias": self.alias}
        if self.probabilities is not None:
            doc["probabilities"] = self.probabilities
        if self.ignored_columns:
            doc["ignored_columns"] = list(self.ignored_columns)
        return doc


def check_records(body: Any, *, limit: int) -> list[dict[str, Any]]:
    """The ``records`` of a request body, or InvalidInput naming what is wrong with them."""
    if not isinstance(body, dict):
        raise InvalidInput(f"the body must be a JSON object with a 'records' list, got {type(body).__name__}")
    if "records" not in body:
        raise InvalidInput("records: missing; send {\"records\": [{column: value, …}, …]}")
    records = body["records"]
    if not isinstance(records, list):
        raise InvalidInput(f"records must be a list of objects, got {type(records).__name__}")
    if not records:
        raise InvalidInput("records is empty; send at least one record")
    if len(records) > limit:
        raise InvalidInput(f"records has {len(records)} entries; the limit is {limit} per request "
                           "(LEANOPS_SERVING_BATCH_LIMIT)")
    for i, record in enumerate(records):
        if type(record) is not dict:
            raise InvalidInput(f"records[{i}] must be an object of column: value, got {type(record).__name__}")
    return records


def check_name(name: str) -> str:
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidInput(f"model name {name[:80]!r} is not allowed: 1-{MAX_NAME} printable characters")
    return name


class Predictor:
    def __init__(self, *, cache: ModelCache, batcher: Batcher, writer: LogWriter | None, batch_limit: int,
                 log_wait: float, shadow: ShadowScorer | None = None) -> None:
        self.cache, self.batcher, self.writer = cache, batcher, writer
        self.batch_limit, self.log_wait = batch_limit, log_wait
        self.shadow = shadow  # the challenger scores champion requests off the response path

    async def model(self, name: str, alias: str) -> LoadedModel:
        found = self.cache.peek(name, alias)
        if found is not None:
            return found
        check_name(name)
        check_alias(alias)
        return await asyncio.get_running_loop().run_in_executor(None, self.cache.get, name, alias)

    async def predict(self, *, name: str, body: Any, alias: str = "champion", probabilities: bool = False,
                      request_id: str | None = None, requested_by: str | None = None) -> Answer:
        """Predict the records of ``body`` with the version ``alias`` serves, and log every prediction.

        ``requested_by`` (``predictions.requester(actor)``) is logged with it: feedback is bound to it.

        Raises:
            InvalidInput (RecordError): bad records, naming the record index and column.
            NotFound: no such model, or no version has ``alias``.
            StoreUnavailable: the model cannot be loaded, or the log has had no room for too long.
        """
        started, ts = time.perf_counter(), utcnow()
        request_id = request_id or uuid.uuid4().hex
        records = check_records(body, limit=self.batch_limit)
        model = await self.model(name, alias)
        schema = model.schema or InputSchema(tuple(Column(str(k)) for k in records[0]), typed=False)
        coerced = schema.coerce(records)
        checked = time.perf_counter()
        result = await self.batcher.predict(model, coerced.columns, coerced.rows, probabilities=probabilities)
        predicted = time.perf_counter()
        outputs = result.outputs.tolist()
        if self.writer is not None:
            await self._log(Served(request_id, ts, name, alias, model.version, coerced.columns, outputs,
                                   (predicted - started) * 1000, requested_by))
        logged = time.perf_counter()
        if self.shadow is not None and alias == CHAMPION:  # after the champion's rows: never delays them
            self.shadow.offer(model=name, champion_version=model.version, request_id=request_id, ts=ts,
                              columns=coerced.columns, rows=coerced.rows, requested_by=requested_by)
        proba = None
        if result.probabilities is not None and model.classes is not None:
            keys = [str(c) for c in model.classes]
            proba = [dict(zip(keys, row, strict=True)) for row in result.probabilities.tolist()]
        return Answer(request_id, name, alias, model.version, outputs, proba, coerced.ignored,
                      {"validate": checked - started, "predict": predicted - checked, "log": logged - predicted})

    async def _log(self, item: Served) -> None:
        writer = self.writer
        assert writer is not None  # called only when there is a log writer
        ticket = writer.offer(item)
        deadline, pause = time.monotonic() + self.log_wait, 0.001
        while ticket is None and time.monotonic() < deadline:  # back-pressure: the caller waits, nothing is dropped
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
            ticket = writer.offer(item)
        if ticket is not None:
            await ticket.wait_async(self.log_wait)  # acknowledged only once durable in the journal
            return
        raise LogFull(f"the prediction log has had no room for {self.log_wait:g} s (is the database down?); "
                      "the prediction was not served")

    def refused(self, *, request_id: str, name: str, alias: str, status: int, message: str) -> None:
        """Note a request that served nothing, for the error rate (best effort: never blocks)."""
        if self.writer is None:
            return
        try:
            self.writer.offer(Refused(request_id, utcnow(), name, alias, status, message))
        except LogFull:
            pass

