"""``secmlops worker --processes N``: one command, N workers in one group on one host."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.outcome_reader import OutcomeReader
from streams.topics import camera_per_partition
from streams.worker import WorkerProcess, group_members


def two_free_ports() -> int:
    """A port that is free, and so is the next one (one web port per worker process)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two consecutive free ports")


def start_pool(env: dict[str, str], log_path, count: int) -> tuple[subprocess.Popen, int]:
    port = two_free_ports()
    with log_path.open("wb") as log:
        parent = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--processes", str(count)],
            env={
                **os.environ,
                **env,
                "SECMLOPS_MONITORS": "none",
                "SECMLOPS_WORKER_WEB_PORT": str(port),
                "PYTHONUNBUFFERED": "1",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return parent, port


def child_pids(log_path, timeout_s: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = re.search(r"started \d+ worker processes \(pids ([\d, ]+);", log_path.read_text())
        if found:
            return [int(pid) for pid in found.group(1).split(", ")]
        time.sleep(0.2)
    raise AssertionError(f"no pids in the log:\n{log_path.read_text()}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_processes_share_the_cameras_and_all_drain_on_one_signal(
    stack, env, settings, keyring, tmp_path
):
    log = tmp_path / "pool.log"
    parent, port = start_pool(env, log, 2)
    cameras = camera_per_partition("pool")
    frames = [
        build_frame(c, s, pattern_frame(s, width=160, height=128))
        for s in range(3)
        for c in cameras
    ]
    try:
        pids = child_pids(log)
        deadline = time.monotonic() + 120
        while group_members(settings) != 2 and time.monotonic() < deadline:
            assert parent.poll() is None, log.read_text()
            time.sleep(0.5)
        with OutcomeReader(settings) as reader:
            with FrameSender(settings, keyring) as sender:
                for frame in frames:
                    sender.send(frame)
            outcomes = reader.wait({f.frame_id for f in frames}, timeout_s=90)
        # Each child serves its own web page, on the base port plus its index.
        for index in range(2):
            page = WorkerProcess(tmp_path / "unused.log", env={
                **env, "SECMLOPS_WORKER_WEB_PORT": str(port + index)})  # fmt: skip
            assert "event-loop" in page.thread_cpu()
    finally:
        parent.send_signal(signal.SIGTERM)
        code = parent.wait(timeout=150)
    assert outcomes.count == len(frames) and outcomes.duplicates == 0
    assert code == 0, log.read_text()
    assert not any(alive(pid) for pid in pids)


def test_when_one_process_dies_the_others_are_stopped_and_the_command_fails(env, stack, tmp_path):
    log = tmp_path / "pool.log"
    parent, _ = start_pool(env, log, 2)
    try:
        first, second = child_pids(log)
        os.kill(first, signal.SIGKILL)
        code = parent.wait(timeout=150)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert code == 9, log.read_text()  # the dead child's status, for a supervisor to see
    assert "exited with -9: stopping the others" in log.read_text()
    assert not alive(second)
