"""The command line: helpful text, clear errors, non-zero exits on failure."""

from __future__ import annotations

import json

from click.testing import CliRunner

from streams.cli import cli
from streams.topics import TOPICS


def run(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("stack", "worker", "topics", "demo"):
        assert command in result.output


def test_topics_lists_every_topic_with_its_schema():
    result = run("topics")
    assert result.exit_code == 0
    for spec in TOPICS:
        assert spec.name in result.output
    assert "schema=frame/1" in result.output


def test_a_bad_setting_is_a_clear_error_with_exit_code_1():
    result = run("stack", "status", env={"SECMLOPS_KAFKA_PORT": "ninety"})
    assert result.exit_code == 1
    assert "SECMLOPS_KAFKA_PORT" in result.output


def test_status_of_unreachable_external_services_is_unhealthy_json_and_exit_1():
    env = {
        "SECMLOPS_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "SECMLOPS_REDIS_URL": "redis://127.0.0.1:2/0",
    }
    result = run("stack", "status", "--json", env=env)
    assert result.exit_code == 1
    status = json.loads(result.output)
    assert status["kafka"] == {
        "name": "kafka",
        "address": "127.0.0.1:1",
        "managed": False,
        "running": False,
        "healthy": False,
        "pid": None,
        "rss_bytes": None,
    }
    assert status["redis"]["healthy"] is False


def start_worker(env):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_worker_without_its_services_says_how_to_start_them(tmp_path):
    import os

    env = {
        **os.environ,
        "SECMLOPS_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "SECMLOPS_REDIS_URL": "redis://127.0.0.1:2/0",
        "SECMLOPS_KAFKA_CONNECT_TIMEOUT": "1",
        "SECMLOPS_STATE_DIR": str(tmp_path),
        "SECMLOPS_FRAME_KEY": "00" * 32,
        "SECMLOPS_MODEL_TRUSTED_KEYS": "11" * 32,
    }
    result = start_worker(env)
    assert result.returncode == 1
    assert "cannot reach Redis at redis://127.0.0.1:2/0" in result.stderr
    assert "secmlops stack up" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_without_frame_keys_refuses_to_start_and_says_why(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SECMLOPS_")}
    env["SECMLOPS_STATE_DIR"] = str(tmp_path)
    result = start_worker(env)
    assert result.returncode == 1
    assert "the worker cannot start" in result.stderr
    assert "SECMLOPS_FRAME_KEY" in result.stderr


def test_every_command_sets_the_allocator_up_first_unless_turned_off(monkeypatch):
    import streams.cli

    calls = []
    monkeypatch.setattr(streams.cli, "tune_allocator", calls.append)
    assert run("topics").exit_code == 0
    assert run("topics", env={"SECMLOPS_TUNE_MALLOC": "0"}).exit_code == 0
    assert calls == [True, False]


def test_monitors_lists_each_monitors_parameters_with_their_defaults():
    listed = json.loads(run("monitors", "--json", env={"SECMLOPS_MONITORS": "all"}).output)
    by_name = {entry["name"]: entry for entry in listed}
    squeeze = by_name["adversarial.squeeze"]
    assert squeeze["enabled"] and squeeze["consumes"] == "both"
    assert squeeze["params"]["budget"] == 0.025 and squeeze["params"]["burst"] == 8.0
    text = run("monitors").output
    assert "params (secmlops calibrate -p): bits=8, sigma=1.0" in text
