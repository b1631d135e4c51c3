"""The local stack: a real Kafka broker and a real Redis that the project runs itself.

``Stack.up()`` starts what is not running (twice is harmless), creates the
topics, and returns only when both services answer.  ``Stack.down()`` stops
them and leaves no process behind.  A service configured as external
(``SECMLOPS_KAFKA_BOOTSTRAP``, ``SECMLOPS_REDIS_URL``) is never started or
stopped, only health-checked.
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from streams.settings import Settings
from streams.stack.kafka import KafkaService
from streams.stack.process import StackError
from streams.stack.redis import RedisService

__all__ = ["ServiceStatus", "Stack", "StackError", "ephemeral_env", "free_ports"]


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that are free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def ephemeral_env(state_dir: Path) -> dict[str, str]:
    """``SECMLOPS_*`` variables for a private stack: its own folder and free ports.

    Tests and benchmarks run on such a stack, so they never touch one a user
    is running.
    """
    kafka, controller, redis, web = free_ports(4)
    return {
        "SECMLOPS_STATE_DIR": str(state_dir),
        "SECMLOPS_KAFKA_PORT": str(kafka),
        "SECMLOPS_KAFKA_CONTROLLER_PORT": str(controller),
        "SECMLOPS_REDIS_PORT": str(redis),
        "SECMLOPS_WORKER_WEB_PORT": str(web),
    }


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    managed: bool
    running: bool
    healthy: bool
    pid: int | None
    rss_bytes: int | None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class Stack:
    """Kafka and Redis together, in that order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kafka = KafkaService(settings)
        self.redis = RedisService(settings)

    def _services(self) -> list[tuple[KafkaService | RedisService, bool]]:
        s = self.settings
        return [(self.kafka, s.kafka_managed), (self.redis, s.redis_managed)]

    def up(self, *, progress: bool = True) -> dict[str, bool]:
        """Start the managed services and create the topics.

        Returns ``{service: started_now}``.  On failure the services started
        by this call are stopped again before the StackError propagates.
        """
        from streams.clients import ensure_topics

        started: dict[str, bool] = {}
        try:
            for service, managed in self._services():
                if managed:
                    # Marked before starting, so a half-started service is stopped too.
                    started[service.name] = service.proc.pid() is None
                    service.start(progress=progress)
                elif not service.healthy():
                    raise StackError(
                        f"{service.name}: the external service at {service.address} does not answer"
                    )
            ensure_topics(self.settings)
        except BaseException:
            for service, _ in self._services():
                if started.get(service.name):
                    service.stop()
            raise
        return started

    def down(self) -> dict[str, bool]:
        """Stop the managed services; returns ``{service: was_running}``."""
        stopped = {}
        for service, managed in reversed(self._services()):
            stopped[service.name] = service.stop() if managed else False
        return stopped

    def status(self) -> list[ServiceStatus]:
        """Each service's address, process and health."""
        result = []
        for service, managed in self._services():
            pid = service.proc.pid() if managed else None
            result.append(
                ServiceStatus(
                    name=service.name,
                    address=service.address,
                    managed=managed,
                    running=pid is not None if managed else False,
                    healthy=service.healthy() if (pid is not None or not managed) else False,
                    pid=pid,
                    rss_bytes=service.proc.rss_bytes() if managed else None,
                )
            )
        return result
