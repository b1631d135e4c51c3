"""A CPU batch run as parts side by side, one torch thread per part, not one part at a time.

Why: on a CPU the detector runs a batch in parts of a few frames anyway (so that
monitors' checks wait for one part, :mod:`streams.device_thread`).  Given to
torch one at a time, each part is split again over every core by torch's
OpenMP team, and at frames of 424x240 the team spends much of its time
waiting at the end of each layer.  Run as independent parts, one per core, each
with a one-thread torch, the same cores do more: on 2 cores SSDLite alone ran
at 29.3 frames/s against 24.9 (bench/cpu_runtime.py), and a worker 24 % faster
with SSDLite and 37 % with HOG (docs/benchmarks.md, "CPU lanes").

The calling thread stays the one the event loop hands model runs to (the
device thread): it takes parts itself, lets checks in between its parts
(``between``), and gives the other parts to ``lanes - 1`` helper threads of its
own.  Only a batch's parts run side by side; batches still run one at a time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

__all__ = ["CpuLanes", "usable_cores"]

Detect = Callable[[list], list[np.ndarray]]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class CpuLanes:
    """Run the parts of a batch on ``lanes`` threads at once, each with one torch thread.

    With ``lanes == 1`` nothing changes: parts run one after the other in the
    calling thread, with torch's own thread count.

    >>> lanes = CpuLanes(2, name="doc")
    >>> found, _ = lanes.run(lambda chunk: [x * 10 for x in chunk], [1, 2, 3, 4, 5], part=2)
    >>> found
    [10, 20, 30, 40, 50]
    >>> lanes.shutdown()
    """

    def __init__(self, lanes: int, *, name: str = "cpu-lane") -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, not {lanes}")
        self.lanes = lanes
        self._helpers = (
            ThreadPoolExecutor(lanes - 1, thread_name_prefix=name) if lanes > 1 else None
        )
        self._set_up = threading.local()

    def run(
        self,
        detect: Detect,
        images: list,
        part: int,
        between: Callable[[], None] | None = None,
    ) -> tuple[list[np.ndarray], int]:
        """``detect`` over ``images``, ``part`` at a time (0: all at once), in order; and the
        nanoseconds the calling thread spent in ``between()``, which it calls before each
        of its parts but the first.

        A batch too small to give every lane a part of ``part`` frames is cut finer, so
        that a small batch (a stream well below capacity) still uses every lane.
        """
        step = part if part > 0 else max(1, len(images))
        if self.lanes > 1:
            step = max(1, min(step, -(-len(images) // self.lanes)))
        chunks = [images[i : i + step] for i in range(0, len(images), step)]
        found: list[list[np.ndarray] | None] = [None] * len(chunks)
        taken = iter(range(len(chunks)))
        lock = threading.Lock()
        failed = threading.Event()  # a part failed: the batch has, take no more parts

        def take() -> int | None:
            with lock:
                return None if failed.is_set() else next(taken, None)

        def work(k: int) -> None:
            try:
                detections = detect(chunks[k])
            except BaseException:
                failed.set()
                raise
            if len(detections) != len(chunks[k]):
                raise RuntimeError(f"{len(detections)} results for {len(chunks[k])} images")
            found[k] = detections

        def helper() -> None:
            self.claim_thread()
            while (k := take()) is not None:
                work(k)

        helpers: list[Future] = []
        if self._helpers is not None:
            self.claim_thread()
            n = min(self.lanes - 1, len(chunks) - 1)  # none for a batch of one part
            helpers = [self._helpers.submit(helper) for _ in range(n)]
        between_ns = 0
        first = True
        try:
            while (k := take()) is not None:
                if not first and between is not None:
                    pause = time.time_ns()
                    between()
                    between_ns += time.time_ns() - pause
                first = False
                work(k)
        finally:
            errors = [f.exception() for f in helpers]  # waits for every helper
        for error in errors:
            if error is not None:
                raise error
        return [d for chunk in found for d in chunk or ()], between_ns

    def shutdown(self) -> None:
        """Stop the helper threads (after the parts they run)."""
        if self._helpers is not None:
            self._helpers.shutdown(wait=True)

    def claim_thread(self) -> None:
        """With more than one lane, give the calling thread one torch thread (a no-op with one).

        torch's thread count is per thread under OpenMP, and a thread keeps the team
        it first ran with: the worker calls this in its device thread before the
        model is loaded, and each lane calls it before its first part.
        """
        if self.lanes == 1 or getattr(self._set_up, "done", False):
            return
        import torch

        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        self._set_up.done = True
