"""Coarse deadlines for many tasks at once, with one timer per process instead of one per task.

Reading a request body must not take forever (a client that sends its headers and then a
byte a minute holds a connection and a task). A timer per request costs about 5 µs on the
event loop (scheduling and cancelling a ``TimerHandle``), more than the rest of the body
read; here a request only enters its task in a dict and leaves it again (well under 1 µs),
and one timer, armed only while some task is being watched, cancels every task past its
deadline. A deadline is therefore kept to within ``resolution`` seconds, late, never early.
"""

from __future__ import annotations

import asyncio

__all__ = ["Deadlines"]


class Deadlines:
    """Tasks with a deadline; see the module docstring.

    Use: ``token = deadlines.watch()`` before waiting, ``deadlines.release(token)`` after
    (in ``finally``); when the task is cancelled while watched, :meth:`expired` says whether
    the deadline did it (then ``task.uncancel()`` and raise the timeout error)."""

    def __init__(self, timeout: float, *, resolution: float | None = None) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.timeout = timeout
        self.resolution = resolution if resolution is not None else min(1.0, timeout / 4)
        #: watched task -> its deadline (loop time); insertion order is deadline order
        self._watched: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._watched)

    def watch(self) -> asyncio.Task[object]:
        """Start the current task's deadline (``timeout`` seconds from now)."""
        task = asyncio.current_task()
        assert task is not None, "Deadlines.watch() runs inside a task"
        loop = task.get_loop()
        self._watched[task] = loop.time() + self.timeout
        if self._timer is None:
            self._timer = loop.call_later(self.resolution, self._sweep, loop)
        return task

    def release(self, task: asyncio.Task[object]) -> None:
        """The task is done waiting (in time or not)."""
        self._watched.pop(task, None)
        self._expired.discard(task)

    def expired(self, task: asyncio.Task[object]) -> bool:
        """Whether this task was cancelled because its deadline passed."""
        return task in self._expired

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        watched = self._watched
        while watched:
            task, deadline = next(iter(watched.items()))
            if deadline > now:
                break
            del watched[task]
            self._expired.add(task)
            task.cancel()
        if watched:
            self._timer = loop.call_later(self.resolution, self._sweep, loop)
