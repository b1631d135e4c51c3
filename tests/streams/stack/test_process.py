"""Service supervision: a pid is trusted only while it is still our process."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from streams.stack.process import ManagedProcess, StackError, port_in_use


@pytest.fixture
def service(tmp_path):
    proc = ManagedProcess("sleeper", tmp_path / "sleeper")
    yield proc
    proc.stop(timeout_s=2)


def test_a_started_process_is_found_and_stopped(service):
    child = service.start(["sleep", "60"])
    assert service.pid() == child.pid
    assert service.stop(timeout_s=5) is True
    assert child.wait(timeout=5) is not None
    assert service.pid() is None
    assert not service.pidfile.exists()


def test_stop_when_nothing_runs_is_harmless(service):
    assert service.stop() is False


def test_a_process_that_ignores_sigterm_is_killed(service):
    child = service.start(["sh", "-c", "trap '' TERM; sleep 60"])
    time.sleep(0.2)
    assert service.stop(timeout_s=0.5) is True
    assert child.wait(timeout=5) is not None


def test_a_reused_pid_is_never_trusted(service, tmp_path):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        service.workdir.mkdir(parents=True)
        service.pidfile.write_text(f"{stranger.pid} 12345\n")  # same pid, another start time
        assert service.pid() is None
        assert service.stop() is False
        assert stranger.poll() is None  # still alive: we did not signal it
    finally:
        stranger.kill()
        stranger.wait()


def test_a_process_that_exits_leaves_no_trusted_pid(service):
    child = service.start(["true"])
    child.wait(timeout=5)
    assert service.pid() is None


def test_output_goes_to_the_log_and_its_tail_is_readable(service):
    child = service.start(["sh", "-c", "echo first; echo boom >&2"])
    child.wait(timeout=5)
    tail = service.log_tail()
    assert "boom" in tail
    assert "starting sleeper" in tail


def test_a_missing_program_is_a_clear_error(service):
    with pytest.raises(StackError, match="cannot run"):
        service.start(["/nonexistent/redis-server"])


def test_port_in_use_sees_a_listener():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)


def test_rss_is_reported_for_a_running_process(service):
    service.start(["sleep", "60"])
    assert service.rss_bytes() > 0
    assert os.path.exists(f"/proc/{service.pid()}")
