"""A graceful stop: take no new frames, let those in flight reach their outcome, then stop.

Why not faust's own stop: it stops fetching at once and then waits for
every fetched message to be acknowledged.  With monitors running behind the
detector, some never were (faust logs ``wait_empty: Waiting for tasks``
until the process is killed), so the worker hung, never left its consumer
group, and its successor waited about a minute to join.  Skipping that wait
(``stream_wait_empty=False``) stopped it in 2 s but lost frames: the gate
holds predictions in memory until their signals arrive, and their offsets
were already committed.

So the first SIGTERM (or SIGINT) pauses the frame partitions only, keeps
fetching predictions and signals, and waits until nothing is left: no
unacknowledged message and no prediction pending in the gate, for a whole
``quiet_s``.  Signals the gate still holds for predictions that never came
(their frames were dead-lettered) are then acknowledged, ``on_drained`` runs
(the monitors save their state), and faust's stop runs with nothing in
flight.  A stop that takes longer than ``timeout_s`` goes ahead anyway
(logged); a second signal stops at once.  Either way what was not decided
stays unacknowledged, so its offsets are not committed and the next worker
reads it again (:mod:`streams.held`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import faust

from streams.topics import TOPICS

__all__ = ["DrainingWorker", "Hold", "NoHold"]

log = logging.getLogger(__name__)


class Hold(Protocol):
    """Work held outside faust's acknowledgements (the gate's; see streams.agents.gate)."""

    async def pending(self) -> int:
        """Predictions waiting for their signals."""
        ...

    async def orphans(self) -> int:
        """Unacknowledged records held only for predictions that may never come."""
        ...

    async def release_orphans(self) -> None:
        """Acknowledge the orphans: called once nothing else is in flight."""
        ...


class NoHold:
    """Nothing held (a worker without the gate)."""

    async def pending(self) -> int:
        return 0

    async def orphans(self) -> int:
        return 0

    async def release_orphans(self) -> None:
        return None


class DrainingWorker(faust.Worker):
    """A faust worker that drains its frames' outcomes before it stops."""

    def __init__(
        self,
        app: faust.App,
        *,
        hold: Hold,
        timeout_s: float,
        quiet_s: float = 1.0,
        on_drained: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._hold = hold
        self._on_drained = on_drained
        self._drain_timeout_s = timeout_s
        self._quiet_s = quiet_s
        self._draining = False

    # mode.Worker's handlers (pinned faust-streaming 0.15.3 / mode): the first signal drains.
    def _on_sigterm(self) -> None:
        self._drain_or_stop(signal.SIGTERM)

    def _on_sigint(self) -> None:
        self._drain_or_stop(signal.SIGINT)

    def _drain_or_stop(self, sig: signal.Signals) -> None:
        if self._draining:
            log.warning("second %s: stopping without draining", sig.name)
            self._schedule_shutdown(sig)
            return
        self._draining = True
        self.add_future(self._drain_then_stop(sig))

    async def _busy(self) -> int:
        unacked = len(self.app.consumer.unacked) - await self._hold.orphans()
        return max(0, unacked) + await self._hold.pending()

    async def _drain_then_stop(self, sig: signal.Signals) -> None:
        try:
            await self._drain(sig)
        except Exception:  # e.g. a signal during start-up, before any assignment
            log.exception("%s: could not drain; stopping", sig.name)
        self._schedule_shutdown(sig)

    async def _drain(self, sig: signal.Signals) -> None:
        consumer = self.app.consumer
        frames = {tp for tp in consumer.assignment() if tp.topic == TOPICS.frames.name}
        consumer.pause_partitions(frames)
        began = time.monotonic()
        log.info("%s: draining (no new frames; waiting for those in flight)", sig.name)
        quiet_since: float | None = None
        while time.monotonic() - began < self._drain_timeout_s:
            if await self._busy():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= self._quiet_s:
                await self._hold.release_orphans()
                if self._on_drained is not None:
                    await self._on_drained()
                log.info("drained in %.1f s; stopping", time.monotonic() - began)
                return
            await asyncio.sleep(0.1)
        log.warning(
            "not drained after %.0f s (%d messages or predictions in flight, left to the next"
            " worker); stopping",
            self._drain_timeout_s,
            await self._busy(),
        )
