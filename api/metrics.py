"""Prometheus metrics of one API app (its own registry, so several apps in one process never clash)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 512, 2048, 10000)


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: they double the output and nobody graphs them
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("leanops_http_requests", "HTTP requests by route template, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("leanops_http_request_duration_seconds", "Whole request time by route",
                                 ["route"], buckets=LATENCY, registry=r)
        self.stage = Histogram("leanops_predict_stage_seconds",
                               "Predict request time by stage: parse (JSON + record checks), predict, log",
                               ["model", "stage"], buckets=LATENCY, registry=r)
        self.values = Histogram("leanops_prediction_value", "Numeric predictions (class labels when numeric)",
                                ["model"], buckets=(-1, 0, 0.1, 0.25, 0.5, 0.75, 0.9, 1, 2, 5, 10, 100, 1000),
                                registry=r)
        self.classes = Counter("leanops_predicted_class", "Non-numeric predicted labels", ["model", "label"],
                               registry=r)
        self.records = Counter("leanops_predicted_records", "Records predicted", ["model", "version"], registry=r)
        self.version = Gauge("leanops_model_version_served", "Model version each alias serves now",
                             ["model", "alias"], registry=r)
        self.reload_failures = Counter("leanops_model_reload_failures", "Versions that failed to load on reload",
                                       ["model", "alias"], registry=r)
        self.batch = Histogram("leanops_microbatch_rows", "Rows per model call (micro-batches and large requests)",
                               buckets=BATCH, registry=r)
        self.queue = Gauge("leanops_prediction_log_queue_depth", "Prediction log rows waiting to be written",
                           registry=r)
        self.written = Counter("leanops_prediction_log_rows_written", "Prediction log rows written", registry=r)
        self.shadow_skipped = Counter("leanops_shadow_skipped", "Champion requests the challenger did not shadow: "
                                      "queue_full (overload), log_full, error", ["model", "reason"], registry=r)
        self.unseen = Counter("leanops_unseen_categories", "Records whose value of a categorical column the model "
                              "never saw in training", ["model", "column"], registry=r)
        self.refused = Counter("leanops_predict_refused", "Predict requests that served nothing, by whose fault: "
                               "client (4xx: the request) or model (5xx); a name no model has counts as "
                               "model=\"(not found)\", never as a model", ["model", "kind"], registry=r)
        self.shadow_scored = Counter("leanops_shadow_scored_records", "Records the challenger scored in shadow",
                                     ["model"], registry=r)

    def watch_queue(self, depth: Callable[[], float]) -> None:
        self.queue.set_function(depth)

    def observe_predictions(self, model: str, version: int, outputs: list[Any]) -> None:
        self.records.labels(model, str(version)).inc(len(outputs))
        hist = self.values.labels(model)
        for value in outputs[:1000]:  # a huge batch is sampled, not walked
            if isinstance(value, bool | int | float) and not (isinstance(value, float) and math.isnan(value)):
                hist.observe(float(value))
            elif value is not None:
                self.classes.labels(model, str(value)[:64]).inc()

    def export(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """Pure ASGI middleware: counts and times every HTTP request by its route template."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, scope.get("method", ""), str(status[0])).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)
