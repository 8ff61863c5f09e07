"""The HTTP API: ``create_app(settings)`` builds it; ``python cli.py serve`` runs it under uvicorn.

Routes only parse, call core and shape the answer. The serving machinery (model cache following
the aliases, micro-batcher, prediction log writer) lives in core and is started and stopped with
the app, so a clean shutdown (SIGTERM) writes every acknowledged prediction before exiting.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api import errors
from api.auth import CurrentActor, TokenCache, require
from api.boundary import TrustBoundary
from api.metrics import Metrics, RequestMetrics
from core import audit
from core.actors import system_actor
from core.errors import redact
from core.platform.database import transaction
from core.platform.prediction_log import parquet
from core.platform.prediction_log.journal import Journal, segments_folder
from core.platform.prediction_log.writer import LogWriter
from core.serving.batching import Batcher
from core.serving.cache import LOAD_DEADLINE, ModelCache
from core.serving.inference import Predictor
from core.serving.shadow_scoring import ShadowScorer
from core.settings import Settings
from db.session import make_engine, make_session_factory

log = logging.getLogger("leanops.api")


def docs_routes(app: FastAPI) -> tuple[str, ...]:
    """/docs (Swagger UI) and /redoc with their scripts and styles served by this process, not a CDN.

    FastAPI's own pages load Swagger UI from a CDN: behind a proxy or air-gapped they render blank. The
    assets come from the fastapi-offline package (pinned in the lock files like every other dependency).
    Returns the docs' paths, for the trust boundary (which also covers everything under /docs/).
    """
    from importlib.resources import files

    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    openapi, static = app.openapi_url or "/openapi.json", "/docs/static"
    app.mount(static, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi, title=f"{app.title} - docs",
                                   oauth2_redirect_url="/docs/oauth2-redirect",
                                   swagger_js_url=f"{static}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{static}/swagger-ui.css",
                                   swagger_favicon_url=f"{static}/favicon.png")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{static}/redoc.standalone.js",
                              redoc_favicon_url=f"{static}/favicon.png", with_google_fonts=False)

    return "/docs", "/redoc", openapi, "/docs/oauth2-redirect"


@dataclass
class Runtime:
    """Everything the routes share, created with the app and started by its lifespan."""

    settings: Settings
    factory: sessionmaker[Session]
    metrics: Metrics
    cache: ModelCache
    batcher: Batcher
    writer: LogWriter | None
    predictor: Predictor
    tokens: TokenCache
    engine: Engine | None = None  # disposed on shutdown when the app made it
    secrets: tuple[str, ...] = ()  # configured passwords and keys: redacted from every logged error
    ready: threading.Event = field(default_factory=threading.Event)  # every champion loaded and warm
    champions: dict[str, dict[str, Any]] = field(default_factory=dict)  # model → {version, state}
    not_ready: str = "loading the champions"
    stopping: threading.Event = field(default_factory=threading.Event)

    def warm_up(self, retry_seconds: float = 2.0) -> None:
        """Load and warm every champion (the readiness probe waits for it); retried while a store is down."""
        while not self.stopping.is_set():
            try:
                self.champions = self.cache.preload()
            except Exception as exc:  # noqa: BLE001 - not ready yet; said by /health/ready and the log
                self.not_ready = f"loading the champions failed ({type(exc).__name__}); retrying"
                log.warning("warm-up: could not load the champions: %s", redact(str(exc), self.secrets))
                self.stopping.wait(retry_seconds)
                continue
            self.ready.set()
            log.info("ready: %s", ", ".join(f"{m} v{s['version']} {s['state']}" for m, s in self.champions.items())
                     or "no champion to serve yet")
            return

    def on_event(self, kind: str, details: dict[str, Any]) -> None:
        """Model cache events → metrics, and an audit event when a version failed to load.

        ``serving.alias_refused`` and ``serving.unverified_artifact`` are audited by the cache itself.
        """
        model, alias = details["model"], details["alias"]
        if kind == "serving.model_loaded":
            self.metrics.version.labels(model, alias).set(details["version"])
            gc.freeze()  # a loaded model is long-lived: keep the collector from walking it on every pass
        elif kind == "serving.alias_removed":
            self.metrics.version.remove(model, alias)
        elif kind == "serving.reload_failed":
            self.metrics.reload_failures.labels(model, alias).inc()
            try:
                with transaction(self.factory) as session:
                    audit.record(session, system_actor("serving"), kind, f"model:{model}", details)
            except Exception:  # noqa: BLE001 - the failure is in the log line and the metric anyway
                log.exception("could not audit the failed reload of %s", model)


class ChampionState(BaseModel):
    version: int
    state: str = Field(description="loaded, or refused (with the reason: LeanOps will not serve that version)")
    reason: str | None = None


class Readiness(BaseModel):
    status: str = Field(description="ready, or starting")
    detail: str | None = None
    workspace: str = Field("", description="the workspace's id (`cli.py init` prints it): `make run` checks that "
                                           "the API answering is the one it started")
    models: dict[str, ChampionState]


def build_runtime(settings: Settings, factory: sessionmaker[Session] | None = None) -> Runtime:
    engine = None
    if factory is None:
        engine = make_engine(settings.db_url)
        factory = make_session_factory(engine)
    metrics = Metrics()
    writer = None
    if settings.prediction_log_enabled:
        # Acknowledged means durable: each request's records go to this process's journal segment first;
        # segments a killed process left are replayed, skipping what the table or the partitions hold.
        journal = Journal(segments_folder(settings), durability=settings.prediction_log_durability)
        writer = LogWriter(factory, capacity=settings.prediction_log_queue,
                           on_written=lambda rows, seconds: metrics.written.inc(rows), journal=journal,
                           stored_elsewhere=lambda items: parquet.compacted_request_ids(settings.data_store, items))
        metrics.watch_queue(lambda: writer.depth)
    batcher = Batcher(max_batch=settings.serving_max_microbatch, window=settings.serving_window_ms / 1000,
                      split=settings.serving_split_threads)
    batcher.on_batch = metrics.batch.observe
    rt: Runtime
    # The aliases served are LeanOps' own record (its DB), and a version's files must match the sha256 its
    # training run recorded; the cache audits and alerts what it refuses itself.
    cache = ModelCache(registry=settings.registry, reload_seconds=settings.serving_reload_seconds,
                       on_event=lambda kind, details: rt.on_event(kind, details), factory=factory, settings=settings,
                       load_timeout=LOAD_DEADLINE)
    shadow = ShadowScorer(cache=cache, writer=writer, policies=settings.policies,
                          on_skipped=lambda model, reason: metrics.shadow_skipped.labels(model, reason).inc(),
                          on_scored=lambda model, rows: metrics.shadow_scored.labels(model).inc(rows))
    predictor = Predictor(cache=cache, batcher=batcher, writer=writer, batch_limit=settings.serving_batch_limit,
                          log_wait=settings.prediction_log_wait_seconds, shadow=shadow, policies=settings.policies)
    rt = Runtime(settings, factory, metrics, cache, batcher, writer, predictor,
                 TokenCache(factory, settings.api_token_cache_seconds), engine, errors.known_secrets(settings))
    return rt


def serve_process() -> FastAPI:
    """The app of one ``cli.py serve`` process, built from the environment (uvicorn's factory: with
    ``--workers N`` each of the N processes calls it, so each has its own model cache and hot reload,
    batcher, prediction log writer and journal segment; they share only the listening socket)."""
    from core.settings import get_settings

    if not logging.getLogger().handlers:  # a worker process starts with no logging set up
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
    # The log writer drops and retakes the GIL around each database call; a shorter switch interval
    # keeps the requests it interrupts from waiting 5 ms each time (it bounds the latency tail).
    sys.setswitchinterval(0.001)
    return create_app(get_settings())


def create_app(settings: Settings, *, factory: sessionmaker[Session] | None = None) -> FastAPI:
    """The API app for ``settings``; pass ``factory`` to share a session factory (tests)."""
    rt = build_runtime(settings, factory)
    from core.workspace.identity import workspace_id

    workspace = workspace_id(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Everything imported so far lives as long as the process. Frozen, the cyclic collector's
        # full passes (which a 10,000-record request triggers) no longer walk it: tens of ms each.
        gc.collect()
        gc.freeze()
        if rt.writer is not None:
            rt.writer.start()
        rt.cache.start()
        if rt.predictor.shadow is not None:
            rt.predictor.shadow.start()
        # Loaded in the background: /health answers at once, /health/ready once every champion is warm.
        threading.Thread(target=rt.warm_up, name="leanops-warm-up", daemon=True).start()
        from jobs import housekeeping

        sweeping = housekeeping.start(rt.factory, settings)  # a crash is tidied even with no worker left
        try:
            yield
        finally:
            sweeping.set()
            rt.stopping.set()
            if rt.predictor.shadow is not None:
                rt.predictor.shadow.stop()
            rt.cache.stop()
            if rt.writer is not None:
                rt.writer.stop()  # every acknowledged prediction is written before the process ends
            rt.batcher.close()
            if rt.engine is not None:
                rt.engine.dispose()

    app = FastAPI(title="LeanOps API", version="1",
                  description="Predictions from the champion of each model, prediction feedback, and "
                              "webhooks for automation. Every route but /health and /health/ready needs "
                              "`Authorization: Bearer <token>` (401 before the body is read); a body over the "
                              "route's limit is refused with 413 (1 MB of JSON for control routes). "
                              "A 5xx answer names what failed and carries a `correlation_id` for the server's log.",
                  lifespan=lifespan, docs_url=None, redoc_url=None)  # ours below: assets served locally
    app.state.runtime = rt
    errors.install(app)
    # Inner to outer: the trust boundary sees every request before any route reads its body, and the
    # metrics (outermost) count its refusals too.
    # The docs list every route and field: behind a token like the rest (curl/scripts send the header),
    # open to browsers only when LEANOPS_API_DOCS_PUBLIC says so.
    docs = docs_routes(app)
    app.add_middleware(TrustBoundary, runtime=rt, public=docs if settings.api_docs_public else ())
    app.add_middleware(RequestMetrics, metrics=rt.metrics)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers (no token needed)."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["ops"], response_model=Readiness,
             responses={503: {"model": Readiness, "description": "not ready yet: the champions are loading"}})
    async def ready() -> JSONResponse:
        """Readiness: 200 once every champion is loaded and warm (no token needed), 503 before.

        A champion whose version LeanOps refuses to serve is listed with its reason and not waited for.
        """
        if not rt.ready.is_set():
            return JSONResponse({"status": "starting", "detail": rt.not_ready, "models": {}, "workspace": workspace},
                                status_code=503, headers={"Retry-After": "1"})
        return JSONResponse({"status": "ready", "models": rt.champions, "workspace": workspace})

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
                        **errors.AUTH_ERRORS})
    async def metrics(request: Request, actor: CurrentActor) -> Response:
        """Prometheus metrics: requests, latency by stage, prediction values, served versions, log queue."""
        await require(request, actor, "read")
        return Response(rt.metrics.export(), media_type=CONTENT_TYPE_LATEST)

    from api import datasets, inventory, jobs, predict, registry, training

    app.include_router(predict.router)
    app.include_router(datasets.router)
    app.include_router(training.router)
    app.include_router(jobs.router)
    app.include_router(registry.router)
    app.include_router(inventory.router)
    from api import imports

    app.include_router(imports.router)  # a model trained elsewhere (POST /v1/models/{name}/versions)
    from api import batch

    app.include_router(batch.router)
    return app
