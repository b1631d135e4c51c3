"""Where a worker's CPU goes, thread by thread: the event loop, the detector, each monitor.

Why: a worker is one process with many threads (faust's event loop, the
detector's one thread per device and the model's own intra-op threads, one
thread per monitor, the gate's), and what limits it is rarely the process as
a whole.  On 2 cores the monitors cost throughput by taking cores from the
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
from pathlib import Path

__all__ = ["EVENT_LOOP", "UNNAMED", "thread_cpu_seconds"]

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
    tick = float(os.sysconf("SC_CLK_TCK"))
    out: dict[str, float] = {}
    for task in _TASKS.iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended while we looked
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # the name may contain spaces
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        group = names.get(int(task.name), UNNAMED)
        out[group] = out.get(group, 0.0) + seconds
    return out
