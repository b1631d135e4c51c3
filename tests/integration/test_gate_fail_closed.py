"""A required monitor that is not running: the gate fails closed and says why, loudly."""

from __future__ import annotations

import uuid

import pytest

from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.events import Alert, Quarantine
from streams.topics import TOPICS
from streams.worker import WorkerProcess
from tests.integration.conftest import TopicTail

STOPPED = "adversarial.patch"


@pytest.fixture(scope="module")
def worker(stack, env, tmp_path_factory):
    """A worker whose gate requires every monitor while one of them does not run."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = WorkerProcess(
        log,
        env={
            **env,
            "SECMLOPS_WORKER_BATCH_WAIT": "0.02",
            "SECMLOPS_MONITORS": f"all,-{STOPPED}",
            "SECMLOPS_GATE_REQUIRE": "all",
            "SECMLOPS_GATE_DEADLINE": "1.0",
        },
    ).start()
    try:
        process.wait_ready(stack.settings)
        yield process
    finally:
        process.stop()


def test_frames_the_stopped_monitor_cannot_vouch_for_are_quarantined_with_an_alert(
    worker, settings, keyring, tail
):
    cam = f"stop-{uuid.uuid4().hex[:8]}"
    held, trusted = tail(TOPICS.quarantine.name), tail(TOPICS.trusted.name)
    with FrameSender(settings, keyring) as sender:
        for seq in range(10):
            sender.send(build_frame(cam, seq, pattern_frame(seq, width=160, height=128)))
    found = held.collect(lambda e: isinstance(e, Quarantine) and e.camera_id == cam, 10, 90)
    assert sorted(q.seq for q in found) == list(range(10))
    assert all(f"missing/{STOPPED}" in q.reasons for q in found)
    assert trusted.collect(lambda e: e.camera_id == cam, 1, 2) == []
    # One alert per silence, not per frame: it came with the first frame the gate
    # decided without the monitor (the worker's warm-up frame), so read from the start.
    alerts = TopicTail(settings, TOPICS.alerts.name, from_start=True)
    [alert] = alerts.collect(
        lambda e: isinstance(e, Alert) and e.source == "gate" and STOPPED in e.message, 1, 30
    )
    alerts.close()
    assert alert.severity == "critical"
    assert STOPPED in alert.message and "is it running?" in alert.message


def test_the_alerts_command_lists_the_silence_alert_as_json(worker, env):
    import json

    from tests.integration.conftest import secmlops

    listed = secmlops(env, "alerts", "--since", "30m", "--severity", "critical", "--json")
    alerts = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    assert any(a["source"] == "gate" and STOPPED in a["message"] for a in alerts)
    plain = secmlops(env, "alerts", "--since", "30m", "--camera", "no-such-camera").stdout
    assert "no alerts for these filters" in plain
    bad = secmlops(env, "alerts", "--since", "yesterday", check=False)
    assert bad.returncode == 2 and "neither an age" in bad.stderr
