"""Where a worker's CPU goes, thread by thread: the event loop, the detector, each monitor.

Why: a worker is one process with many threads (faust's event loop, the
detector's one thread per device with its CPU lanes, or the model's own
intra-op threads, one thread per monitor, the gate's), and what limits it is
rarely the process as a whole.  On 2 cores the monitors cost throughput by taking cores from the
model's threads, not by their own work (docs/benchmarks.md, "Gate cost"); on a
GPU the question is whether the event loop, which moves every record, keeps
up with the card.  The worker serves these figures at ``/threads/`` on its
web port, and the benchmarks read them before and after a run.

Linux only (it reads ``/proc/self/task``); elsewhere the figures are empty.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "EVENT_LOOP",
    "UNNAMED",
    "CpuSampler",
    "cpu_per_frame",
    "process_cpu_seconds",
    "thread_cpu_seconds",
]

#: The group of the main thread, where faust's event loop runs.
EVENT_LOOP = "event-loop"
#: Threads Python did not start: torch's intra-op pool, native client threads.
UNNAMED = "native"

_TASKS = Path("/proc/self/task")
_POOL_SUFFIX = re.compile(r"_\d+$")  # ThreadPoolExecutor names its threads PREFIX_N


def _group(name: str) -> str:
    if name == "MainThread":
        return EVENT_LOOP
    return _POOL_SUFFIX.sub("", name)


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process's threads, by group: the
    event loop, each named thread or thread pool, and every unnamed thread together."""
    if not _TASKS.is_dir():
        return {}
    names = {t.native_id: _group(t.name) for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in _TASKS.iterdir():
        seconds = _stat_cpu_seconds(task / "stat")
        if seconds is None:  # the thread ended while we looked
            continue
        group = names.get(int(task.name), UNNAMED)
        out[group] = out.get(group, 0.0) + seconds
    return out


def _stat_cpu_seconds(stat_file: Path) -> float | None:
    """User + system CPU seconds from a ``/proc/.../stat`` file; None when it is gone."""
    try:
        stat = stat_file.read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def cpu_per_frame(before: dict[str, float], after: dict[str, float], frames: int) -> dict:
    """CPU ms per frame of each thread group between two readings of
    :func:`thread_cpu_seconds` (a worker's ``/threads/``), the groups folded into what a reader asks
    about: the event loop, the detector's thread, the threads Python did not start (torch's
    intra-op pool, mostly), the monitors' threads, the gate's, and the rest."""
    if not before or not after or frames <= 0:
        return {}
    named = {EVENT_LOOP: "event loop", UNNAMED: "unnamed (torch's)", "gate": "gate"}
    out: dict[str, float] = {}
    for group, seconds in after.items():
        name = named.get(group) or next(
            (label for prefix, label in _PREFIXES if group.startswith(prefix)), "other"
        )
        out[name] = out.get(name, 0.0) + (seconds - before.get(group, 0.0)) * 1000 / frames
    return out


_PREFIXES = [("detector-", "detector thread"), ("monitor-", "monitors")]


def process_cpu_seconds(pids: Mapping[str, int | None]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by whole processes, by name (e.g. the
    broker and Redis beside a benchmark's workers); a process that is gone is left out."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        seconds = _stat_cpu_seconds(Path(f"/proc/{pid}/stat")) if pid else None
        if seconds is not None:
            out[name] = seconds
    return out


class CpuSampler:
    """Reads the workers' ``/threads/`` every half second in a thread of its own, so that
    a benchmark can take their CPU over the same steady window as its rate (the ends left
    out).  ``extras`` are more readings of seconds so far taken at the same moments: the
    workers' device threads' busy time (``/device/``), the broker's CPU..."""

    def __init__(
        self,
        group: Any,
        every_s: float = 0.5,
        extras: Mapping[str, Callable[[], dict[str, float]]] | None = None,
    ) -> None:
        """``group``: anything with ``thread_cpu()`` (a ``WorkerProcess`` or ``WorkerGroup``).
        ``extras``: name to reader, e.g. ``{"device": group.device_busy}``, which
        :meth:`device_per_frame` reads."""
        self.group, self.every_s = group, every_s
        self.extras = dict(extras or {})
        # (wall ms, CPU reading, {extra: reading})
        self.samples: list[tuple[float, dict[str, float], dict[str, dict[str, float]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> CpuSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            reading = self.group.thread_cpu()
            if reading:
                at = time.time() * 1000  # the CPU reading's moment; extras come just after
                self.samples.append((at, reading, {n: _read(r) for n, r in self.extras.items()}))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def per_frame(
        self, stamps: list[int], since_ms: float | None = None, until_ms: float | None = None
    ) -> dict[str, float]:
        """CPU ms per frame between the readings nearest the 10th and the 90th percentile
        of the outcome times (wall-clock ms, e.g. broker timestamps), over the frames
        decided between; with ``since_ms``, from the reading before that moment (e.g. the
        first frame sent) to the one after the last outcome, or after ``until_ms`` when
        that is later (e.g. the last monitor signal), over every frame."""
        window = self._window(stamps, since_ms, until_ms)
        if window is None:
            return {}
        first, last, frames = window
        return cpu_per_frame(first[1], last[1], frames)

    def extra_per_frame(
        self, name: str, stamps: list[int], since_ms: float | None = None
    ) -> dict[str, float]:
        """The extra reading ``name``, in ms per frame by key, over the same window as
        :meth:`per_frame` (empty where it could not be read)."""
        window = self._window(stamps, since_ms)
        if window is None:
            return {}
        first, last, frames = window
        before, after = first[2].get(name) or {}, last[2].get(name) or {}
        if not before or not after:
            return {}
        return {key: (s - before.get(key, 0.0)) * 1000 / frames for key, s in after.items()}

    def device_per_frame(
        self, stamps: list[int], since_ms: float | None = None
    ) -> dict[str, float]:
        """Device threads' busy ms per frame by lane (``batches``, ``checks``), summed over
        devices and workers, over the same window as :meth:`per_frame`."""
        out: dict[str, float] = {}
        for key, ms in self.extra_per_frame("device", stamps, since_ms).items():
            lane = key.rpartition("/")[2]  # detector-cpu/checks -> checks
            out[lane] = out.get(lane, 0.0) + ms
        return out

    def _window(
        self, stamps: list[int], since_ms: float | None = None, until_ms: float | None = None
    ) -> tuple[Any, Any, int] | None:
        """The first and last readings of the window, and the frames decided between."""
        stamps = sorted(stamps)
        if len(self.samples) < 2 or len(stamps) < 10:
            return None
        lo, hi = stamps[len(stamps) // 10], stamps[len(stamps) * 9 // 10]
        if since_ms is not None:
            lo, hi = since_ms, max(stamps[-1], until_ms or stamps[-1])
        first = max((s for s in self.samples if s[0] <= lo), default=self.samples[0], key=_at)
        last = min((s for s in self.samples if s[0] >= hi), default=self.samples[-1], key=_at)
        if last[0] - first[0] < 2 * self.every_s * 1000:
            return None  # a burst shorter than two readings: nothing to measure it by
        frames = sum(first[0] < stamp <= last[0] for stamp in stamps)
        return (first, last, frames) if frames else None


def _at(sample: tuple[float, Any, Any]) -> float:
    return sample[0]


def _read(reader: Callable[[], dict[str, float]]) -> dict[str, float]:
    """An extra reading; one that fails is empty for this sample, not the sampler's end."""
    try:
        return reader()
    except Exception:
        return {}
