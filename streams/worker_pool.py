"""Several worker processes on one host: past what one Python interpreter can move.

Why: a worker's event loop and its detector's thread share one interpreter
(one GIL).  On an H200 host the bare SSDLite ran at 4,425 frames/s and one
worker with the detector alone at about 1,000, whether one batch was in flight
or two (docs/benchmarks.md, "On a GPU"): the card waited for the worker.  Kafka
already shares the camera partitions of ``pds.frames`` among the members of
the workers' consumer group, so the way past that ceiling is more members:
``secmlops worker --processes N`` runs ``N`` plain workers on the same host
(and card), each with its own web port (``SECMLOPS_WORKER_WEB_PORT`` plus its
index) and its own copy of the model.

The parent only supervises.  SIGINT or SIGTERM is passed on to every child
as SIGTERM, and each drains as a single worker does (:mod:`streams.drain`).
The children run in a process group of their own, so a Ctrl-C in a terminal
reaches them once, through the parent, not twice.  If a child exits on its
own, the parent stops the others and exits with that child's status: a
supervisor above it (systemd, Kubernetes) then sees one failure to restart,
not a group quietly running at part strength.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

from streams.settings import Settings

__all__ = ["check_processes", "run_processes"]


def _say(message: str) -> None:
    print(f"secmlops worker: {message}", file=sys.stderr, flush=True)


def check_processes(count: int, settings: Settings, partitions: int) -> None:
    """Refuse a process count that cannot work, with the reason.

    Raises
    ------
    ValueError
        Fewer than 1, more than ``partitions`` (the extra processes would get no
        frames), or web ports past 65535.
    """
    if not 1 <= count <= partitions:
        raise ValueError(
            f"--processes must be 1 to {partitions}: pds.frames has {partitions} partitions, "
            "and a worker process without one gets no frames"
        )
    if settings.worker_web_port + count - 1 > 65535:
        raise ValueError(
            f"SECMLOPS_WORKER_WEB_PORT={settings.worker_web_port} leaves no room for "
            f"{count} web ports (one per process, counting up)"
        )


def run_processes(count: int, loglevel: str, settings: Settings) -> int:
    """Run ``count`` worker processes until a signal or a child's exit; returns the exit
    status for the command line (0 after a clean stop)."""
    base = settings.worker_web_port
    children = [
        subprocess.Popen(  # noqa: S603 - this interpreter, our own command line
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", loglevel],
            env={
                **os.environ,
                "SECMLOPS_WORKER_PROCESSES": "1",
                "SECMLOPS_WORKER_WEB_PORT": str(base + index),
            },
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
        for index in range(count)
    ]
    pids = ", ".join(str(child.pid) for child in children)
    _say(f"started {count} worker processes (pids {pids}; web ports {base}-{base + count - 1})")
    stopping = False
    failed: int | None = None

    def stop_all(signum: int | None = None, _frame: FrameType | None = None) -> None:
        nonlocal stopping
        if signum is not None:
            _say(f"{signal.Signals(signum).name}: each worker process drains, then stops")
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop_all) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while any(child.poll() is None for child in children):
            for child in children:
                code = child.poll()
                if code is not None and not stopping:
                    _say(f"worker process {child.pid} exited with {code}: stopping the others")
                    failed = abs(code) or 1  # a child that stops by itself is a failure
                    stop_all()
            time.sleep(0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed is not None:
        return failed
    return max((abs(child.returncode or 0) for child in children), default=0)
