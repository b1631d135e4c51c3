"""The worker on the real broker: every frame in gets exactly one outcome out."""

from __future__ import annotations

import hashlib
import uuid

import msgspec

from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.outcome_reader import OutcomeReader
from streams.topics import TOPICS


def camera() -> str:
    return f"it-{uuid.uuid4().hex[:8]}"


def send_frames(settings, keyring, cam, n, start=0):
    with FrameSender(settings, keyring) as sender:
        frames = [
            build_frame(cam, seq, pattern_frame(seq, width=160, height=128))
            for seq in range(start, start + n)
        ]
        for frame in frames:
            sender.send(frame)
    return frames


def test_n_frames_in_n_predictions_out(worker, settings, keyring):
    cam = camera()
    with OutcomeReader(settings) as reader:
        frames = send_frames(settings, keyring, cam, 50)
        outcomes = reader.wait({f.frame_id for f in frames}, timeout_s=120)
    assert len(outcomes.predictions) == 50
    assert outcomes.dead_letters == []
    assert outcomes.duplicates == 0
    for frame in frames:
        prediction = outcomes.predictions[frame.frame_id]
        assert (prediction.camera_id, prediction.seq) == (cam, frame.seq)
        assert prediction.model == "hog-torch"
        assert prediction.model_version == "1"


def test_a_malformed_event_is_dead_lettered_and_the_worker_keeps_running(worker, settings, keyring):
    cam = camera()
    garbage = b"\x92\xa7frame/1\xc0 definitely not a frame"
    corrupt = msgspec.structs.replace(build_frame(cam, 0, pattern_frame(0)), image=b"\xff\xd8 bad")
    with OutcomeReader(settings) as reader:
        with FrameSender(settings, keyring) as sender:
            sender.send_raw(cam.encode(), garbage)
            sender.send(corrupt)
        after = send_frames(settings, keyring, cam, 10, start=1)
        outcomes = reader.wait(
            {corrupt.frame_id, *(f.frame_id for f in after)},
            dead_letter_hashes={hashlib.sha256(garbage).hexdigest()},
            timeout_s=120,
        )
    assert worker.running
    by_reason = {dl.reason: dl for dl in outcomes.dead_letters}
    assert set(by_reason) == {"malformed", "undecodable_image"}
    bad = by_reason["malformed"]
    assert bad.source_topic == TOPICS.frames.name
    assert bad.offset >= 0
    assert bad.key == cam.encode()
    assert bad.payload_head == garbage
    assert by_reason["undecodable_image"].frame_id == corrupt.frame_id
    assert set(outcomes.predictions) == {f.frame_id for f in after}


def test_the_worker_says_where_its_cpu_went_thread_by_thread(worker):
    used = worker.thread_cpu()  # its /threads/ page on the web port
    assert used.get("event-loop", 0) > 0, used
    detector = [group for group in used if group.startswith("detector-")]
    assert detector and used[detector[0]] > 0, "the warm-up frame ran in the detector's thread"


def test_the_worker_says_how_long_its_device_thread_ran_each_lane(worker):
    busy = worker.device_busy()  # its /device/ page on the web port
    (thread,) = {key.partition("/")[0] for key in busy}  # one device: detector-cpu, -cuda
    assert thread.startswith("detector-"), busy
    assert set(busy) == {f"{thread}/batches", f"{thread}/checks"}
    assert busy[f"{thread}/batches"] > 0, "the warm-up frame's batch ran there"
