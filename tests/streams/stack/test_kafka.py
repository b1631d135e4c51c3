"""The generated broker configuration follows the settings."""

from __future__ import annotations

from pathlib import Path

from streams.settings import Settings
from streams.stack.kafka import server_properties


def parse(text):
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_ports_and_data_folder_come_from_the_settings():
    s = Settings.from_env(
        {"SECMLOPS_KAFKA_PORT": "29092", "SECMLOPS_KAFKA_CONTROLLER_PORT": "29093"}
    )
    props = parse(server_properties(s, Path("/data/kafka")))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:29093"
    assert props["log.dirs"] == "/data/kafka"


def test_single_node_kraft_with_topics_created_explicitly():
    props = parse(server_properties(Settings.from_env({}), Path("/d")))
    assert props["process.roles"] == "broker,controller"
    assert props["auto.create.topics.enable"] == "false"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
