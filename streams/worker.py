"""Start a faust worker process running every agent of the monitor."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from streams.settings import Settings

__all__ = ["WorkerProcess", "preflight", "run_worker"]


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
        from producers.frames import FrameSender, build_frame
        from producers.synthetic import pattern_frame
        from streams.outcome_reader import OutcomeReader
        from streams.signing import Keyring

        keyring = Keyring.from_settings(settings)
        with OutcomeReader(settings) as reader, FrameSender(settings, keyring) as sender:
            # A camera of its own: monitors keep (and save) state per camera, and a second
            # warm-up as the same camera would look replayed to them.
            camera = f"warm-up-{uuid.uuid4().hex[:12]}"
            frame = build_frame(camera, 0, pattern_frame(0, width=64, height=128))
            sender.send(frame)
            sender.flush()
            deadline = time.monotonic() + timeout_s
            while self.running and time.monotonic() < deadline:
                if reader.wait({frame.frame_id}, timeout_s=1.0).count:
                    return
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

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no worker log)"
