"""The rollback policy on the real stack: a degraded model promoted mid-drive is taken out."""

from __future__ import annotations

import threading
import time
import uuid

from model_store.registry import Registry
from model_store.signing import Verifier
from producers.frames import FrameSender, build_frame
from producers.sources import open_source
from streams.assets import ASSETS, fetch_asset
from streams.clients import redis_client
from streams.events import Alert, Decision, Prediction
from streams.topics import TOPICS
from tests.integration.conftest import secmlops

DRIVE_FPS = 30  # media time: the drive's own clock
PACE_FPS = 8  # sent slower than recorded, so that 2 CPU cores keep up with HOG at 640x360
START, FRAMES = 1200, 300  # a stretch with pedestrians: 10 s of the drive
PROMOTE_AT = 90  # frames into it (model health needs 60 of the good model as a baseline)
# ...predicted by the good model, not just sent: on a machine slower than the pace the
# worker falls behind, and a promotion timed by the sender left health no baseline.


def test_a_degraded_model_promoted_mid_drive_is_rolled_back_within_5_s_of_media_time(
    worker, settings, keyring, tail, env
):
    cam = f"drive-{uuid.uuid4().hex[:8]}"
    registry = Registry(redis_client(settings), Verifier.from_settings(settings))
    good = registry.active(settings.model_name)
    predictions, decisions = tail(TOPICS.predictions.name), tail(TOPICS.decisions.name)
    alerts, progress = tail(TOPICS.alerts.name), tail(TOPICS.predictions.name)
    drive = fetch_asset(ASSETS["sample-drive"], settings.cache_dir, quiet=True)
    images = [f.image for f in open_source(drive, cam, start=START, end=START + FRAMES).frames()]

    sent_ids: list[str] = []

    def replay() -> None:  # paced, stamped with the wall clock
        start = time.monotonic()
        with FrameSender(settings, keyring) as sender:
            for seq, image in enumerate(images):
                time.sleep(max(0.0, start + seq / PACE_FPS - time.monotonic()))
                sent_ids.append(sender.send(build_frame(cam, seq, image)).frame_id)

    player = threading.Thread(target=replay)
    player.start()
    good_ones = progress.collect(
        lambda e: isinstance(e, Prediction) and e.camera_id == cam, PROMOTE_AT, 180
    )
    assert len(good_ones) >= PROMOTE_AT
    drill = secmlops(env, "models", "degrade", "--promote", "--strength", "3")
    player.join(180)
    bad = drill.stdout.split()[2]  # "<model> version <N> registered: ..."
    assert bad != good, drill.stdout

    found = predictions.collect(
        lambda e: isinstance(e, Prediction) and e.camera_id == cam, FRAMES, 240
    )
    assert sorted(p.frame_id for p in found) == sorted(sent_ids), "a frame was lost"
    by_seq = sorted(found, key=lambda p: p.seq)
    served_bad = [p for p in by_seq if p.model_version == bad]
    assert served_bad, "the degraded version never served"
    print(f"the degraded version served {len(served_bad)} frames")  # shown with -s
    after = [p for p in by_seq if p.seq > served_bad[-1].seq]
    assert after and all(p.model_version == good for p in after), "not rolled back to the good one"
    media_s = len(served_bad) / DRIVE_FPS  # frames of the drive the bad version saw
    assert media_s <= 5.0, f"the bad version served {len(served_bad)} frames ({media_s:.1f} s)"

    [rollback] = decisions.collect(
        lambda e: isinstance(e, Decision) and e.action == "rollback", 1, 30
    )
    assert rollback.actor == "policy:model-health"
    assert rollback.subject == f"{settings.model_name}@{good}"
    raised = alerts.collect(lambda e: isinstance(e, Alert) and e.source == "policy", 1, 30)
    assert raised[0].severity == "critical" and f"from version {bad} to {good}" in raised[0].message
    assert registry.active(settings.model_name) == good
    assert registry.info(settings.model_name, bad).status == "bad"


def _send_paced(settings, keyring, cam: str, images: list, fps: float) -> list[str]:
    sent, start = [], time.monotonic()
    with FrameSender(settings, keyring) as sender:
        for seq, image in enumerate(images):
            time.sleep(max(0.0, start + seq / fps - time.monotonic()))
            sent.append(sender.send(build_frame(cam, seq, image)).frame_id)
    return sent


def test_a_canary_that_departs_from_the_serving_version_is_aborted_and_never_serves(
    worker, settings, keyring, tail, env
):
    cam = f"canary-{uuid.uuid4().hex[:8]}"
    registry = Registry(redis_client(settings), Verifier.from_settings(settings))
    good = registry.active(settings.model_name)
    candidate = secmlops(env, "models", "degrade", "--strength", "3").stdout.split()[2]
    predictions, alerts = tail(TOPICS.predictions.name), tail(TOPICS.alerts.name)
    decisions = tail(TOPICS.decisions.name)
    started = secmlops(env, "models", "promote", candidate, "--canary", "120")
    assert f"version {candidate} runs in shadow" in started.stdout
    drive = fetch_asset(ASSETS["sample-drive"], settings.cache_dir, quiet=True)
    images = [f.image for f in open_source(drive, cam, start=START, end=START + 60).frames()]
    sent = _send_paced(settings, keyring, cam, images, fps=5)

    aborted = alerts.collect(
        lambda e: isinstance(e, Alert) and e.source == "policy" and "aborted" in e.message, 1, 60
    )
    assert aborted and aborted[0].severity == "critical", "the canary was not aborted"
    assert registry.canary(settings.model_name) is None
    assert registry.info(settings.model_name, candidate).status == "bad"
    assert registry.active(settings.model_name) == good
    served = predictions.collect(lambda e: e.camera_id == cam, len(sent), 120)
    assert {p.model_version for p in served} == {good}, "a canary served a frame"
    [record] = decisions.collect(
        lambda e: isinstance(e, Decision) and e.actor == "policy:canary", 1, 30
    )
    assert record.action == "rollback" and record.reason.startswith("canary aborted")


def test_a_canary_that_agrees_is_promoted_when_its_period_ends(
    worker, settings, keyring, tail, env
):
    cam = f"canary-{uuid.uuid4().hex[:8]}"
    registry = Registry(redis_client(settings), Verifier.from_settings(settings))
    good = registry.active(settings.model_name)
    made = secmlops(env, "models", "degrade", "--mode", "noise", "--strength", "0.0001")
    candidate = made.stdout.split()[2]
    alerts = tail(TOPICS.alerts.name)
    # 20 s: long enough for 30 compared frames (CANARY_MIN_FRAMES) on a slow 2-core
    # machine, where the detector and the candidate in shadow run at a few frames a second.
    secmlops(env, "models", "promote", candidate, "--canary", "20")
    drive = fetch_asset(ASSETS["sample-drive"], settings.cache_dir, quiet=True)
    frames = open_source(drive, cam, start=START, end=START + 100, resize=(320, 180)).frames()
    try:
        _send_paced(settings, keyring, cam, [f.image for f in frames], fps=10)
        promoted = alerts.collect(
            lambda e: isinstance(e, Alert) and e.source == "policy" and "promoted" in e.message,
            1,
            60,
        )
        assert promoted, "the canary was not promoted"
        assert registry.active(settings.model_name) == candidate
        assert registry.canary(settings.model_name) is None
    finally:
        secmlops(env, "models", "promote", good, "--reason", "test: restore")
