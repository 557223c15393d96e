"""The ASGI application: routing, access control, lifespan, error rendering, disconnects.

Routes are thin functions ``(gateway, request) -> JsonResponse | SseResponse`` registered in
:mod:`turnout.server.routes`; this module does everything they share. When the client goes
away before the answer is complete, the request's task is cancelled, which closes the
upstream connection or frees the local engine slot (see the backend contract).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from typing import Any

from turnout.config import Config, load_config
from turnout.exceptions import MethodNotAllowed, TurnoutError, UnknownURL
from turnout.gateway import Gateway
from turnout.policies.limits import Admission
from turnout.server.access import Access
from turnout.server.errors import error_headers, openai_error
from turnout.server.http import (
    SSE_HEADERS,
    ASGIApp,
    BodyLimits,
    HttpRequest,
    JsonResponse,
    LastFrame,
    Receive,
    Scope,
    Send,
    SseResponse,
)
from turnout.server.middleware import wrap
from turnout.server.middleware.hosts import LISTEN_HOST_ENV
from turnout.server.routes import PREFIX_ROUTES, ROUTES, RouteSpec
from turnout.telemetry.logging import configure_logging

__all__ = ["TurnoutApp", "create_app", "create_app_from_env"]

log = logging.getLogger("turnout.server")

_INTERNAL = TurnoutError(
    "The gateway failed to handle this request; the request id is in the x-request-id header."
)


#: requests answered faster than this never pay for a disconnect watcher
WATCH_AFTER = 0.02


class _Watch:
    """Cancels the request's task when the client disconnects before the answer is sent.

    The watcher task starts only once a request has run for WATCH_AFTER seconds: quick
    answers cost a timer instead of a task, and slow ones (where a disconnect matters:
    generation, streams, hung upstreams) are watched."""

    __slots__ = ("disconnected", "done", "task", "timer")

    def __init__(self) -> None:
        self.done = False
        self.disconnected = False
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def start(self, receive: Receive) -> None:
        current = asyncio.current_task()
        assert current is not None
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(WATCH_AFTER, self._spawn, loop, receive, current)

    def _spawn(
        self, loop: asyncio.AbstractEventLoop, receive: Receive, target: asyncio.Task[Any]
    ) -> None:
        self.timer = None
        if not self.done:
            self.task = loop.create_task(self._watch(receive, target))

    async def _watch(self, receive: Receive, target: asyncio.Task[Any]) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        if not self.done:
            self.disconnected = True
            target.cancel()

    def stop(self) -> None:
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.task is not None:
            self.task.cancel()
            self.task = None


class TurnoutApp:
    """ASGI 3 application over one :class:`Gateway`."""

    def __init__(
        self, gateway: Gateway, *, manage_gateway: bool = True, freeze_heap: bool = False
    ) -> None:
        self.gateway = gateway
        self.manage_gateway = manage_gateway
        #: at start-up, take what exists then out of the cycle collector's walks (freeze_heap)
        self.freeze_heap = freeze_heap
        self.body_limits = _body_limits(gateway.config)
        #: authentication, roles, per-key limits and the audit trail (turnout.server.access)
        self.access = Access(gateway)
        #: per-IP limits are checked before authentication and before the body is read
        self._limit_ips = gateway.limits.per_ip is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = HttpRequest(scope, receive)
        methods = ROUTES.get(req.path) or _prefix_route(req.path)
        spec = methods.get(req.method) if methods else None
        if spec is None:
            await self._send_error(send, req, _no_route(req, methods))
            return
        watch = _Watch()
        try:
            if spec.auth:
                if self._limit_ips:
                    await self._admit(req)
                await self.access.check(spec, req)
            if spec.body:
                req.parsed = await req.json(self.body_limits)
            watch.start(receive)
            if spec.audit is None:
                response = await spec.handler(self.gateway, req)
            else:
                response = await self.access.audited(spec, req)
            if isinstance(response, SseResponse):
                await self._send_sse(send, req, response, watch)
            else:
                watch.stop()
                await _send_json(send, req, response)
        except asyncio.CancelledError:
            if not watch.disconnected:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except TurnoutError as exc:
            watch.stop()
            await self._send_error(send, req, exc)
        except Exception:
            watch.stop()
            log.exception(
                "unhandled error in %s %s (request %s)", req.method, req.path, req.request_id
            )
            await self._send_error(send, req, _INTERNAL)
        finally:
            watch.stop()

    async def _admit(self, req: HttpRequest) -> None:
        """Count the request against its client IP (RateLimited when none are left)."""
        subject = self.gateway.limits.ip_subject(req.scope)
        if subject is not None:
            req.admission = Admission()
            await self.gateway.limits.admit(req.admission, subject)

    async def _send_sse(
        self, send: Send, req: HttpRequest, response: SseResponse, watch: _Watch
    ) -> None:
        headers = [*SSE_HEADERS, (b"x-request-id", req.request_id.encode()), *response.headers]
        if req.admission is not None:
            headers += req.admission.headers()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        events = response.events
        last = b""
        try:
            async for frame in events:
                if type(frame) is LastFrame:  # sent with the end of the body, in one write
                    last = frame
                    break
                await send({"type": "http.response.body", "body": frame, "more_body": True})
        except Exception:  # the status line is out: end the stream, never start a second one
            log.exception("stream %s failed after it started", req.request_id)
        finally:
            await events.aclose()
        watch.stop()
        await send({"type": "http.response.body", "body": bytes(last), "more_body": False})

    async def _send_error(self, send: Send, req: HttpRequest, exc: TurnoutError) -> None:
        response = JsonResponse(openai_error(exc), exc.status, error_headers(exc))
        await _send_json(send, req, response)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.freeze_heap:
                    freeze_heap()
                try:
                    if self.manage_gateway:
                        await self.gateway.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.manage_gateway:
                    await self.gateway.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _send_json(send: Send, req: HttpRequest, response: JsonResponse) -> None:
    headers = [
        (b"content-type", response.content_type),
        (b"content-length", str(len(response.body)).encode()),
        (b"x-request-id", req.request_id.encode()),
        *response.headers,
    ]
    if req.admission is not None:
        headers += req.admission.headers()
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})


def _body_limits(config: Config) -> BodyLimits:
    server = config.server
    return BodyLimits.create(server.max_body_bytes, server.max_json_depth, server.body_timeout)


def _prefix_route(path: str) -> dict[str, RouteSpec] | None:
    for prefix, methods in PREFIX_ROUTES:
        if path.startswith(prefix) and len(path) > len(prefix):
            return methods
    return None


def _no_route(req: HttpRequest, methods: dict[str, RouteSpec] | None) -> TurnoutError:
    if methods:
        allowed = ", ".join(sorted(methods))
        return MethodNotAllowed(f"Method {req.method} is not allowed on {req.path}; use {allowed}.")
    return UnknownURL(
        f"Unknown request URL: {req.method} {req.path}. Check the URL; the OpenAI API lives "
        "under /v1 (base_url=http://HOST:PORT/v1)."
    )


def create_app(
    config: Config | None = None,
    gateway: Gateway | None = None,
    *,
    listen_host: str | None = None,
    freeze_heap: bool = False,
) -> ASGIApp:
    """The ASGI app for a configuration (or an existing gateway, which the caller manages),
    inside the middleware its ``server:`` section asks for (turnout.server.middleware);
    ``listen_host``: the address the server listens on, when not ``server.host``;
    ``freeze_heap``: see :func:`freeze_heap` (for a process that only serves this app)."""
    if gateway is not None:
        app = TurnoutApp(gateway, manage_gateway=False, freeze_heap=freeze_heap)
    else:
        app = TurnoutApp(Gateway(config or load_config()), freeze_heap=freeze_heap)
    return wrap(app, app.gateway.config.server, listen_host)


def create_app_from_env() -> ASGIApp:
    """Factory for ``uvicorn --factory``: configuration from $TURNOUT_CONFIG and defaults.
    Runs in every worker process, so logging is set up here too."""
    configure_logging()
    return create_app(load_config(), listen_host=os.environ.get(LISTEN_HOST_ENV), freeze_heap=True)


def freeze_heap() -> None:
    """Collect, then move every object alive now (imported modules, classes, functions, the
    configuration: ~140k objects) to the collector's permanent generation.

    Without it every full (generation 2) collection walks all of them: under load that ran
    about once a second and took ~100 ms on the benchmark VM (the p99 at concurrency 32, and
    ~11 % of the CPU; docs/benchmarks.md). Called when the server starts, before the gateway
    starts: what it makes after (pools, loaded models, requests) is collected as usual, so a
    model unloaded later is freed even if it holds reference cycles."""
    gc.collect()
    gc.freeze()
