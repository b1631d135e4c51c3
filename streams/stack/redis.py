"""A managed Redis server (Debian's ``redis-server``) for the model registry and quarantine index.

It runs on its own port and data folder, never the system Redis, with the
append-only file on so that the registry survives a restart.
"""

from __future__ import annotations

import os
import shutil
import time

import redis as redis_py

from streams.settings import Settings
from streams.stack.process import ManagedProcess, StackError, port_in_use

__all__ = ["RedisService", "find_redis_server"]


def find_redis_server() -> str:
    """Path of ``redis-server``, or a StackError saying how to install it."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/usr/sbin"])
    path = shutil.which("redis-server", path=search)
    if path is None:
        raise StackError(
            "redis: 'redis-server' is not installed. Install it with "
            "'apt-get install redis-server' (make does this when run as root), "
            "or use your own Redis by setting SECMLOPS_REDIS_URL."
        )
    return path


class RedisService:
    """The managed Redis: ``start`` is idempotent, ``stop`` leaves no process."""

    name = "redis"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.proc = ManagedProcess("redis", settings.state_dir / "redis")

    @property
    def address(self) -> str:
        return self.settings.redis_url

    def config(self) -> str:
        """redis.conf for the managed server: loopback only, AOF on, our folder."""
        work = self.proc.workdir
        lines = [
            "bind 127.0.0.1",
            f"port {self.settings.redis_port}",
            "protected-mode yes",
            f"dir {work}",
            "daemonize no",
            "appendonly yes",
            "appendfsync everysec",
            "save 3600 1 300 100",
            "logfile ''",
            "databases 16",
        ]
        if self.settings.redis_password:
            lines.append(f"requirepass {self.settings.redis_password}")
        return "\n".join(lines) + "\n"

    def start(self, *, progress: bool = True) -> bool:
        """Start Redis if it is not running; True when it was started now."""
        if self.proc.pid() is not None:
            self._wait_ready()
            return False
        if port_in_use("127.0.0.1", self.settings.redis_port):
            raise StackError(
                f"redis: port 127.0.0.1:{self.settings.redis_port} is taken by another program; "
                "stop it or choose another port with SECMLOPS_REDIS_PORT"
            )
        server = find_redis_server()
        self.proc.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.proc.workdir / "redis.conf"
        conf.write_text(self.config())
        conf.chmod(0o600)  # it may hold the password
        self.proc.start([server, str(conf)])
        self._wait_ready()
        return True

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.settings.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.pid() is None:
                raise StackError(
                    f"redis: the server exited during startup. Log tail:\n{self.proc.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.1)
        raise StackError(f"redis: not answering PING. Log tail:\n{self.proc.log_tail()}")

    def healthy(self) -> bool:
        """True when the server answers PING."""
        from streams.clients import redis_client

        client = redis_client(self.settings, timeout_s=2.0)
        try:
            return bool(client.ping())
        except (redis_py.RedisError, OSError):
            return False
        finally:
            client.close()

    def stop(self) -> bool:
        return self.proc.stop(timeout_s=20.0)
