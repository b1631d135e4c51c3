"""Statistics of one decoded frame, computed once for every monitor that asks.

Why: in a worker the monitors that read a frame get the same decoded array
(``streams.observations.ImageCache``), and some compute the same statistic
of it.  Feature squeezing's trigger is perturbation energy's score
(:func:`detectors.monitors.energy.residual_floor`), so each frame's residual
map was computed twice, once in each monitor's thread.  Shared, the two
threads used 0.2-0.3 CPU-ms less a 424x240 frame (docs/benchmark-log.md,
"Gate cost", the eighteenth run): small, but it is work removed, not moved.

Values are keyed by the array itself (by identity, checked through a weak
reference, so a new array that happens to reuse a freed one's ``id`` never
matches) and by a key naming the statistic and its parameters.  Only
read-only arrays are shared: a value of an array that could change after it
was taken could go stale.  The worker's decoded frames are read-only
(``ImageCache``); elsewhere (calibration, benchmarks, attacks written into
a frame) arrays are writeable and every ask computes.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

import numpy as np

__all__ = ["PerImage", "per_image"]

T = TypeVar("T")


class PerImage:
    """A thread-safe LRU of values computed from arrays, ``capacity`` entries at most.

    Two threads asking at the same moment may both compute a value (the
    statistics here are deterministic, so either result is the same); what
    is shared is every later ask.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._values: OrderedDict[tuple[int, Hashable], tuple[weakref.ref, object]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, image: np.ndarray, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, or the value it gave for this very array and ``key`` before
        (read-only arrays only: a writeable one is computed every time)."""
        if image.flags.writeable:
            return compute()
        slot = (id(image), key)
        with self._lock:
            found = self._values.get(slot)
            if found is not None and found[0]() is image:
                self._values.move_to_end(slot)
                self.hits += 1
                return found[1]  # type: ignore[return-value]
            self.misses += 1
        value = compute()
        with self._lock:
            self._values[slot] = (weakref.ref(image), value)
            self._values.move_to_end(slot)
            while len(self._values) > self.capacity:
                self._values.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._values)


#: The process's shared values (monitors in one worker share decoded frames).
per_image = PerImage()
