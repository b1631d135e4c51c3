"""Start a faust worker process running every agent of the monitor."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from streams.settings import Settings

__all__ = [
    "WorkerGroup",
    "WorkerProcess",
    "free_port",
    "group_members",
    "preflight",
    "run_worker",
    "set_opencv_threads",
]


def set_opencv_threads(threads: int) -> None:
    """Give OpenCV ``threads`` threads in this process (0: its default, one per core).

    Why 1 in a worker: the cores belong to the model's one OpenMP team, and
    the monitors call OpenCV from threads of their own, on frames too small to
    share out.  With its pool (2 threads on 2 cores) the image monitors used
    1.5 to 2 times the CPU for the same work, the pool's threads waiting
    actively for more (docs/benchmark-log.md, "Gate cost").
    """
    import cv2

    cv2.setNumThreads(threads if threads > 0 else -1)  # OpenCV: a negative number, its default


def preflight(settings: Settings) -> str:
    """Check what the agents need before starting them; returns the version that will serve.

    Raises
    ------
    SigningKeyError
        No frame keys: frames could not be authenticated.
    ModelStoreError
        No trusted model keys, or no active, verifiable model version.
    MonitorLoadError
        ``SECMLOPS_MONITORS`` or ``SECMLOPS_GATE_REQUIRE`` names a monitor that is
        not registered or not usable.
    ValueError
        ``SECMLOPS_POLICY_FILE`` cannot be read or holds a rule that makes no sense.
    """
    from detectors.monitors.registry import select
    from model_store.registry import Registry
    from model_store.signing import Verifier
    from streams.clients import redis_client
    from streams.rollback import load_rules
    from streams.signing import Keyring

    Keyring.from_settings(settings)
    select(settings.monitors)
    select(settings.gate_require or settings.monitors)
    load_rules(settings.policy_file)
    registry = Registry(redis_client(settings), Verifier.from_settings(settings))
    version = registry.active(settings.model_name)
    if version is None:
        from model_store.errors import ModelStoreError

        raise ModelStoreError(
            f"no active version of model {settings.model_name!r}: run 'secmlops models setup' "
            "or 'secmlops models promote VERSION'"
        )
    registry.load(settings.model_name, version)  # verifies signature and weights
    return version


def run_worker(loglevel: str = "info") -> None:
    """Check prerequisites, create the topics if needed, then run the agents until interrupted.

    Blocks; on SIGINT/SIGTERM it takes no new frames, lets those in flight
    reach their outcome (:mod:`streams.drain`), then returns.
    """
    from streams.app import app, settings
    from streams.clients import ensure_topics

    preflight(settings)
    ensure_topics(settings)
    set_opencv_threads(settings.worker_opencv_threads)
    # Importing the agent modules registers their agents with the app.
    import streams.agents.detect
    import streams.agents.gate
    import streams.agents.monitor
    import streams.agents.policy
    from streams.drain import DrainingWorker, NoHold

    logging.getLogger("faust").setLevel(loglevel.upper())
    worker = DrainingWorker(
        app,
        hold=streams.agents.gate.GateHold() if settings.gate else NoHold(),
        on_drained=streams.agents.monitor.save_checkpoints,
        timeout_s=settings.worker_drain_timeout_s,
        loglevel=loglevel,
        quiet=True,
    )
    worker.execute_from_commandline()


def _drain_timeout(env: dict[str, str]) -> float:
    from streams.settings import Settings, SettingsError

    try:
        return Settings.from_env(env).worker_drain_timeout_s
    except SettingsError:  # the worker refused the same settings and is gone already
        return 0.0


class WorkerProcess:
    """A ``secmlops worker`` child process, for the demo and the integration tests.

    The child inherits the environment (plus ``env``), so it talks to the
    same Kafka and Redis as the caller.
    """

    def __init__(self, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "info"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        return self

    def wait_ready(self, settings: Settings, timeout_s: float = 90.0) -> None:
        """Block until the worker has processed a warm-up frame (group joined, model loaded).

        Raises
        ------
        RuntimeError
            With the tail of the worker's log, when it exits or times out first.
        """
        # A camera of its own: monitors keep (and save) state per camera, and a second
        # warm-up as the same camera would look replayed to them.
        camera = f"warm-up-{uuid.uuid4().hex[:12]}"
        if not _warm_up(settings, [camera], lambda: self.running, timeout_s):
            raise RuntimeError(f"the worker did not become ready:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float | None = None) -> int | None:
        """Ask the worker to finish (SIGTERM), then kill it after ``timeout_s``.

        The default waits out the worker's drain (``SECMLOPS_WORKER_DRAIN_TIMEOUT``)
        and 30 s more for faust's own stop.
        """
        if timeout_s is None:
            timeout_s = _drain_timeout(self.env) + 30.0
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def thread_cpu(self) -> dict[str, float]:
        """The worker's CPU seconds so far by thread group (its ``/threads/`` page; see
        :mod:`streams.threads`); empty when it cannot be read."""
        return self._numbers_page("/threads/")

    def device_busy(self) -> dict[str, float]:
        """Seconds its device threads have run each lane so far (its ``/device/`` page;
        ``detector-cpu/checks``...); empty when it cannot be read."""
        return self._numbers_page("/device/")

    def shared_frames(self) -> dict[str, float]:
        """How well its monitors share frames so far (its ``/frames/`` page: records read
        and checked, images read and decoded); empty when it cannot be read."""
        return self._numbers_page("/frames/")

    def _numbers_page(self, path: str) -> dict[str, float]:
        import json
        import urllib.request

        from streams.settings import Settings

        port = Settings.from_env(self.env).worker_web_port
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return {str(k): float(v) for k, v in json.load(r).items()}
        except (OSError, ValueError):
            return {}

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no worker log)"


class WorkerGroup:
    """Several ``secmlops worker`` processes in one consumer group, as a deployment scales
    out on one host (a GPU shared by several processes, say): Kafka shares the camera
    partitions among them, so at most ``CAMERA_PARTITIONS`` of them get frames.  Each has
    its own log (``worker-N.log`` in ``log_dir``) and web port.  For benchmarks and tests.
    """

    def __init__(self, size: int, log_dir: Path, env: dict[str, str] | None = None) -> None:
        from streams.topics import CAMERA_PARTITIONS

        if not 1 <= size <= CAMERA_PARTITIONS:
            raise ValueError(f"1 to {CAMERA_PARTITIONS} workers (one per partition at most)")
        self.workers = [
            WorkerProcess(
                log_dir / f"worker-{n}.log",
                env={**(env or {}), "SECMLOPS_WORKER_WEB_PORT": str(free_port())},
            )
            for n in range(size)
        ]

    def start(self) -> WorkerGroup:
        for worker in self.workers:
            worker.start()
        return self

    @property
    def running(self) -> bool:
        return all(worker.running for worker in self.workers)

    def wait_ready(self, settings: Settings, timeout_s: float = 180.0) -> None:
        """Block until every worker is in the group, the group is stable, and every
        partition's owner has processed a warm-up frame (its model is loaded).

        Raises
        ------
        RuntimeError
            With the tail of each worker's log, when one exits or time runs out first.
        """
        from streams.topics import camera_per_partition

        deadline = time.monotonic() + timeout_s
        while self.running and time.monotonic() < deadline:
            if group_members(settings) == len(self.workers):
                break
            time.sleep(0.5)
        cameras = camera_per_partition(f"warm-up-{uuid.uuid4().hex[:12]}")
        left = deadline - time.monotonic()
        if left <= 0 or not _warm_up(settings, cameras, lambda: self.running, left):
            raise RuntimeError(f"the workers did not become ready:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop them all at once (each drains, as :meth:`WorkerProcess.stop` says)."""
        for worker in self.workers:
            if worker.proc is not None and worker.running:
                worker.proc.send_signal(signal.SIGTERM)
        for worker in self.workers:
            worker.stop()

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds so far by thread group, summed over the workers."""
        return _summed(worker.thread_cpu() for worker in self.workers)

    def device_busy(self) -> dict[str, float]:
        """Device threads' busy seconds so far by lane, summed over the workers."""
        return _summed(worker.device_busy() for worker in self.workers)

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log_tail(lines)}" for w in self.workers)


