"""The replayer, against an in-memory sender: sequencing, truth records and integrity drills."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from producers.injection import Drill, parse_spec
from producers.replay import Replayer, ReplayOptions
from producers.sources import SourceFrame
from producers.synthetic import pattern_frame
from streams.events import Frame, Truth, decode, encode
from streams.signing import Keyring
from streams.topics import TOPICS


class MemorySender:
    """The FrameSender interface, recording what would be sent (a pure unit-test double)."""

    def __init__(self, keyring=None):
        self.keyring = keyring
        self.frames: list[bytes] = []
        self.truth: list[Truth] = []
        self.sent: Counter[str] = Counter()
        self.bytes = 0
        self.by_reference = 0
        self.failures: list[str] = []

    def prepare(self, frame):
        return self.keyring.sign(frame) if self.keyring else frame

    def send_raw(self, key, value, topic=TOPICS.frames.name):
        assert key == decode(value).camera_id.encode()
        self.frames.append(value)
        self.sent[topic] += 1
        self.bytes += len(value)

    def send_truth(self, truth):
        self.truth.append(decode(encode(truth)))
        self.sent[TOPICS.truth.name] += 1

    def flush(self):
        return self.sent[TOPICS.frames.name]

    def decoded(self) -> list[Frame]:
        return [decode(v, Frame) for v in self.frames]


KEYS = Keyring({"k1": b"k" * 32}, "k1")


def source(n, camera="cam", step_ns=33_366_700):
    for i in range(n):
        image = pattern_frame(i, width=64, height=48)
        yield SourceFrame(camera, i, i * step_ns, image, 0.0)


def replay(specs=(), n=20, **options):
    sender = MemorySender(KEYS)
    drill = Drill([parse_spec(s) for s in specs])
    summary = Replayer(sender, ReplayOptions(**options), drill).run(source(n), progress=False)
    return sender, summary


def test_a_plain_replay_sends_every_frame_signed_and_in_order():
    sender, summary = replay(n=20)
    frames = sender.decoded()
    assert [f.seq for f in frames] == list(range(20))
    assert all(KEYS.verify(f) == "ok" for f in frames)
    stamps = [f.capture_ts_ns for f in frames]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert len({f.frame_id for f in frames}) == 20
    assert summary.ok
    assert summary.sent == 20
    assert sender.truth == []  # no drill, no truth records


def test_paced_replay_stamps_frames_with_media_time():
    sender, _ = replay(n=4, speed=100.0)
    stamps = [f.capture_ts_ns for f in sender.decoded()]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps == pytest.approx([333_667] * 3, abs=2)


def test_max_frames_stops_early():
    sender, summary = replay(n=20, max_frames=7)
    assert summary.frames == 7
    assert len(sender.frames) == 7


def test_a_drill_records_truth_for_every_frame():
    sender, summary = replay(["fog:density=0.5@5-10"], n=12)
    assert [t.seq for t in sender.truth] == list(range(12))
    assert [t.injections for t in sender.truth[4:6]] == [[], ["fog"]]
    assert sender.truth[5].params["fog.density"] == 0.5
    assert summary.injected == {"fog": 5}


def test_unsigned_and_forged_frames_fail_verification():
    sender, _ = replay(["unsigned@2-4", "forged@6-7"], n=8)
    verdicts = [KEYS.verify(f) for f in sender.decoded()]
    assert verdicts == ["ok", "ok", "unsigned", "unsigned", "ok", "ok", "bad_signature", "ok"]


def test_dropped_frames_are_withheld_and_their_truth_says_so():
    sender, summary = replay(["drop@3-5"], n=8)
    assert [f.seq for f in sender.decoded()] == [0, 1, 2, 5, 6, 7]
    assert [t.delivered for t in sender.truth] == [True] * 3 + [False] * 2 + [True] * 3
    assert summary.withheld == 2


def test_a_replay_attack_resends_an_old_validly_signed_frame():
    sender, _ = replay(["replay:lag=3@6-8"], n=10)
    frames = sender.decoded()
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4, 5, 3, 4, 8, 9]
    assert frames[6] == frames[3]  # byte-for-byte the old record, signature valid
    assert KEYS.verify(frames[6]) == "ok"
    assert sender.truth[6].params["replay.of_seq"] == 3


def test_a_frozen_camera_repeats_one_image_under_new_sequence_numbers():
    sender, _ = replay(["frozen@4-8"], n=10)
    frames = sender.decoded()
    assert len({frames[i].image for i in range(4, 8)}) == 1
    assert frames[3].image != frames[4].image
    assert [f.seq for f in frames] == list(range(10))


def test_reordered_frames_arrive_newest_first_per_window():
    sender, _ = replay(["reorder:window=3@2-8"], n=10)
    assert [f.seq for f in sender.decoded()] == [0, 1, 4, 3, 2, 7, 6, 5, 8, 9]


def test_an_interrupt_flushes_and_reports():
    sender = MemorySender(KEYS)

    def interrupted():
        yield from source(3)
        raise KeyboardInterrupt

    summary = Replayer(sender, ReplayOptions()).run(interrupted(), progress=False)
    assert summary.interrupted
    assert not summary.ok
    assert summary.sent == 3


def test_pixel_injections_change_only_their_frames():
    clean, _ = replay(n=6, encoding="png")
    shifted, _ = replay(["brightness:delta=50@2-4"], n=6, encoding="png")
    import cv2

    def pixels(frame):
        return cv2.imdecode(np.frombuffer(frame.image, np.uint8), cv2.IMREAD_COLOR).astype(int)

    diffs = [
        float(np.abs(pixels(a) - pixels(b)).mean())
        for a, b in zip(clean.decoded(), shifted.decoded(), strict=True)
    ]
    assert diffs[0] == diffs[1] == diffs[4] == diffs[5] == 0
    assert diffs[2] > 30
    assert diffs[3] > 30


def test_a_model_drill_runs_once_before_its_first_frame_and_leaves_the_pixels_alone():
    calls: list[tuple[str, int]] = []
    sender = MemorySender(KEYS)
    drill = Drill(
        [parse_spec("degrade:strength=3@4-9")],
        model_drill=lambda spec: calls.append((spec.type, len(sender.frames))),
    )
    Replayer(sender, ReplayOptions(), drill).run(source(12), progress=False)
    assert calls == [("degrade", 4)]  # once, before frame 4 was sent
    assert [t.injections for t in sender.truth[3:5]] == [[], ["degrade"]]
    plain, _ = replay(n=12)
    assert [f.image for f in sender.decoded()] == [f.image for f in plain.decoded()]


def test_a_model_drill_without_a_model_store_is_refused():
    with pytest.raises(ValueError, match="needs the model store"):
        Drill([parse_spec("degrade@4-9")])


class CountingAdversary:
    """Inverts the image: an 'attack' whose result is easy to recognise (a unit-test double)."""

    def __init__(self):
        self.calls = 0

    def attack(self, image, spec):
        self.calls += 1
        return 255 - image, {"loss": 1.0}


def test_attacks_prepared_ahead_are_what_the_replay_sends_and_are_computed_once():
    adversary, shared = CountingAdversary(), {}
    specs = [parse_spec("pgd@3-6")]
    drill = Drill(specs, adversary=lambda: adversary, prepared=shared)
    assert drill.prepare(source(10), progress=False) == 3 and adversary.calls == 3
    sender = MemorySender(KEYS)
    Replayer(sender, ReplayOptions(), drill).run(source(10), progress=False)
    assert adversary.calls == 3  # the replay used the prepared frames
    inline = MemorySender(KEYS)
    Replayer(inline, ReplayOptions(), Drill(specs, adversary=CountingAdversary)).run(
        source(10), progress=False
    )
    assert [f.image for f in sender.decoded()] == [f.image for f in inline.decoded()]
    assert sender.truth[4].params == inline.truth[4].params
    again = Drill(specs, adversary=lambda: adversary, prepared=shared)
    again.prepare(source(10), progress=False)
    assert adversary.calls == 3  # a second run shares them
