"""Signals that came before their prediction, kept until it comes or until it never will.

Frame monitors score a frame as soon as it is on ``pds.frames``; its
prediction comes when the detector gets to it.  On a loaded worker the
detector can be minutes behind (a fast replay, or a red-team replayer
computing PGD on the same cores), so how long a signal waits here must not
be a fixed time: with 50 s, a replay that put the detector 50 s behind had
every frame after that quarantined as ``missing/integrity`` and so on,
although every frame monitor had passed it.

A signal knows the frame record it scored (``Signal.delivery``, as
``Prediction.delivery``).  The detector predicts a partition of
``pds.frames`` in order, so a prediction of record *o* means that every
record before *o* on that partition has had its outcome: a signal of an
earlier record still waiting here will never be claimed (its frame was
dead-lettered, or decided already) and goes at once.  A signal ahead of the
detector waits as long as the detector takes, up to ``ttl_s`` (a safety net
for a partition gone quiet after a dead-lettered frame, and for signals
that name no record) and ``capacity`` signals in all (the oldest goes first).
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict, deque
from dataclasses import dataclass

from streams.events import Signal

__all__ = ["SIGNAL_TTL_S", "EarlySignals", "record_of"]

#: Default longest wait for a prediction (``SECMLOPS_GATE_SIGNAL_TTL``).
SIGNAL_TTL_S = 600.0


def record_of(delivery: str) -> tuple[int, int] | None:
    """``(partition, offset)`` of a ``partition:offset`` delivery; None when it names none."""
    partition, sep, offset = delivery.partition(":")
    if not sep:
        return None
    try:
        return int(partition), int(offset)
    except ValueError:
        return None


@dataclass(slots=True, eq=False)  # entries are compared by identity
class _Entry:
    key: int
    arrived: float
    signal: Signal


class EarlySignals:
    """Signals by frame id and monitor, oldest first; each taken at most once.

    Every method returns or counts what it drops in :attr:`dropped`.
    """

    def __init__(self, ttl_s: float = SIGNAL_TTL_S, capacity: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.capacity = capacity
        self.dropped = 0
        self._by_frame: dict[str, dict[str, deque[_Entry]]] = {}
        self._order: OrderedDict[int, _Entry] = OrderedDict()  # live entries, arrival order
        # Per partition of pds.frames: the last record predicted, and a heap of
        # (offset, key) of the signals waiting (entries taken since are skipped).
        self._passed: dict[int, int] = {}
        self._ahead: dict[int, list[tuple[int, int]]] = {}
        self._heaped = 0
        self._keys = itertools.count()

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, frame_id: object) -> bool:
        return frame_id in self._by_frame

    def add(self, signal: Signal, now: float) -> None:
        """Keep a signal for its prediction (unless that record was passed already)."""
        record = record_of(signal.delivery)
        if record is not None and record[1] <= self._passed.get(record[0], -1):
            self.dropped += 1  # its record was predicted (or dead-lettered) before
            return
        entry = _Entry(next(self._keys), now, signal)
        self._by_frame.setdefault(signal.frame_id, {}).setdefault(signal.monitor, deque()).append(
            entry
        )
        self._order[entry.key] = entry
        if record is not None:
            heapq.heappush(self._ahead.setdefault(record[0], []), (record[1], entry.key))
            self._heaped += 1
        while len(self._order) > self.capacity:
            self._drop(next(iter(self._order.values())))

    def take(self, frame_id: str, monitor: str) -> Signal | None:
        """The oldest waiting signal of this frame id from this monitor, if any."""
        queue = self._by_frame.get(frame_id, {}).get(monitor)
        if not queue:
            return None
        entry = queue[0]
        self._remove(entry)
        return entry.signal

    def passed(self, delivery: str) -> None:
        """A prediction of this frame record came: the records before it are done."""
        record = record_of(delivery)
        if record is None:
            return
        partition, offset = record
        if offset <= self._passed.get(partition, -1):
            return
        self._passed[partition] = offset
        heap = self._ahead.get(partition, [])
        while heap and heap[0][0] < offset:
            _, key = heapq.heappop(heap)
            self._heaped -= 1
            entry = self._order.get(key)
            if entry is not None:
                self._drop(entry)

    def expire(self, now: float) -> None:
        """Drop the signals that waited ``ttl_s``."""
        while self._order:
            entry = next(iter(self._order.values()))
            if now - entry.arrived < self.ttl_s:
                break
            self._drop(entry)
        if self._heaped > 2 * len(self._order) + 1024:  # mostly taken: rebuild
            self._reheap()

    def discard(self, frame_id: str, delivery: str) -> None:
        """Drop the signals of this frame record (decided already: read again)."""
        for queue in list(self._by_frame.get(frame_id, {}).values()):
            for entry in list(queue):
                if entry.signal.delivery == delivery:
                    self._drop(entry)

    def forget(self, frame_id: str) -> None:
        """Drop this frame id's signals without counting them (read again elsewhere)."""
        for queue in list(self._by_frame.get(frame_id, {}).values()):
            for entry in list(queue):
                self._remove(entry)

    def rewind(self) -> None:
        """Partitions will be read again from their committed offsets: records predicted
        before may be predicted again, so nothing counts as passed any more."""
        self._passed.clear()

    def _drop(self, entry: _Entry) -> None:
        self._remove(entry)
        self.dropped += 1

    def _remove(self, entry: _Entry) -> None:
        del self._order[entry.key]
        signal = entry.signal
        monitors = self._by_frame[signal.frame_id]
        monitors[signal.monitor].remove(entry)
        if not monitors[signal.monitor]:
            del monitors[signal.monitor]
            if not monitors:
                del self._by_frame[signal.frame_id]

    def _reheap(self) -> None:
        self._ahead = {}
        for entry in self._order.values():
            record = record_of(entry.signal.delivery)
            if record is not None:
                self._ahead.setdefault(record[0], []).append((record[1], entry.key))
        for heap in self._ahead.values():
            heapq.heapify(heap)
        self._heaped = sum(map(len, self._ahead.values()))
