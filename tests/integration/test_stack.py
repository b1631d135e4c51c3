"""The local stack on the real services: up, status, down, and clear failures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from streams.clients import admin_client, redis_client
from streams.settings import Settings
from streams.stack import Stack, StackError, ephemeral_env
from streams.topics import TOPICS
from tests.integration.conftest import secmlops


def alive(pid: int) -> bool:
    """True for a live process; an exited one waiting for init to reap it does not count."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_status_json_shows_both_services_healthy(stack, env):
    status = json.loads(secmlops(env, "stack", "status", "--json").stdout)
    assert status["kafka"]["healthy"] is True
    assert status["redis"]["healthy"] is True
    assert status["kafka"]["address"] == stack.settings.kafka_bootstrap
    assert status["redis"]["address"] == stack.settings.redis_url


def test_up_twice_is_harmless(stack):
    pids = [s.pid for s in stack.status()]
    assert Stack(stack.settings).up(progress=False) == {"kafka": False, "redis": False}
    assert [s.pid for s in stack.status()] == pids


def test_every_topic_exists_with_its_partition_count(stack):
    client = admin_client(stack.settings)
    try:
        described = {t["name"]: t for t in client.describe_topics([s.name for s in TOPICS])}
    finally:
        client.close()
    for spec in TOPICS:
        assert len(described[spec.name]["partitions"]) == spec.partitions, spec.name


def test_a_taken_port_is_a_clear_error(stack, tmp_path):
    clash = Settings.from_env(
        {**ephemeral_env(tmp_path / "other"), "SECMLOPS_KAFKA_PORT": str(stack.settings.kafka_port)}
    )
    with pytest.raises(StackError, match=f"port 127.0.0.1:{stack.settings.kafka_port} is taken"):
        Stack(clash).up(progress=False)
    assert all(s.pid is None for s in Stack(clash).status())


def test_redis_keeps_its_data_across_a_restart(stack):
    client = redis_client(stack.settings)
    client.set("secmlops:test:persist", b"kept")
    client.close()
    stack.redis.stop()
    assert not stack.redis.healthy()
    stack.redis.start()
    client = redis_client(stack.settings)
    assert client.get("secmlops:test:persist") == b"kept"
    client.close()


def test_a_broker_that_cannot_start_is_reported_with_its_log(tmp_path):
    env = {**ephemeral_env(tmp_path), "SECMLOPS_KAFKA_HEAP": "lots"}
    with pytest.raises(StackError, match="exited during startup") as err:
        Stack(Settings.from_env({**os.environ, **env})).up(progress=False)
    assert "heap" in str(err.value).lower()


def test_up_status_down_from_the_command_line_leaves_nothing_running(tmp_path):
    env = ephemeral_env(tmp_path)
    up = secmlops(env, "stack", "up", "--quiet")
    assert "kafka: started" in up.stdout
    status = json.loads(secmlops(env, "stack", "status", "--json").stdout)
    pids = [status["kafka"]["pid"], status["redis"]["pid"]]
    assert all(status[name]["healthy"] for name in ("kafka", "redis"))
    assert status["kafka"]["rss_bytes"] > 50 * 2**20

    down = secmlops(env, "stack", "down")
    assert "kafka: stopped" in down.stdout
    assert "redis: stopped" in down.stdout
    assert not any(alive(pid) for pid in pids)
    after = secmlops(env, "stack", "status", "--json", check=False)
    assert after.returncode == 1
    assert not any(s["running"] for s in json.loads(after.stdout).values())
