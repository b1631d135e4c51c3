"""A cache whose values are each computed once, however many threads ask at the same moment."""

from __future__ import annotations

import threading
import time

import pytest

from streams.once import OnceCache


def ask_at_once(cache: OnceCache, key, compute, callers: int = 5) -> list:
    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(key, compute)))
        for _ in range(callers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    return results


def slow(value, calls: list):
    def compute():
        calls.append(value)
        time.sleep(0.05)  # long enough that every caller arrives while it runs
        return value

    return compute


def test_callers_asking_at_once_share_one_computation():
    calls: list = []
    cache = OnceCache(capacity=4)
    assert ask_at_once(cache, "k", slow(7, calls)) == [7] * 5
    assert calls == [7] and (cache.misses, cache.hits) == (1, 4)


def test_a_value_not_kept_is_computed_again_by_each_caller_that_waited_for_it():
    calls: list = []
    cache = OnceCache(capacity=4)
    assert ask_at_once(cache, "k", slow(None, calls), callers=3) == [None] * 3
    assert len(calls) == 3 and len(cache) == 0


def test_a_failed_computation_raises_in_its_thread_and_frees_the_waiters():
    cache: OnceCache[str, int] = OnceCache(capacity=4)

    def broken() -> int:
        raise RuntimeError("decoder crashed")

    with pytest.raises(RuntimeError, match="decoder crashed"):
        cache.get("k", broken)
    assert cache.get("k", lambda: 3) == 3  # nothing left marked as being computed


def test_the_most_recent_values_are_kept():
    cache: OnceCache[int, int] = OnceCache(capacity=2)
    for key in range(3):
        cache.get(key, lambda key=key: key * 10)
    assert cache.get(2, lambda: -1) == 20  # kept
    assert cache.get(0, lambda: -1) == -1  # evicted: computed again


def test_a_cache_holds_at_least_one_value():
    with pytest.raises(ValueError, match="at least 1"):
        OnceCache(capacity=0)
