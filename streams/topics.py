"""Every Kafka topic the monitor uses: its name, partition count, schema and config.

This is the one place a topic name appears.  Topics that are joined per
camera (frames, predictions, signals and the outcomes) share one partition
count, so that a camera's events land on the same partition number
everywhere (Kafka's default partitioner hashes the key, the camera id).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.events import (
    MAX_EVENT_BYTES,
    Alert,
    Control,
    DeadLetter,
    Decision,
    Event,
    Frame,
    Prediction,
    Quarantine,
    Signals,
    Truth,
)

__all__ = ["CAMERA_PARTITIONS", "TOPICS", "TopicSpec", "by_name"]

# One partition per concurrently processed camera shard.  Changing it on a
# live cluster reshuffles cameras; do it with every agent stopped.
CAMERA_PARTITIONS = 4

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS


@dataclass(frozen=True)
class TopicSpec:
    """A topic: what it carries, how it is split, and how long it is kept."""

    name: str
    schema: type[Event]
    partitions: int
    retention_ms: int
    description: str
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, str]:
        """Topic-level broker configuration applied when the topic is created."""
        return {
            "retention.ms": str(self.retention_ms),
            "max.message.bytes": str(MAX_EVENT_BYTES + 48_576),
            **self.extra_config,
        }


@dataclass(frozen=True)
class Topics:
    """The topic catalogue; iterate it to create or describe all topics."""

    frames: TopicSpec
    truth: TopicSpec
    predictions: TopicSpec
    signals: TopicSpec
    trusted: TopicSpec
    quarantine: TopicSpec
    alerts: TopicSpec
    decisions: TopicSpec
    control: TopicSpec
    deadletter: TopicSpec

    def __iter__(self):  # noqa: ANN204 - a plain iterator over the specs
        return iter(vars(self).values())


TOPICS = Topics(
    frames=TopicSpec(
        "pds.frames", Frame, CAMERA_PARTITIONS, _HOUR_MS, "camera frames, keyed by camera id"
    ),
    truth=TopicSpec(
        "pds.truth", Truth, 1, 7 * _DAY_MS, "red-team ground truth; read by the scorer only"
    ),
    predictions=TopicSpec(
        "pds.predictions", Prediction, CAMERA_PARTITIONS, _DAY_MS, "detector output per frame"
    ),
    signals=TopicSpec(
        "pds.signals",
        Signals,
        CAMERA_PARTITIONS,
        _DAY_MS,
        "monitor scores per frame, a camera's batch a record",
    ),
    trusted=TopicSpec(
        "pds.trusted", Prediction, CAMERA_PARTITIONS, _DAY_MS, "predictions that passed the gate"
    ),
    quarantine=TopicSpec(
        "pds.quarantine", Quarantine, CAMERA_PARTITIONS, 7 * _DAY_MS, "held frames and evidence"
    ),
    alerts=TopicSpec("pds.alerts", Alert, 1, 30 * _DAY_MS, "alerts for humans"),
    decisions=TopicSpec("pds.decisions", Decision, 1, 365 * _DAY_MS, "audit log of decisions"),
    control=TopicSpec("pds.control", Control, 1, 365 * _DAY_MS, "commands broadcast to agents"),
    deadletter=TopicSpec(
        "pds.deadletter", DeadLetter, 1, 30 * _DAY_MS, "inputs that could not be processed"
    ),
)


def by_name(name: str) -> TopicSpec:
    """Look a topic up by its Kafka name; raises ``KeyError`` naming the known ones."""
    for spec in TOPICS:
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec in TOPICS)
    raise KeyError(f"unknown topic {name!r}; known topics: {known}")


def partition_of(camera_id: str, partitions: int = CAMERA_PARTITIONS) -> int:
    """The partition a camera's records go to: Kafka's default partitioner (murmur2 of the
    key, which is the camera id), as the frame sender and the agents use it."""
    from kafka.partitioner.default import murmur2

    return (murmur2(camera_id.encode()) & 0x7FFFFFFF) % partitions


def camera_per_partition(prefix: str, partitions: int = CAMERA_PARTITIONS) -> list[str]:
    """Camera ids ``prefix-N``, one landing on each partition, in partition order: a load
    spread evenly over the partitions, and so over the workers that share them.

    >>> [partition_of(c) for c in camera_per_partition("cam")]
    [0, 1, 2, 3]
    """
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        found.setdefault(partition_of(f"{prefix}-{n}", partitions), f"{prefix}-{n}")
        n += 1
    return [found[p] for p in range(partitions)]
