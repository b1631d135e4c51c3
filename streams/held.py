"""Input records the gate keeps unacknowledged until their frame is decided.

Why: faust commits a record's offset once it is acknowledged, and the gate
keeps predictions and early signals in memory until it can decide their
frame.  Acknowledged at once, they would be committed while only memory
held them, and a worker killed then (SIGKILL, out of memory, a supervisor
that does not wait for the drain) would lose those frames: nothing would
read them again.  Held unacknowledged, their offsets stay uncommitted
(faust commits only up to the first unacknowledged offset of a partition),
so the next owner of the partition reads them again and decides them.

The price is the usual one of at-least-once: frames decided after the last
commit but before the crash are decided again, so a consumer may see a
second outcome for a frame id after a crash (never none).

Tokens are opaque (the agent passes faust events; tests pass strings).
Pure bookkeeping, no faust: :mod:`streams.agents.gate` acknowledges what
:meth:`HeldRecords.settled` returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["HeldRecords"]

T = TypeVar("T")


class HeldRecords(Generic[T]):
    """Unacknowledged records, by the frame id they wait on."""

    def __init__(self) -> None:
        self._by_frame: dict[str, list[T]] = {}
        self._count = 0

    def __len__(self) -> int:
        """Records held (not frames)."""
        return self._count

    def hold(self, frame_id: str, token: T) -> None:
        self._by_frame.setdefault(frame_id, []).append(token)
        self._count += 1

    def settled(self, waiting: Callable[[str], bool]) -> list[T]:
        """Release the records of every frame id that nothing waits on any more.

        ``waiting(frame_id)`` says whether the gate still keeps something of
        that frame (a prediction, or signals that came before it).
        """
        done = [frame_id for frame_id in self._by_frame if not waiting(frame_id)]
        return self._pop(done)

    def frames(self, where: Callable[[str], bool]) -> list[str]:
        """The held frame ids for which ``where(frame_id)`` is true."""
        return [frame_id for frame_id in self._by_frame if where(frame_id)]

    def count(self, frame_ids: Iterable[str]) -> int:
        """Records held for these frame ids."""
        return sum(len(self._by_frame.get(frame_id, ())) for frame_id in frame_ids)

    def release(self, frame_ids: Iterable[str]) -> list[T]:
        """Release these frames' records, whatever the gate still keeps of them."""
        return self._pop(frame_ids)

    def drop(self, which: Callable[[T], bool]) -> list[str]:
        """Forget, unacknowledged, every frame with a record for which ``which`` is true.

        For partitions given to another worker: their records will be read
        again there, so here they are neither decided nor acknowledged.
        Returns the frame ids forgotten.
        """
        gone = [f for f, tokens in self._by_frame.items() if any(which(t) for t in tokens)]
        self._pop(gone)
        return gone

    def _pop(self, frame_ids: Iterable[str]) -> list[T]:
        out: list[T] = []
        for frame_id in list(frame_ids):
            tokens = self._by_frame.pop(frame_id, None)
            if tokens:
                out += tokens
                self._count -= len(tokens)
        return out
