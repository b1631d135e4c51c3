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

A record may wait on several frames: a ``signals/1`` record carries one
monitor's signals for a batch of a camera's frames, and is acknowledged
once none of them waits any more.

Tokens are opaque (the agent passes faust events; tests pass strings).
Pure bookkeeping, no faust: :mod:`streams.agents.gate` acknowledges what
:meth:`HeldRecords.settled` returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["HeldRecords"]

T = TypeVar("T")


class _Held(Generic[T]):
    """One held record: its token and the frames it still waits on."""

    __slots__ = ("frames", "token", "waiting")

    def __init__(self, token: T, frames: tuple[str, ...]) -> None:
        self.token = token
        self.frames = frames
        self.waiting = set(frames)


class HeldRecords(Generic[T]):
    """Unacknowledged records, by the frame ids they wait on."""

    def __init__(self) -> None:
        self._by_frame: dict[str, list[_Held[T]]] = {}
        self._count = 0

    def __len__(self) -> int:
        """Records held (not frames)."""
        return self._count

    def hold(self, token: T, *frame_ids: str) -> None:
        """Hold a record until none of ``frame_ids`` waits any more."""
        if not frame_ids:
            raise ValueError("a held record waits on at least one frame")
        held = _Held(token, tuple(dict.fromkeys(frame_ids)))
        for frame_id in held.frames:
            self._by_frame.setdefault(frame_id, []).append(held)
        self._count += 1

    def settled(self, waiting: Callable[[str], bool]) -> list[T]:
        """Release the records none of whose frames anything waits on any more.

        ``waiting(frame_id)`` says whether the gate still keeps something of
        that frame (a prediction, or signals that came before it).
        """
        done = [frame_id for frame_id in self._by_frame if not waiting(frame_id)]
        return self._pop(done)

    def frames(self, where: Callable[[str], bool]) -> list[str]:
        """The held frame ids for which ``where(frame_id)`` is true."""
        return [frame_id for frame_id in self._by_frame if where(frame_id)]

    def count(self, frame_ids: Iterable[str]) -> int:
        """Records held for any of these frame ids (each record once)."""
        return len({id(h) for f in frame_ids for h in self._by_frame.get(f, ())})

    def release(self, frame_ids: Iterable[str]) -> list[T]:
        """Stop waiting on these frames, whatever the gate still keeps of them; returns the
        records that now wait on nothing."""
        return self._pop(frame_ids)

    def drop(self, which: Callable[[T], bool]) -> list[str]:
        """Forget, unacknowledged, every frame with a record for which ``which`` is true,
        and every frame that shares a record with a forgotten one.

        For partitions given to another worker: their records will be read
        again there, so here they are neither decided nor acknowledged.
        Returns the frame ids forgotten.
        """
        gone: dict[str, None] = {}
        todo = [f for f, held in self._by_frame.items() if any(which(h.token) for h in held)]
        while todo:
            frame_id = todo.pop(0)
            if frame_id in gone:
                continue
            gone[frame_id] = None
            for held in self._by_frame.pop(frame_id, ()):
                if held.waiting:
                    held.waiting = set()  # dropped: never released
                    self._count -= 1
                todo += [f for f in held.frames if f not in gone]
        return list(gone)

    def _pop(self, frame_ids: Iterable[str]) -> list[T]:
        out: list[T] = []
        for frame_id in list(frame_ids):
            for held in self._by_frame.pop(frame_id, ()):
                if frame_id in held.waiting:
                    held.waiting.discard(frame_id)
                    if not held.waiting:
                        out.append(held.token)
                        self._count -= 1
        return out
