"""Kafka and Redis clients built from :class:`~streams.settings.Settings`.

All connection details, TLS/SASL included, are applied here and nowhere
else, so that the CLI, producers, tests and the worker talk to the same
cluster in the same way.
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import TopicAlreadyExistsError

from streams.settings import Settings
from streams.topics import TOPICS, TopicSpec

__all__ = [
    "admin_client",
    "consumer",
    "ensure_topics",
    "kafka_config",
    "producer",
    "redis_client",
]


def kafka_config(settings: Settings) -> dict[str, Any]:
    """kafka-python connection options, including security pass-through."""
    sec = settings.kafka_security
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "security_protocol": sec.protocol,
        "bootstrap_timeout_ms": int(settings.kafka_connect_timeout_s * 1000),
    }
    if sec.sasl_mechanism:
        config["sasl_mechanism"] = sec.sasl_mechanism
        config["sasl_plain_username"] = sec.sasl_username
        config["sasl_plain_password"] = sec.sasl_password
    for option in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(sec, option)
        if value:
            config[option] = value
    return config


def admin_client(settings: Settings, timeout_s: float = 10.0) -> KafkaAdminClient:
    """An admin client; raises ``kafka.errors.NoBrokersAvailable`` if unreachable."""
    options = {
        **kafka_config(settings),
        "request_timeout_ms": int(timeout_s * 1000),
        "bootstrap_timeout_ms": int(min(timeout_s, settings.kafka_connect_timeout_s) * 1000),
        "client_id": "secmlops-admin",
    }
    return KafkaAdminClient(**options)


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """An idempotent, acks=all producer (no duplicates on retry, no silent loss).

    Batches are 512 KiB: a frame is about 40 KB, so kafka-python's default
    16 KiB batch held no frame at all and sent each in its own request, which
    halved replay throughput on a 2-core machine (docs/benchmarks.md).
    """
    options: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 524_288,
        "max_request_size": 1_048_576,
        "client_id": "secmlops-producer",
    }
    options.update(overrides)
    return KafkaProducer(**kafka_config(settings), **options)


def consumer(settings: Settings, *topics: str, **overrides: Any) -> KafkaConsumer:
    """A consumer reading from the earliest offset; pass ``group_id`` to commit."""
    options: dict[str, Any] = {
        "auto_offset_reset": "earliest",
        "enable_auto_commit": False,
        "client_id": "secmlops-consumer",
    }
    options.update(overrides)
    return KafkaConsumer(*topics, **kafka_config(settings), **options)


def tail(settings: Settings, *specs: TopicSpec, client_id: str) -> KafkaConsumer:
    """A consumer of every partition of ``specs``, positioned at their current ends.

    For readers that want only what happens from now on (outcomes of frames
    about to be sent, live alerts); the ends are resolved before returning,
    so nothing produced after this call is missed.
    """
    from kafka import TopicPartition

    kafka = consumer(settings, client_id=client_id)
    parts = [
        TopicPartition(spec.name, p)
        for spec in specs
        for p in sorted(kafka.partitions_for_topic(spec.name) or ())
    ]
    kafka.assign(parts)
    kafka.seek_to_end(*parts)
    for tp in parts:
        kafka.position(tp)
    return kafka


def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> list[str]:
    """Create any missing topic with its partition count and config.

    Idempotent: existing topics are left as they are.  Returns the names of
    the topics created now.
    """
    specs = list(TOPICS) if specs is None else specs
    client = admin_client(settings)
    try:
        existing = set(client.list_topics())
        missing = {
            spec.name: {
                "num_partitions": spec.partitions,
                "replication_factor": -1,  # the broker's default.replication.factor
                "configs": spec.config,
            }
            for spec in specs
            if spec.name not in existing
        }
        if missing:
            # Another process may create them between list and create.
            with contextlib.suppress(TopicAlreadyExistsError):
                client.create_topics(missing, timeout_ms=30_000, wait_for_metadata=True)
        return sorted(missing)
    finally:
        client.close()


def redis_client(settings: Settings, timeout_s: float = 5.0) -> redis.Redis:
    """A Redis client for the configured URL (``rediss://`` enables TLS)."""
    return redis.Redis.from_url(
        settings.redis_url,
        password=settings.redis_password,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
