"""Monitor agents on the real stack: a signal per frame per monitor; attacks alarm and alert."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import msgspec

from detectors.monitors.registry import available, load
from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.calibration import CalibrationStore
from streams.clients import redis_client
from streams.events import Alert, Signal, encode
from streams.topics import TOPICS
from tests.integration.conftest import secmlops


def test_every_monitor_signals_every_frame_it_sees_and_integrity_attacks_alarm(
    worker, settings, keyring, tail
):
    cam = f"mon-{uuid.uuid4().hex[:8]}"
    signals, alerts = tail(TOPICS.signals.name), tail(TOPICS.alerts.name)
    shared_before = worker.shared_frames()
    frames = [build_frame(cam, s, pattern_frame(s, width=160, height=128)) for s in range(30)]
    with FrameSender(settings, keyring) as sender:
        sent = [sender.send(f) for f in frames[:20]]
        unsigned = msgspec.structs.replace(frames[20], key_id="", signature=b"")
        sender.send_raw(cam.encode(), encode(unsigned))
        sender.send_raw(cam.encode(), encode(sent[5]))
        sent += [sender.send(f) for f in frames[21:]]
    monitors = {name: load(name) for name in available()}
    # per monitor: verified frames (29 + the replayed copy), the unsigned one for integrity
    expected = {
        name: 31 if name == "integrity" else 30
        for name, cls in monitors.items()
        if cls.consumes in ("frames", "predictions", "both")
    }
    found = signals.collect(
        lambda e: isinstance(e, Signal) and e.camera_id == cam, sum(expected.values()), 180
    )
    assert Counter(s.monitor for s in found) == expected
    integrity = {(s.frame_id, s.seq): s for s in found if s.monitor == "integrity"}
    assert integrity[(unsigned.frame_id, 20)].alarm
    assert integrity[(unsigned.frame_id, 20)].reason == "unsigned"
    replayed = [s for s in found if s.monitor == "integrity" and s.frame_id == sent[5].frame_id]
    assert sorted(s.reason for s in replayed) == ["", "replayed"]
    clean = [
        s
        for s in found
        if s.monitor == "integrity" and s.frame_id not in {unsigned.frame_id, sent[5].frame_id}
    ]
    assert not any(s.alarm for s in clean), [s.reason for s in clean if s.alarm]
    with_version = [s for s in found if monitors[s.monitor].consumes != "frames"]
    assert all(s.model_version == "1" for s in with_version)
    raised = alerts.collect(lambda e: isinstance(e, Alert) and e.camera_id == cam, 1, 30)
    assert any(a.source == "integrity" and a.severity == "critical" for a in raised)
    # The monitors that read frames shared them: 31 records (29 signed frames, the unsigned
    # one, the replayed copy) each checked once; the 29 signed frames each decoded once.
    readers = sum(cls.consumes in ("frames", "both") for cls in monitors.values())
    shared = {k: v - shared_before.get(k, 0) for k, v in worker.shared_frames().items()}
    assert shared["records_read"] >= 31 * readers
    assert shared["records_checked"] == 31
    assert shared["images_read"] == 30 * readers  # verified frames only: the replay reads too
    assert shared["images_decoded"] == 29


def test_calibrate_stores_per_camera_thresholds_for_the_serving_version(stack, env, settings):
    result = secmlops(
        env,
        "calibrate",
        "asset:sample-drive",
        "--camera",
        "front",
        "--end",
        "150",
        "--resize",
        "320x180",
        "--target-fpr",
        "0.05",
        "--param",
        "adversarial.energy.percentile=25",
        "--json",
        "-q",
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    thresholds = json.loads(result.stdout)
    frame_monitors = {n for n in available() if load(n).consumes == "frames"}
    assert frame_monitors <= set(thresholds)
    assert all(set(cams) == {"front"} for cams in thresholds.values())
    store = CalibrationStore(redis_client(settings), settings.model_name)
    saved = store.load("1")
    assert saved["integrity"]["front"]["threshold"] == 0.5
    assert store.meta("1")["frames"] == {"front": 150}
    assert (
        saved["adversarial.energy"]["front"]["threshold"]
        == thresholds["adversarial.energy"]["front"]
    )
    assert saved["adversarial.energy"]["front"]["params"]["percentile"] == 25, "set by --param"
    assert saved["adversarial.patch"]["front"]["params"]["block"] == 8, "the others: defaults"


def test_calibrate_refuses_an_unknown_parameter_before_reading_any_footage(stack, env):
    result = secmlops(
        env, "calibrate", "/nope/missing.mp4", "-p", "adversarial.energy.nope=1", check=False
    )
    assert result.returncode == 1
    assert "no parameter 'nope'" in result.stderr and "percentile" in result.stderr
    assert "missing.mp4" not in result.stderr, "the parameter is checked first"


def test_calibrate_explains_a_missing_source(stack, env):
    result = secmlops(env, "calibrate", "/nope/missing.mp4", check=False)
    assert result.returncode == 1
    assert "missing.mp4" in result.stderr
