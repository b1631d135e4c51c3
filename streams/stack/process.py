"""Supervision of one background service process: start, find, stop, read its log.

A service's folder holds ``pid`` and ``service.log``.  The pid file also
records the process's start time (``/proc/<pid>/stat``, field 22), and a pid
is only trusted while a live process with that pid *and* that start time
exists: a pid reused by an unrelated program is never signalled.  (Command
lines are no proof of identity: Redis rewrites its own.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ManagedProcess", "StackError", "port_in_use"]


class StackError(RuntimeError):
    """A local service could not be started, checked or stopped; the message says why."""


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass(frozen=True)
class ManagedProcess:
    """A service process whose files live in ``workdir``."""

    name: str
    workdir: Path

    @property
    def pidfile(self) -> Path:
        return self.workdir / "pid"

    @property
    def logfile(self) -> Path:
        return self.workdir / "service.log"

    def pid(self) -> int | None:
        """The pid of our running process, or None (stale pid files are removed)."""
        try:
            pid_text, started = self.pidfile.read_text().split()
            pid = int(pid_text)
        except (FileNotFoundError, ValueError):
            return None
        if _start_time(pid) != started or not _alive(pid):
            self.pidfile.unlink(missing_ok=True)
            return None
        return pid

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``argv`` in its own session, output appended to the log file."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(  # noqa: S603 - argv is built by us, not a shell
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    env=env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise StackError(f"{self.name}: cannot run {argv[0]}: {exc}") from exc
        self.pidfile.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
        return proc

    def stop(self, timeout_s: float = 20.0) -> bool:
        """Stop the process (TERM, then KILL after ``timeout_s``); True if one was running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)
        self.pidfile.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of the service log, for error messages."""
        try:
            text = self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log yet)"
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def rss_bytes(self) -> int | None:
        """Resident memory of the running process, if any."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except FileNotFoundError:
            return None
        return None


def _start_time(pid: int) -> str:
    """When the process started, in clock ticks since boot ("" if there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if _is_zombie(pid):
        with contextlib.suppress(ChildProcessError):  # reap our own child, if it is one
            os.waitpid(pid, os.WNOHANG)
        return False
    return True
