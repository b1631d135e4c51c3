"""The topic catalogue: one place for every topic name, schema and partition count."""

from __future__ import annotations

import pytest

from streams.events import Frame, Prediction
from streams.topics import (
    CAMERA_PARTITIONS,
    TOPICS,
    by_name,
    camera_per_partition,
    partition_of,
)

EXPECTED_NAMES = {
    "pds.frames",
    "pds.truth",
    "pds.predictions",
    "pds.signals",
    "pds.trusted",
    "pds.quarantine",
    "pds.alerts",
    "pds.decisions",
    "pds.control",
    "pds.deadletter",
}


def test_the_catalogue_has_exactly_the_documented_topics():
    assert {spec.name for spec in TOPICS} == EXPECTED_NAMES


def test_topics_joined_per_camera_are_co_partitioned():
    joined = [TOPICS.frames, TOPICS.predictions, TOPICS.signals, TOPICS.trusted, TOPICS.quarantine]
    assert {spec.partitions for spec in joined} == {CAMERA_PARTITIONS}


def test_each_topic_names_the_schema_it_carries():
    assert TOPICS.frames.schema is Frame
    assert TOPICS.trusted.schema is Prediction  # trusted = predictions that passed the gate


def test_topic_config_allows_the_largest_event():
    from streams.events import MAX_EVENT_BYTES

    for spec in TOPICS:
        assert int(spec.config["max.message.bytes"]) > MAX_EVENT_BYTES
        assert int(spec.config["retention.ms"]) >= 3_600_000


def test_by_name_finds_a_topic_and_names_the_known_ones_otherwise():
    assert by_name("pds.alerts") is TOPICS.alerts
    with pytest.raises(KeyError, match=r"pds\.frames"):
        by_name("pds.nope")


def test_a_cameras_partition_is_the_one_kafkas_default_partitioners_pick():
    """The frame sender partitions with kafka-python, the agents' producer with aiokafka."""
    from aiokafka.partitioner import DefaultPartitioner as AioPartitioner
    from kafka.partitioner import DefaultPartitioner

    partitions = list(range(CAMERA_PARTITIONS))

    class Cluster:  # what kafka-python's partitioner asks of its cluster metadata
        def topics(self):
            return {"t"}

        def partitions_for_topic(self, topic):
            return set(partitions)

        available_partitions_for_topic = partitions_for_topic

    for n in range(200):
        key = f"cam-{n}".encode()
        sender = DefaultPartitioner().partition("t", None, key, None, None, Cluster())
        agents = AioPartitioner()(key, partitions, partitions)
        assert partition_of(f"cam-{n}") == sender == agents
    assert [partition_of(c) for c in camera_per_partition("x")] == partitions
