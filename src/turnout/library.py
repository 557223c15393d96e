"""Library mode: the gateway's services in-process, no HTTP server.

``predict()`` keeps one gateway on a private event-loop thread so that its connection pools
live across calls; ``apredict()`` keeps one gateway per running event loop.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from concurrent.futures import Future
from typing import Any

from turnout.gateway import Gateway

__all__ = ["apredict", "predict"]

_lock = threading.Lock()
_portal: _Portal | None = None
_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Gateway] = (
    weakref.WeakKeyDictionary()
)


class _Portal:
    """A daemon thread running an event loop that owns one started gateway."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="turnout", daemon=True)
        self.thread.start()
        try:
            self.gateway: Gateway = self.run(_started_gateway())
        except BaseException:
            self._stop()
            raise

    def run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result()

    def close(self) -> None:
        try:
            self.run(self.gateway.aclose())
        finally:
            self._stop()

    def _stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


async def _started_gateway() -> Gateway:
    gateway = Gateway.from_config()
    await gateway.start()
    return gateway


def _get_portal() -> _Portal:
    global _portal
    with _lock:
        if _portal is None:
            _portal = _Portal()
            atexit.register(_portal.close)
        return _portal


def predict(text: str, *, model: str | None = None, **params: Any) -> str:
    """Send ``text`` to a model (the default model if none is named) and return the reply.

    Uses the same configuration as ``turnout serve`` ($TURNOUT_CONFIG, ./turnout.yaml or the
    environment) and the same routing, fallback and accounting, without a server::

        >>> import turnout
        >>> turnout.predict("Say hello", model="openai/gpt-4o-mini", max_tokens=16)
    """
    portal = _get_portal()
    return str(portal.run(portal.gateway.predict(text, model=model, **params)))


async def apredict(text: str, *, model: str | None = None, **params: Any) -> str:
    """The async counterpart of :func:`predict`."""
    loop = asyncio.get_running_loop()
    gateway = _per_loop.get(loop)
    if gateway is None:
        gateway = await _started_gateway()
        _per_loop[loop] = gateway
    return await gateway.predict(text, model=model, **params)
