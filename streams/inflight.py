"""Batches in flight: the next batch's work starts while the last one's results are sent.

Why: an agent that awaits a batch's inference, then sends its outcomes, then
gathers the next batch leaves the model idle while the event loop sends and
gathers.  :class:`InFlight` runs each batch's ``compute`` as soon as it is
submitted and calls each batch's ``finish`` in submission order, so one
batch's outcomes leave while the next one is in the model.  ``depth`` bounds
the batches not yet finished (memory, and how much is read again after a
crash: a batch's records are acknowledged only by its ``finish``).

Pure asyncio, no faust: the detector agent (:mod:`streams.agents.detect`)
submits its batches here, and the worker finishes what is in flight before
a rebalance commits (:class:`streams.app.App`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["InFlight"]

T = TypeVar("T")


class InFlight:
    """Up to ``depth`` batches at once: computed as they come, finished in order."""

    def __init__(self, depth: int = 2) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth = depth
        self._tasks: deque[asyncio.Task[None]] = deque()

    def __len__(self) -> int:
        """Batches submitted and not yet finished."""
        return sum(not task.done() for task in self._tasks)

    async def submit(
        self, compute: Callable[[], Awaitable[T]], finish: Callable[[T], Awaitable[Any]]
    ) -> None:
        """Start ``compute()`` (once fewer than ``depth`` batches are in flight); call
        ``finish`` with its result after every batch submitted before it is finished.

        A batch that failed raises here, at a later submit or at :meth:`drain`; the
        batches after it are not finished (their records stay unacknowledged).
        """
        while self._tasks and (len(self._tasks) >= self.depth or self._tasks[0].done()):
            await self._finish_first()
        previous = self._tasks[-1] if self._tasks else None
        self._tasks.append(asyncio.ensure_future(self._run(compute(), finish, previous)))

    async def drain(self) -> None:
        """Wait until every batch submitted is finished (the first failure raises)."""
        while self._tasks:
            await self._finish_first()

    def cancel(self) -> None:
        """Abandon what is in flight, unfinished (a stop without a drain)."""
        for task in self._tasks:
            if task.done():
                if not task.cancelled():
                    task.exception()  # seen: a batch after a failed one fails the same way
            else:
                task.cancel()
        self._tasks.clear()

    async def _finish_first(self) -> None:
        try:
            await self._tasks.popleft()
        except BaseException:
            self.cancel()
            raise

    @staticmethod
    async def _run(
        result: Awaitable[T],
        finish: Callable[[T], Awaitable[Any]],
        previous: asyncio.Task[None] | None,
    ) -> None:
        value = await result
        if previous is not None:
            await asyncio.shield(previous)  # finish in order; a failure before stops this one
        await finish(value)
