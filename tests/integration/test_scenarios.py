"""Red-team scenarios on the real stack: the replayer attacks, the worker's gate decides."""

from __future__ import annotations

import time
import uuid

from streams.calibration import CALIBRATION_REFRESH_S
from streams.events import Alert, Prediction, Quarantine, Truth
from streams.topics import TOPICS
from tests.integration.conftest import collect_from, secmlops

PGD = """
injections:
  - {type: pgd, frames: [1280, 1284], params: {eps: 8/255, steps: 10}}
"""
FOG = """
injections:
  - {type: fog, frames: [1040, null], params: {density: 0.7, ramp: 60}}
"""


def replay(env, tmp_path, schedule: str, cam: str, *args: str):
    path = tmp_path / "drill.yaml"
    path.write_text(schedule)
    done = secmlops(
        env,
        "replay",
        "asset:sample-drive",
        "--fast",
        "-q",
        "-c",
        cam,
        "--schedule",
        str(path),
        "--attack-device",
        "cpu",
        *args,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr


def outcomes(tails, cam: str, count: int) -> dict[int, object]:
    """Each frame's outcome by seq, from whichever outcome topic it landed on."""
    return {e.seq: e for e in collect_from(tails, lambda e: e.camera_id == cam, count, 300)}


def test_pgd_frames_are_quarantined_and_clean_ones_trusted(worker, env, tail, tmp_path):
    cam = f"pgd-{uuid.uuid4().hex[:8]}"
    tails = [tail(TOPICS.trusted.name), tail(TOPICS.quarantine.name)]
    truth_tail = tail(TOPICS.truth.name)
    replay(env, tmp_path, PGD, cam, "--start", "1260", "--end", "1300")
    truth = {t.seq: t for t in truth_tail.collect(lambda e: isinstance(e, Truth), 40, 30)}
    attacked = {seq for seq, t in truth.items() if t.injections == ["pgd"]}
    assert len(attacked) == 4

    found = outcomes(tails, cam, 40)
    assert sorted(found) == list(range(40)), "every frame has one outcome"
    for seq in attacked:
        assert isinstance(found[seq], Quarantine), f"attacked frame {seq} was trusted"
        assert any(r.startswith("adversarial.") for r in found[seq].reasons)
    clean = [found[s] for s in found if s not in attacked]
    false = [(e.seq, e.reasons) for e in clean if isinstance(e, Quarantine)]
    # 36 clean frames; together the monitors flag about 1 % of clean frames
    assert len(false) <= 2, false
    assert all(isinstance(e, Prediction) for e in clean if e.seq not in dict(false))


def test_a_fog_ramp_raises_a_drift_alert_without_a_quarantine_storm(worker, env, tail, tmp_path):
    cam = f"fog-{uuid.uuid4().hex[:8]}"
    tails = [tail(TOPICS.trusted.name), tail(TOPICS.quarantine.name)]
    alerts = tail(TOPICS.alerts.name)
    # As in a deployment: calibrate the camera on clean footage first (drift needs a baseline).
    calibrated = secmlops(
        env,
        "calibrate",
        "asset:sample-drive",
        "-c",
        cam,
        "--end",
        "600",
        "--resize",
        "320x180",
        "-q",
    )
    assert calibrated.returncode == 0, calibrated.stderr
    time.sleep(CALIBRATION_REFRESH_S + 1)  # the worker re-reads calibrations this often
    replay(env, tmp_path, FOG, cam, "--start", "900", "--end", "1200", "--resize", "320x180")
    found = outcomes(tails, cam, 300)
    assert len(found) == 300
    drift = alerts.collect(
        lambda e: isinstance(e, Alert) and e.camera_id == cam and e.source.startswith("drift"),
        1,
        60,
    )
    assert drift, "no drift alert for a fog ramp"
    held = [seq for seq, e in found.items() if isinstance(e, Quarantine)]
    assert len(held) <= 15, f"{len(held)} of 300 frames quarantined: a storm"