def _summed(readings: Iterable[dict[str, float]]) -> dict[str, float]:
    """Seconds so far summed over the workers; empty if any worker's page could not be read
    (a sum without it would make the next difference of two readings wrong)."""
    total: dict[str, float] = {}
    for reading in readings:
        if not reading:
            return {}
        for key, seconds in reading.items():
            total[key] = total.get(key, 0.0) + seconds
    return total


def group_members(settings: Settings) -> int:
    """Members of the workers' consumer group once it is stable (0 while it rebalances)."""
    from kafka.errors import KafkaError

    from streams.clients import admin_client

    admin = admin_client(settings)
    try:
        group = admin.describe_groups([settings.app_id]).get(settings.app_id, {})
    except KafkaError:  # e.g. the group's coordinator is still loading
        return 0
    finally:
        admin.close()
    return len(group.get("members", ())) if group.get("group_state") == "Stable" else 0


def free_port() -> int:
    """A TCP port free on the loopback now (for a second worker's web server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _warm_up(
    settings: Settings, cameras: list[str], alive: Callable[[], bool], timeout_s: float
) -> bool:
    """Send one warm-up frame per camera; True once each has its outcome, False when
    ``alive()`` turns false or time runs out first."""
    from producers.frames import FrameSender, build_frame
    from producers.synthetic import pattern_frame
    from streams.outcome_reader import OutcomeReader
    from streams.signing import Keyring

    keyring = Keyring.from_settings(settings)
    with OutcomeReader(settings) as reader, FrameSender(settings, keyring) as sender:
        ids = set()
        for camera in cameras:
            frame = build_frame(camera, 0, pattern_frame(0, width=64, height=128))
            ids.add(sender.send(frame).frame_id)
        sender.flush()
        seen: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while alive() and time.monotonic() < deadline:
            outcomes = reader.wait(ids - seen, timeout_s=1.0)
            seen |= set(outcomes.predictions) | {d.frame_id for d in outcomes.dead_letters}
            if seen >= ids:
                return True
    return False
