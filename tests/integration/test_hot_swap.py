"""Promoting a model mid-stream: every frame processed by exactly one version, none lost."""

from __future__ import annotations

import threading
import time
import uuid

import msgspec

from model_store.catalog import hog_parts, make_artifact
from model_store.registry import Registry
from model_store.signing import Signer, Verifier
from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.clients import redis_client
from streams.outcome_reader import OutcomeReader
from tests.integration.conftest import secmlops


def test_promote_mid_stream_switches_versions_between_batches_and_loses_nothing(
    worker, settings, keyring, env
):
    registry = Registry(redis_client(settings), Verifier.from_settings(settings))
    manifest, state = hog_parts()
    manifest["preprocessing"]["hit_threshold"] = 0.5  # a genuinely different, stricter model
    new = registry.register(
        settings.model_name,
        make_artifact((manifest, state), Signer.from_settings(settings)),
        actor="test",
        reason="hot-swap test",
    )
    old = registry.active(settings.model_name)
    cam = f"swap-{uuid.uuid4().hex[:6]}"
    sent: list[str] = []

    def stream_frames():
        with FrameSender(settings, keyring) as sender:
            for seq in range(150):
                frame = sender.send(build_frame(cam, seq, pattern_frame(seq, width=96, height=128)))
                sent.append(frame.frame_id)
                sender.flush()
                time.sleep(0.02)

    with OutcomeReader(settings) as reader:
        producer = threading.Thread(target=stream_frames)
        producer.start()
        time.sleep(1.0)
        promoted = secmlops(env, "models", "promote", new, "--reason", "hot-swap test")
        producer.join()
        outcomes = reader.wait(set(sent), timeout_s=120)

    assert f"{old} -> {new}" in promoted.stdout
    assert outcomes.dead_letters == []
    assert outcomes.duplicates == 0
    assert set(outcomes.predictions) == set(sent)
    versions = [outcomes.predictions[f].model_version for f in sent]
    switch = versions.index(new)
    assert 0 < switch < len(versions), versions
    assert versions == [old] * switch + [new] * (len(versions) - switch)

    rolled = secmlops(env, "models", "rollback", "--reason", "restore for the other tests")
    assert f"{new} -> {old}" in rolled.stdout
    assert registry.info(settings.model_name, new).status == "bad"


def test_unsigned_and_forged_frames_are_not_inferred_and_say_why(worker, settings, keyring):
    cam = f"auth-{uuid.uuid4().hex[:6]}"
    good = keyring.sign(build_frame(cam, 0, pattern_frame(0)))
    unsigned = build_frame(cam, 1, pattern_frame(1))
    forged = msgspec.structs.replace(keyring.sign(build_frame(cam, 2, pattern_frame(2))), seq=3)
    with OutcomeReader(settings) as reader, FrameSender(settings) as sender:
        for frame in (good, unsigned, forged):
            sender.send(frame)
        sender.flush()
        outcomes = reader.wait({good.frame_id, unsigned.frame_id, forged.frame_id}, timeout_s=60)
    assert set(outcomes.predictions) == {good.frame_id}
    reasons = {d.frame_id: d.reason for d in outcomes.dead_letters}
    assert reasons == {unsigned.frame_id: "unsigned", forged.frame_id: "bad_signature"}
