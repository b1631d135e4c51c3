"""One thread per device for every model run, where a monitor's check goes ahead of batches.

Why one thread: a model is not re-entrant, and on a CPU two threads running
models bring two intra-op thread pools that fight over the same cores (with
feature squeezing in a thread of its own, every monitor on kept 0.57 of
detector-only throughput on 2 cores; sharing the detector's thread,
0.80-0.88: docs/benchmarks.md).  Keep it the only thread that runs torch in the
process, the event loop included: torch's CPU kernels use OpenMP, which gives
each calling thread a team of its own, and GNU OpenMP cuts its spin-waits to
almost nothing once a process has more of its threads than cores.  SSDLite on
2 cores, in one non-main thread: 93 frames/s (79-104); the same in a thread
after the main thread had also run the model: 61 (57-62) (bench/cpu_runtime.py).
The one exception is its own: on a CPU it may hand a batch's parts to lanes
that run beside it, each with a one-thread torch and so no team at all
(:mod:`streams.cpu_lanes`); it still runs one batch, or one check, at a time.

Why priorities: the detector keeps up to ``SECMLOPS_WORKER_IN_FLIGHT`` batches
queued for this thread, so that the model never waits for the event loop.
A squeezing check queued behind them waited for all of them, and with two
CPU batches in flight on a loaded machine it missed the gate's deadline (clean
frames held as ``missing/adversarial.squeeze``).  Here a check waits only for
the run in progress: :attr:`DeviceThread.checks` goes ahead of
:attr:`DeviceThread.batches`, first come first served within each.

Why a batch lets checks in: a check that waits for the whole detector batch in
progress can wait seconds on a CPU, past the gate's deadline: HOG took 3.3 s
for 16 frames on 2 idle cores, and up to 4.5 s for 4 on cores busy with a
replay's attacks.  The detector runs a CPU batch in parts and calls
:func:`let_ahead` between them, which runs the checks waiting by then.

Why it counts its busy time per lane: on a CPU the detector's thread is what
bounds a worker, and the share of it that monitors' checks take is their
throughput cost.  Estimating that share from counts (checks per frame) got it
wrong by half: a check of one frame costs more than a frame of a detector
batch, and more again when it meets the monitors' own work
(docs/benchmark-log.md, "Gate cost").  :meth:`DeviceThread.busy` gives the
seconds each lane ran; the worker serves them at ``/device/``.

Both lanes are :class:`concurrent.futures.Executor` s, for
``loop.run_in_executor``.
"""

from __future__ import annotations

import atexit
import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["DeviceThread", "Lane", "let_ahead"]

_STOP = float("inf")  # sorts after every real priority: what was queued still runs


class Lane(Executor):
    """Submits to its :class:`DeviceThread` at one priority (lower runs first)."""

    def __init__(self, thread: DeviceThread, priority: int) -> None:
        self._thread = thread
        self.priority = priority

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        return self._thread.submit(self.priority, fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._thread.shutdown(wait)


class DeviceThread:
    """A single worker thread taking the most urgent queued call first.

    ``name`` becomes the thread's name with ``_0`` appended, as
    :class:`~concurrent.futures.ThreadPoolExecutor` names its threads, so
    :mod:`streams.threads` counts it under ``name``.

    >>> thread = DeviceThread("detector-doc")
    >>> thread.batches.submit(sum, [1, 2]).result(), thread.checks.submit(max, 3, 4).result()
    (3, 4)
    >>> thread.shutdown()
    """

    CHECK, BATCH = 0, 1
    #: Lane names, as :meth:`busy` reports them.
    LANES = {CHECK: "checks", BATCH: "batches"}

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.PriorityQueue[tuple[float, int, Any]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.checks = Lane(self, self.CHECK)
        self.batches = Lane(self, self.BATCH)
        # Written by the thread only; a reader may see one call late, never a torn value.
        self._busy_s = dict.fromkeys(self.LANES.values(), 0.0)
        # The thread's own: the running call's priority, seconds run inside let_ahead.
        self._running: float = _STOP
        self._nested_s = 0.0
        self._letting = False

    def submit(self, priority: int, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Queue ``fn(*args, **kwargs)`` at ``priority``; its result comes in the future."""
        future: Future = Future()
        with self._lock:
            if self._stopped:
                raise RuntimeError(f"{self.name} is shut down")
            if self._thread is None:
                # A daemon, stopped at exit below: a thread blocked on its queue must not
                # hold the interpreter open, nor be killed in the middle of a model run.
                name = f"{self.name}_0"
                self._thread = threading.Thread(target=self._run, name=name, daemon=True)
                self._thread.start()
                atexit.register(self.shutdown)
            self._queue.put((priority, next(self._order), (future, fn, args, kwargs)))
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Run what is queued, then stop the thread (new submissions are refused)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            thread = self._thread
            self._queue.put((_STOP, next(self._order), None))
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def busy(self) -> dict[str, float]:
        """Wall-clock seconds the thread has spent running each lane's calls so far."""
        return dict(self._busy_s)

    def let_ahead(self) -> None:
        """Run the calls waiting in a more urgent lane than the call in progress, now.

        For a long call to offer between its steps (the detector between the parts
        of a batch: :func:`streams.inference.predict_batch`), so that a check waits
        for one part, not the whole batch.  A no-op outside this thread, and inside
        a call it let ahead (one level deep).
        """
        if threading.current_thread() is not self._thread or self._letting:
            return
        if self._running == _STOP:  # not inside a call
            return
        self._letting = True
        try:
            while True:
                with self._queue.mutex:  # a peek; only this thread takes from the queue
                    waiting = self._queue.queue
                    if not waiting or waiting[0][0] >= self._running:
                        return
                item = self._queue.get_nowait()
                start = time.perf_counter()
                self._call(*item)
                self._nested_s += time.perf_counter() - start
        finally:
            self._letting = False

    def _run(self) -> None:
        _local.thread = self
        while True:
            entry = self._queue.get()
            if entry[2] is None:
                return
            self._call(*entry)

    def _call(self, priority: float, _: int, item: Any) -> None:
        future, fn, args, kwargs = item
        if not future.set_running_or_notify_cancel():
            return
        lane = self.LANES.get(int(priority), "other")
        outer, self._running = self._running, priority
        nested_before, start = self._nested_s, time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # handed to whoever waits for it
            self._add_busy(lane, start, self._nested_s - nested_before)
            future.set_exception(exc)
        else:
            self._add_busy(lane, start, self._nested_s - nested_before)
            future.set_result(result)
        finally:
            self._running = outer

    def _add_busy(self, lane: str, start: float, let_ahead_s: float) -> None:
        # Before the future is set, so that whoever waits for a call sees it counted;
        # the calls it let ahead count in their own lanes.
        ran = time.perf_counter() - start - let_ahead_s
        self._busy_s[lane] = self._busy_s.get(lane, 0.0) + ran


_local = threading.local()


def let_ahead() -> None:
    """:meth:`DeviceThread.let_ahead` of the device thread this runs in; elsewhere a no-op."""
    thread = getattr(_local, "thread", None)
    if thread is not None:
        thread.let_ahead()
