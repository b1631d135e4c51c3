"""Replaying the real drive through the real broker: signed, complete, in order, as drilled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import cv2
import numpy as np
import pytest

from producers.sources import open_source
from streams.settings import Settings
from streams.signing import Keyring, generate_key
from streams.topics import TOPICS
from tests.integration.conftest import secmlops

KEY = generate_key()


def replay(env, *args, timeout=300):
    return secmlops(
        {**env, "SECMLOPS_FRAME_KEY": KEY}, "replay", *args, check=False, timeout=timeout
    )


def keyring():
    return Keyring.from_settings(Settings.from_env({"SECMLOPS_FRAME_KEY": KEY}))


def camera():
    return f"drive-{uuid.uuid4().hex[:6]}"


def test_the_first_300_frames_arrive_valid_signed_and_in_order(stack, env, tail):
    cam = camera()
    frames_tail = tail(TOPICS.frames.name)
    done = replay(env, "asset:sample-drive", "--fast", "-n", "300", "-c", cam, "-q", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sent"] == 300
    assert summary["ok"] is True
    frames = frames_tail.collect(lambda e: e.camera_id == cam, 300)
    assert len(frames) == 300
    assert [f.seq for f in frames] == list(range(300))
    keys = keyring()
    assert {keys.verify(f) for f in frames} == {"ok"}
    stamps = [f.capture_ts_ns for f in frames]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == 300
    assert {(f.width, f.height, f.encoding) for f in frames} == {(640, 360, "jpeg")}


SCHEDULE = """
injections:
  - {type: pgd, frames: [20, 23], params: {eps: 8/255, steps: 5}}
  - {type: fog, frames: [30, null], params: {density: 0.6, ramp: 10}}
  - {type: drop, frames: [5, 7]}
  - {type: unsigned, frames: [8, 9]}
"""


def test_a_schedule_yields_the_right_truth_and_perturbations_within_eps(
    stack, env, tail, tmp_path, sample_drive
):
    cam = camera()
    schedule = tmp_path / "drill.yaml"
    schedule.write_text(SCHEDULE)
    truth_tail, frames_tail = tail(TOPICS.truth.name), tail(TOPICS.frames.name)
    args = ["asset:sample-drive", "--fast", "-n", "40", "-c", cam, "-q", "--encoding", "png"]
    done = replay(env, *args, "--schedule", str(schedule), "--attack-device", "cpu")
    assert done.returncode == 0, done.stderr

    truth = {t.seq: t for t in truth_tail.collect(lambda e: e.camera_id == cam, 40)}
    assert sorted(truth) == list(range(40))
    assert [s for s, t in truth.items() if not t.delivered] == [5, 6]
    assert truth[8].injections == ["unsigned"]
    assert [s for s, t in truth.items() if "pgd" in t.injections] == [20, 21, 22]
    assert all("fog" in truth[s].injections for s in range(30, 40))
    assert truth[30].params["fog.strength"] == pytest.approx(0.1)
    assert truth[0].injections == []

    frames = {f.seq: f for f in frames_tail.collect(lambda e: e.camera_id == cam, 38)}
    assert sorted(frames) == [s for s in range(40) if s not in (5, 6)]
    assert keyring().verify(frames[8]) == "unsigned"
    clean = {f.number: f.image for f in open_source(sample_drive, cam, end=40).frames()}
    for seq in (20, 21, 22):
        got = cv2.imdecode(np.frombuffer(frames[seq].image, np.uint8), cv2.IMREAD_COLOR)
        delta = np.abs(got.astype(int) - clean[seq].astype(int))
        assert delta.max() <= 8, f"frame {seq}: L-inf {delta.max()} > 8/255"
        assert delta.max() > 0, f"frame {seq} was not perturbed"
        assert truth[seq].params["pgd.loss_after"] < truth[seq].params["pgd.loss_before"]
    untouched = cv2.imdecode(np.frombuffer(frames[19].image, np.uint8), cv2.IMREAD_COLOR)
    assert (untouched == clean[19]).all()  # png is lossless: clean frames are bit-exact


def test_ctrl_c_flushes_what_was_read_and_exits_130(stack, env, tail):
    cam = camera()
    frames_tail = tail(TOPICS.frames.name)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams.cli",
            "replay",
            "asset:sample-drive",
            "--loop",
            "-c",
            cam,
            "-q",
            "--json",
        ],
        env={**os.environ, **env, "SECMLOPS_FRAME_KEY": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(6)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] is True
    assert summary["sent"] > 10
    assert "were sent and flushed" in err
    frames = frames_tail.collect(lambda e: e.camera_id == cam, summary["sent"], timeout_s=30)
    assert len(frames) == summary["sent"]


def test_attacks_can_target_a_registered_model_version(stack, env, tail):
    from model_store.registry import Registry
    from model_store.signing import Verifier
    from streams.clients import redis_client

    settings = Settings.from_env({**os.environ, **env})
    registry = Registry(redis_client(settings), Verifier.from_settings(settings))
    hog = next(
        v.version for v in registry.versions(settings.model_name) if v.architecture == "hog-torch"
    )
    cam = camera()
    truth_tail = tail(TOPICS.truth.name)
    args = ["asset:sample-drive", "--fast", "-n", "3", "-c", cam, "-q", "--attack-device", "cpu"]
    done = replay(env, *args, "--inject", "fgsm@1-2", "--attack-model", hog)
    assert done.returncode == 0, done.stderr
    truth = {t.seq: t for t in truth_tail.collect(lambda e: e.camera_id == cam, 3)}
    assert truth[1].injections == ["fgsm"]
    assert truth[1].params["fgsm.loss_after"] < truth[1].params["fgsm.loss_before"]


def test_a_model_version_that_cannot_be_attacked_is_refused_before_sending(env):
    done = replay(
        env,
        "asset:sample-drive",
        "--fast",
        "-n",
        "1",
        "--inject",
        "pgd@0-1",
        "--attack-model",
        "999",
    )
    assert done.returncode == 1
    assert "no version '999'" in done.stderr


def test_a_degrade_drill_promotes_a_signed_blinded_version_at_its_first_frame(
    stack, env, settings, tail
):
    from model_store.registry import Registry
    from model_store.signing import Verifier
    from streams.clients import redis_client
    from streams.events import Control, Truth

    registry = Registry(redis_client(settings), Verifier.from_settings(settings))
    good = registry.active(settings.model_name)
    control, truth = tail(TOPICS.control.name), tail(TOPICS.truth.name)
    try:
        run = replay(env, "asset:sample-drive", "--end", "12", "--fast", "--inject", "degrade@5-")
        assert run.returncode == 0, run.stderr[-2000:]
        bad = registry.active(settings.model_name)
        assert bad != good
        manifest = registry.load(settings.model_name, bad).manifest
        assert manifest["red_team"]["mode"] == "blind" and manifest["red_team"]["strength"] == 2
        announced = control.collect(lambda e: isinstance(e, Control), 1)
        assert (announced[0].command, announced[0].version) == ("promote", bad)
        records = truth.collect(lambda e: isinstance(e, Truth), 12)
        assert [r.injections for r in records[4:6]] == [[], ["degrade"]]
    finally:
        secmlops(env, "models", "promote", good, "--reason", "test: restore")
