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
from datetime import datetime
from typing import Any

from core.errors import InvalidInput
from core.platform.prediction_log.writer import LogFull, LogWriter, Refused, Served
from core.platform.registry_port import CHAMPION
from core.serving import contract
from core.serving.batching import Batcher
from core.serving.cache import LoadedModel, ModelCache, check_alias
from core.serving.shadow_scoring import ShadowScorer
from core.serving.signature import Column, Frame, InputSchema, RecordError
from db.models import utcnow

MAX_NAME = 255
ARROW = "application/vnd.apache.arrow.stream"  # the media type of an Arrow IPC stream (request and answer)


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
    imputed_columns: tuple[str, ...] = ()  # absent, filled by the model's imputer (policy serving.missing_columns)
    warnings: tuple[dict[str, Any], ...] = ()  # e.g. categories the model never saw (core.serving.contract)

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"model": self.model, "version": self.version, "predictions": self.predictions,
                               "request_id": self.request_id, "alias": self.alias}
        if self.probabilities is not None:
            doc["probabilities"] = self.probabilities
        if self.ignored_columns:
            doc["ignored_columns"] = list(self.ignored_columns)
        if self.imputed_columns:
            doc["imputed_columns"] = list(self.imputed_columns)
        if self.warnings:
            doc["warnings"] = list(self.warnings)
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


def check_body(body: Any, *, limit: int) -> list[dict[str, Any]] | Frame:
    """A JSON body's records, or its MLflow ``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` as
    columns (MLflow clients send it unchanged); InvalidInput naming what is wrong."""
    if not isinstance(body, dict) or "dataframe_split" not in body:
        return check_records(body, limit=limit)
    if len(body) > 1:
        raise InvalidInput("a body with 'dataframe_split' has no other top-level key")
    split = body["dataframe_split"]
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list) \
            or not isinstance(split.get("data"), list):
        raise InvalidInput("dataframe_split must be {\"columns\": [name, …], \"data\": [[value, …], …]}")
    if unknown := sorted(set(split) - {"columns", "data", "index"}):
        raise InvalidInput(f"dataframe_split has unknown key(s) {', '.join(repr(k)[:80] for k in unknown[:5])}")
    names, data = split["columns"], split["data"]
    if not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise InvalidInput("dataframe_split.columns must be distinct column names (strings), at least one")
    for i, row in enumerate(data):  # worded as a record's problem, as in {"records": [...]}
        if not isinstance(row, list):
            raise RecordError(f"record {i} column values must be a list (dataframe_split.data[{i}] is "
                              f"{type(row).__name__})", record=i, column="*")
        if len(row) < len(names):
            raise RecordError(f"record {i} has no column {names[len(row)]!r}: dataframe_split.data[{i}] has "
                              f"{len(row)} values for {len(names)} columns", record=i, column=names[len(row)])
        if len(row) > len(names):
            raise RecordError(f"record {i} column {len(names) + 1} has no name: dataframe_split.data[{i}] has "
                              f"{len(row)} values for {len(names)} columns", record=i, column="*")
    return check_frame(Frame({n: list(v) for n, v in zip(names, zip(*data, strict=True), strict=True)}
                             if data else {n: [] for n in names}, len(data)), limit=limit)


def check_frame(frame: Frame, *, limit: int) -> Frame:
    """A columnar request within the batch limit, or InvalidInput."""
    if frame.rows == 0:
        raise InvalidInput("the request has no rows; send at least one")
    if frame.rows > limit:
        raise InvalidInput(f"the request has {frame.rows} rows; the limit is {limit} per request "
                           "(LEANOPS_SERVING_BATCH_LIMIT)")
    return frame


