"""Prometheus metrics of one app, in its own registry (two apps in one process do not clash).

With several worker processes (``twin-service api --workers N``, ``run --api-workers N``) each worker counts
its own requests; ``PROMETHEUS_MULTIPROC_DIR`` (set by those commands) makes ``/metrics`` add up every
worker's, whichever worker answers the scrape (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


BATCH_ROUTE = "/v1/decisions/batch"


class ApiMetrics:
    """Request latency per route, decisions served, and the age of the latest tick."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            "twin_api_request_seconds",
            "Time to answer a request, by route template, method and status code.",
            ("route", "method", "status"),
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.decisions = Counter(
            "twin_api_decisions",
            "Per-vehicle decisions served, by kind (migration, offload) and policy.",
            ("kind", "policy"),
            registry=self.registry,
        )
        self.latest_tick_age = Gauge(
            "twin_api_latest_tick_age_seconds",
            "Wall-clock age of the latest tick in Redis when last seen (NaN: none seen).",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.latest_tick_age.set(float("nan"))
        self.batch_answered_at = 0.0
        """Unix time this process last answered a batch decision (the bridge's per-tick request) with 200."""
        self.latest_tick = Gauge(
            "twin_api_latest_tick",
            "Number of the latest tick in Redis when last seen.",
            registry=self.registry,
            multiprocess_mode="mostrecent",
        )
        self.stream_clients = Gauge(
            "twin_api_stream_clients",
            "Live-stream (/v1/stream) clients connected now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.stream_ticks_read = Counter(
            "twin_api_stream_ticks_read",
            "Ticks the live stream read from Redis: once each, for all its clients.",
            registry=self.registry,
        )
        self.stream_snapshots = Counter(
            "twin_api_stream_snapshots", "Snapshots built for clients joining or catching up.", registry=self.registry
        )
        self.stream_refused = Counter(
            "twin_api_stream_refused",
            "Live-stream connections refused (503): the process served as many as it may.",
            registry=self.registry,
        )
        self.stream_dropped = Counter(
            "twin_api_stream_dropped",
            "Live-stream clients disconnected because they read nothing while their buffer filled.",
            registry=self.registry,
        )
        self.stream_resyncs = Counter(
            "twin_api_stream_resyncs",
            "Times a live-stream client fell a whole buffer behind and got a fresh snapshot.",
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The text format of every metric: this process's, or with several workers, all of theirs added up."""
        if os.environ.get(MULTIPROCESS_DIR_VAR):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)

    def saw_tick(self, tick: int, wall_time: float) -> float:
        """Record the latest tick; return its age in seconds."""
        age = max(time.time() - wall_time, 0.0)
        self.latest_tick_age.set(age)
        self.latest_tick.set(tick)
        return age


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request by its route template (not its raw path).

    It also adds a ``Server-Timing: app;dur=<ms>`` header: the time until the response started.
    """

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                # Server-Timing (W3C): lets a client tell server time from network and client overhead.
                took_ms = (time.perf_counter() - start) * 1e3
                headers = list(message.get("headers", ()))
                headers.append((b"server-timing", f"app;dur={took_ms:.3f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if template == BATCH_ROUTE and status["code"] == 200:
                self.metrics.batch_answered_at = time.time()
            self.metrics.request_seconds.labels(template, scope.get("method", ""), str(status["code"])).observe(
                time.perf_counter() - start
            )
