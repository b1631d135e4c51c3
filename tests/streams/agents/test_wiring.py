"""Agent wiring: which topics the worker reads."""

from __future__ import annotations

from streams.topics import TOPICS


def test_no_agent_reads_the_ground_truth_topic():
    import streams.agents.detect  # noqa: F401 - registers the agents
    from streams.app import app

    read = {topic for agent in app.agents.values() for topic in agent.channel.topics}
    assert TOPICS.frames.name in read
    assert TOPICS.truth.name not in read