def read_arrow(raw: bytes, *, limit: int) -> Frame:
    """An Arrow IPC stream's columns, or InvalidInput: not a stream, duplicate columns, too many rows."""
    from core.data import measured
    from core.data.tables import TableLimits

    # measured before decoding: no compressed buffers, no dictionary/run-end/view columns, rows from each
    # batch's metadata checked before its buffers are read (a 25 KB stream cannot become 800 MB here)
    limits = TableLimits(rows=limit, columns=TableLimits().columns, mb=max(1, len(raw) // 2**20 + 1))
    try:
        table = measured.arrow_stream(raw, limits=limits, label="the body (an Arrow stream)",
                                      rows_setting="LEANOPS_SERVING_BATCH_LIMIT")
    except InvalidInput as exc:
        if str(exc).startswith("the body (an Arrow stream) is not"):
            raise InvalidInput(f"{exc}; send one with Content-Type: {ARROW}") from None
        raise
    names = table.column_names
    if len(set(names)) != len(names):
        raise InvalidInput("the Arrow stream has duplicate column names")
    return check_frame(Frame({n: table.column(n) for n in names}, table.num_rows), limit=limit)


def write_arrow(answer: Answer) -> bytes:
    """``answer`` as an Arrow IPC stream: a ``prediction`` column (and one ``probability_<class>`` column
    per class when asked), the request id, model, version and alias in the schema metadata."""
    import pyarrow as pa

    columns = {"prediction": pa.array(answer.predictions)}
    if answer.probabilities is not None and answer.probabilities:
        for key in answer.probabilities[0]:
            columns[f"probability_{key}"] = pa.array([p[key] for p in answer.probabilities], pa.float64())
    meta = {"request_id": answer.request_id, "model": answer.model, "version": str(answer.version),
            "alias": answer.alias}
    if answer.ignored_columns:
        meta["ignored_columns"] = ",".join(answer.ignored_columns)
    table = pa.table(columns).replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def check_name(name: str) -> str:
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise InvalidInput(f"model name {name[:80]!r} is not allowed: 1-{MAX_NAME} printable characters")
    return name


class Predictor:
    def __init__(self, *, cache: ModelCache, batcher: Batcher, writer: LogWriter | None, batch_limit: int,
                 log_wait: float, shadow: ShadowScorer | None = None, policies: Any = None) -> None:
        self.cache, self.batcher, self.writer = cache, batcher, writer
        self.batch_limit, self.log_wait = batch_limit, log_wait
        self.shadow = shadow  # the challenger scores champion requests off the response path
        self.policies = policies  # settings.policies: each model's serving contract (core.serving.contract)
        self.in_flight = 0  # requests being answered now (on the event loop): the shadow waits for 0
        self._per_model: dict[int, int] = {}  # id(LoadedModel) → its requests past parsing, not yet answered
        batcher.in_flight = lambda model: self._per_model.get(id(model), 0)  # a batch waits for them
        if shadow is not None:
            shadow.busy = lambda: self.in_flight

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

        ``body``: JSON ``{"records": [...]}`` or MLflow's ``{"dataframe_split": ...}``, or a ``Frame``
        (``read_arrow``).

        ``requested_by`` (``writer.requester(actor)``) is logged with it: feedback is bound to it.

        Raises:
            InvalidInput (RecordError): bad records, naming the record index and column.
            NotFound: no such model, or no version has ``alias``.
            StoreUnavailable: the model cannot be loaded, or the log has had no room for too long.
        """
        self.in_flight += 1
        try:
            return await self._predict(name=name, body=body, alias=alias, probabilities=probabilities,
                                       request_id=request_id, requested_by=requested_by)
        finally:
            self.in_flight -= 1

    async def _predict(self, *, name: str, body: Any, alias: str, probabilities: bool, request_id: str | None,
                       requested_by: str | None) -> Answer:
        started, ts = time.perf_counter(), utcnow()
        request_id = request_id or uuid.uuid4().hex
        parsed = check_frame(body, limit=self.batch_limit) if isinstance(body, Frame) \
            else check_body(body, limit=self.batch_limit)
        model = await self.model(name, alias)
        key = id(model)
        self._per_model[key] = self._per_model.get(key, 0) + 1
        try:
            return await self._answer(model, parsed, name=name, alias=alias, probabilities=probabilities,
                                      request_id=request_id, requested_by=requested_by, ts=ts, started=started)
        finally:
            # Counted a micro-batch window longer: a client answered now sends its next request within
            # a round trip, and the batch being gathered should wait for it.
            asyncio.get_running_loop().call_later(self.batcher.window, self._leave, key)

    def _leave(self, key: int) -> None:
        if self._per_model[key] == 1:
            del self._per_model[key]  # an unloaded version's id may be reused
        else:
            self._per_model[key] -= 1

    async def _answer(self, model: LoadedModel, parsed: list[dict[str, Any]] | Frame, *, name: str, alias: str,
                      probabilities: bool, request_id: str, requested_by: str | None, ts: datetime,
                      started: float) -> Answer:
        schema = model.schema
        imputed: tuple[str, ...] = ()
        if schema is not None:  # the serving contract: missing and unknown columns by policy
            held = contract.check(schema, parsed, contract.Rules.of(self.policies, name))
            schema, imputed = held.schema, held.imputed
        if isinstance(parsed, Frame):  # columnar (Arrow, dataframe_split): never a dict per row
            schema = schema or InputSchema(tuple(Column(str(k)) for k in parsed.columns), typed=False)
            coerced = schema.coerce_frame(parsed)
        else:
            schema = schema or InputSchema(tuple(Column(str(k)) for k in parsed[0]), typed=False)
            coerced = schema.coerce(parsed)
        warnings = tuple(contract.unseen(coerced.columns, contract.known_categories(model.model)))
        checked = time.perf_counter()
        result = await self.batcher.predict(model, coerced.columns, coerced.rows, probabilities=probabilities)
        predicted = time.perf_counter()
        outputs = result.outputs.tolist()
        if self.writer is not None:
            await self._log(Served(request_id, ts, name, alias, model.version, coerced.columns, outputs,
                                   (predicted - started) * 1000, requested_by), coerced.arrow)
        logged = time.perf_counter()
        if self.shadow is not None and alias == CHAMPION:  # after the champion's rows: never delays them
            self.shadow.offer(model=name, champion_version=model.version, request_id=request_id, ts=ts,
                              columns=coerced.columns, rows=coerced.rows, requested_by=requested_by)
        proba = None
        if result.probabilities is not None and model.classes is not None:
            keys = [str(c) for c in model.classes]
            proba = [dict(zip(keys, row, strict=True)) for row in result.probabilities.tolist()]
        return Answer(request_id, name, alias, model.version, outputs, proba, coerced.ignored,
                      {"validate": checked - started, "predict": predicted - checked, "log": logged - predicted},
                      imputed, warnings)

    async def _log(self, item: Served, arrow: dict[str, Any] | None = None) -> None:
        writer = self.writer
        assert writer is not None  # called only when there is a log writer
        ticket = writer.offer(item, arrow)
        deadline, pause = time.monotonic() + self.log_wait, 0.001
        while ticket is None and time.monotonic() < deadline:  # back-pressure: the caller waits, nothing is dropped
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
            ticket = writer.offer(item, arrow)
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

