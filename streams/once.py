"""A thread-safe LRU whose values are each computed once, however many threads ask at once.

Why: a worker's monitors take the same batch at the same moment, each in a
thread of its own, and ask for the same frame's check and pixels together.
With a plain cache every one of them misses and computes; here the first
computes and the others wait for its value (:mod:`streams.observations`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["OnceCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _not_none(value: object) -> bool:
    return value is not None


class OnceCache(Generic[K, V]):
    """The last ``capacity`` values by key, each computed by one thread while others wait.

    >>> cache = OnceCache(capacity=2)
    >>> cache.get("a", lambda: 1), cache.get("a", lambda: 2)
    (1, 1)
    >>> cache.hits, cache.misses
    (1, 1)
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._values: OrderedDict[K, V] = OrderedDict()
        self._computing: dict[K, threading.Event] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K, compute: Callable[[], V], keep: Callable[[V], bool] = _not_none) -> V:
        """The value for ``key``: cached, computed now by this thread, or by the thread
        computing it already (this one waits for it).

        A value ``keep`` refuses (by default None: a failed decode) is returned but not
        cached, so a thread that waited for it computes again.
        """
        while True:
            with self._lock:
                if key in self._values:
                    self._values.move_to_end(key)
                    self.hits += 1
                    return self._values[key]
                busy = self._computing.get(key)
                if busy is None:  # nobody is computing it: this thread will
                    self._computing[key] = threading.Event()
                    self.misses += 1
                    break
            busy.wait()  # then take its value; if it was not kept (or evicted), try again
        kept = False
        try:
            value = compute()
            kept = keep(value)
        finally:
            with self._lock:
                if kept:
                    self._values[key] = value
                    while len(self._values) > self.capacity:
                        self._values.popitem(last=False)
                self._computing.pop(key).set()
        return value

    def __len__(self) -> int:
        return len(self._values)
