"""Prometheus metrics, one registry per gateway. Label children are cached so the hot path
costs a dict lookup and an increment; label sets are capped so that arbitrary
``BACKEND/MODEL`` names cannot grow memory without bound.

With several worker processes (``turnout serve --workers N``) the server sets
``PROMETHEUS_MULTIPROC_DIR``: every worker writes its values there and ``/metrics``, whichever
worker answers, reports the sum over all of them."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from turnout.telemetry.records import RequestRecord

__all__ = ["CONTENT_TYPE_LATEST", "MULTIPROC_ENV", "Metrics"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_MAX_LABEL_SETS = 2000


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "turnout_requests",
            "Requests answered, by endpoint, public model, backend and HTTP status.",
            ["endpoint", "model", "backend", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "turnout_request_duration_seconds",
            "End-to-end request latency as the gateway saw it.",
            ["endpoint", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "turnout_time_to_first_token_seconds",
            "Time from request to the first streamed chunk.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "turnout_tokens",
            "Tokens processed, by public model, backend and kind (prompt or completion).",
            ["model", "backend", "kind"],
            registry=r,
        )
        self.backend_errors = Counter(
            "turnout_backend_errors",
            "Failed calls to backends, by backend and error code.",
            ["backend", "code"],
            registry=r,
        )
        self.in_flight = Gauge(
            "turnout_in_flight_requests",
            "Requests being processed now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.dropped_log_records = Counter(
            "turnout_request_log_dropped",
            "Request log records dropped because the writer fell behind.",
            registry=r,
        )
        self.rate_limited = Counter(
            "turnout_rate_limited",
            "Requests refused by the gateway's rate limits, by scope (ip, key) and kind "
            "(requests, tokens).",
            ["scope", "kind"],
            registry=r,
        )
        self.limiter_errors = Counter(
            "turnout_rate_limit_store_errors",
            "Rate-limit checks the shared store (Redis) did not answer; limits.on_redis_error "
            "decided them.",
            registry=r,
        )
        self.retries = Counter(
            "turnout_router_retries",
            "Retries of a deployment already tried by the same request, by public model.",
            ["model"],
            registry=r,
        )
        self.retry_budget_exhausted = Counter(
            "turnout_router_retry_budget_exhausted",
            "Retries not made because retries had reached their share of the traffic.",
            registry=r,
        )
        self.ejections = Counter(
            "turnout_deployment_ejections",
            "Deployments ejected by the circuit breaker after repeated failures.",
            ["deployment"],
            registry=r,
        )
        self.rollbacks = Counter(
            "turnout_canary_rollbacks",
            "Canary deployments set to weight 0 because they did worse than the stable ones.",
            ["model", "deployment"],
            registry=r,
        )
        self.privacy = Counter(
            "turnout_privacy_decisions",
            "Requests carrying sensitive data, by the policy applied and category found.",
            ["decision", "category"],
            registry=r,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            if len(self._children) >= _MAX_LABEL_SETS:
                labels = tuple("other" for _ in labels)
                key = (id(metric), *labels)
                child = self._children.get(key)
            if child is None:
                child = metric.labels(*labels)
                self._children[key] = child
        return child

    def observe(self, rec: RequestRecord) -> None:
        backend = rec.backend or "none"
        # a request that never reached a backend (unknown model, invalid body) is counted
        # under model "-": its model name is whatever the caller typed
        model = rec.model if rec.backend else "-"
        self._child(self.requests, rec.endpoint, model, backend, str(rec.status)).inc()
        self._child(self.latency, rec.endpoint, model).observe(rec.latency)
        if rec.ttft is not None:
            self._child(self.ttft, rec.model).observe(rec.ttft)
        if rec.prompt_tokens:
            self._child(self.tokens, rec.model, backend, "prompt").inc(rec.prompt_tokens)
        if rec.completion_tokens:
            self._child(self.tokens, rec.model, backend, "completion").inc(rec.completion_tokens)
        if rec.error_code and rec.backend:
            self._child(self.backend_errors, backend, rec.error_code).inc()

    def count_rate_limited(self, scope: str, kind: str) -> None:
        self._child(self.rate_limited, scope, kind).inc()

    def count_retry(self, model: str) -> None:
        self._child(self.retries, model).inc()

    def count_ejection(self, deployment: str) -> None:
        self._child(self.ejections, deployment).inc()

    def count_rollback(self, model: str, deployment: str) -> None:
        self._child(self.rollbacks, model, deployment).inc()

    def count_privacy(self, decision: str, categories: frozenset[str]) -> None:
        for category in categories:
            self._child(self.privacy, decision, category).inc()

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def close(self) -> None:
        """A worker's live gauges stop counting when it exits."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
