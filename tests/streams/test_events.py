"""Event contracts: every schema round-trips, and nothing malformed gets through."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.events import (
    MAX_EVENT_BYTES,
    MAX_IMAGE_BYTES,
    Alert,
    Box,
    Control,
    DeadLetter,
    Decision,
    Frame,
    InvalidEvent,
    Prediction,
    Quarantine,
    Signal,
    Signals,
    Timing,
    Truth,
    decode,
    encode,
    new_id,
    signals_in,
)


def a_frame(**overrides):
    fields = {
        "frame_id": new_id(),
        "camera_id": "cam-1",
        "seq": 7,
        "capture_ts_ns": 1_700_000_000_000_000_000,
        "width": 640,
        "height": 360,
        "encoding": "jpeg",
        "image": b"\xff\xd8" + b"x" * 100,
    }
    fields.update(overrides)
    return Frame(**fields)


EXAMPLES = [
    a_frame(),
    Truth(
        frame_id=new_id(),
        camera_id="cam-1",
        seq=1,
        capture_ts_ns=5,
        injections=["pgd"],
        params={"pgd.eps": 0.03},
    ),
    Prediction(
        frame_id=new_id(),
        camera_id="cam-1",
        seq=1,
        capture_ts_ns=1,
        model="hog-opencv",
        model_version="cv4.14.0",
        boxes=[Box(1.0, 2.0, 30.0, 80.0, 0.9)],
        timing=Timing(queue_ms=1.0, decode_ms=2.0, infer_ms=3.0),
        processed_ts_ns=2,
    ),
    Signal(
        frame_id=new_id(),
        camera_id="cam-1",
        seq=1,
        monitor="drift.page_hinkley",
        score=0.4,
        threshold=0.9,
        alarm=False,
        ts_ns=5,
    ),
    Signals(
        signals=[
            Signal(new_id(), "cam-1", seq, "integrity", 0.0, 1.0, False, seq) for seq in (1, 2)
        ]
    ),
    Quarantine(
        frame_id=new_id(),
        camera_id="cam-1",
        seq=1,
        model_version="3",
        reasons=["adversarial.squeeze"],
        scores={"adversarial.squeeze": 0.97},
        ts_ns=5,
    ),
    Alert(alert_id=new_id(), ts_ns=1, severity="critical", source="policy", message="rollback"),
    Decision(
        decision_id=new_id(),
        ts_ns=1,
        action="rollback",
        subject="ssdlite-2",
        actor="policy",
        reason="health",
    ),
    Control(
        command_id=new_id(), ts_ns=1, command="promote", model="ssdlite", version="2", actor="ops"
    ),
    DeadLetter(
        ts_ns=1,
        source_topic="pds.frames",
        partition=0,
        offset=3,
        reason="malformed",
        detail="not msgpack",
        payload_size=3,
        payload_sha256="ab" * 32,
    ),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_schema_round_trips_unchanged(event):
    assert decode(encode(event), type(event)) == event


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_the_encoding_starts_with_the_versioned_schema_tag(event):
    tag = msgspec.msgpack.decode(encode(event))[0]
    assert tag == type(event).__struct_config__.tag
    assert tag.endswith("/1")


def test_the_encoding_is_compact_arrays_not_maps():
    frame = a_frame()
    overhead = len(encode(frame)) - len(frame.image)
    assert overhead < 100  # field names would add ~80 bytes on their own
    assert b"camera_id" not in encode(frame)


def test_a_valid_event_on_the_wrong_topic_is_rejected_as_wrong_schema():
    with pytest.raises(InvalidEvent) as err:
        decode(encode(EXAMPLES[1]), Frame)
    assert err.value.reason == "wrong_schema"


def test_a_signals_record_carries_its_signals_and_a_lone_signal_is_read_too():
    batch = next(e for e in EXAMPLES if isinstance(e, Signals))
    assert signals_in(decode(encode(batch))) == batch.signals
    lone = next(e for e in EXAMPLES if isinstance(e, Signal))
    assert signals_in(decode(encode(lone))) == [lone], "signal/1 records stay readable"
    with pytest.raises(InvalidEvent) as err:
        signals_in(EXAMPLES[0])
    assert err.value.reason == "wrong_schema"


def test_an_empty_signals_record_is_invalid():
    with pytest.raises(InvalidEvent) as err:
        encode(Signals(signals=[]))
    assert err.value.reason == "invalid"


def test_an_unknown_schema_version_is_rejected_as_unknown_schema():
    data = msgspec.msgpack.encode(["frame/99", new_id()])
    with pytest.raises(InvalidEvent) as err:
        decode(data)
    assert err.value.reason == "unknown_schema"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "malformed"),
        (b"\xc1", "malformed"),
        (msgspec.msgpack.encode(42), "malformed"),
        (msgspec.msgpack.encode({"schema": "frame/1"}), "malformed"),
        (msgspec.msgpack.encode([1, 2, 3]), "malformed"),
        (b"\x00" * (MAX_EVENT_BYTES + 1), "oversized"),
    ],
)
def test_garbage_is_rejected_with_a_reason(payload, reason):
    with pytest.raises(InvalidEvent) as err:
        decode(payload)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    "overrides",
    [
        {"camera_id": ""},
        {"camera_id": "cam 1"},  # spaces are not allowed in ids used as Kafka keys
        {"camera_id": "c" * 65},
        {"frame_id": "not-hex"},
        {"seq": -1},
        {"width": 0},
        {"height": 100_000},
        {"encoding": "bmp"},
        {"image_sha256": "xyz"},
        {"key_id": "bad id"},
    ],
)
def test_frames_breaking_a_field_rule_are_invalid(overrides):
    data = msgspec.msgpack.encode(a_frame(**overrides))
    with pytest.raises(InvalidEvent) as err:
        decode(data, Frame)
    assert err.value.reason == "invalid"


@pytest.mark.parametrize(
    "overrides",
    [
        {"image": b""},  # no image at all
        {"image_ref": "secmlops:claim:" + "a" * 64, "image_sha256": "a" * 64},  # both ways
        {"image": b"", "image_ref": "secmlops:claim:x"},  # a reference without its digest
        {"key_id": "", "signature": b"s" * 32},  # a signature that names no key
        {"key_id": "k1", "signature": b"short"},
    ],
)
def test_inconsistent_frames_cannot_be_built(overrides):
    with pytest.raises(ValueError, match=r"image|signature"):
        a_frame(**overrides)


def test_inconsistent_frames_on_the_wire_are_invalid():
    raw = msgspec.msgpack.decode(encode(a_frame()))
    raw[8] = b""  # drop the inline image without giving a reference
    with pytest.raises(InvalidEvent) as err:
        decode(msgspec.msgpack.encode(raw), Frame)
    assert err.value.reason == "invalid"


def test_a_claim_checked_frame_round_trips():
    frame = a_frame(image=b"", image_ref="secmlops:claim:" + "b" * 64, image_sha256="b" * 64)
    assert decode(encode(frame), Frame) == frame


def test_an_image_over_the_inline_limit_is_rejected_before_it_is_sent():
    with pytest.raises(InvalidEvent) as err:
        encode(a_frame(image=b"x" * (MAX_IMAGE_BYTES + 1)))
    assert err.value.reason in {"invalid", "oversized"}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_are_rejected_on_encode(bad):
    signal = msgspec.structs.replace(EXAMPLES[3], score=bad)
    with pytest.raises(InvalidEvent):
        encode(signal)


def test_inverted_boxes_cannot_be_built():
    with pytest.raises(ValueError, match="inverted"):
        Box(10.0, 0.0, 5.0, 10.0, 0.5)


def test_inverted_boxes_on_the_wire_are_invalid():
    good = msgspec.msgpack.encode(EXAMPLES[2])
    raw = msgspec.msgpack.decode(good)
    raw[7] = [[10.0, 0.0, 5.0, 10.0, 0.5]]
    with pytest.raises(InvalidEvent) as err:
        decode(msgspec.msgpack.encode(raw), Prediction)
    assert err.value.reason == "invalid"


def test_too_many_boxes_are_invalid():
    many = msgspec.structs.replace(EXAMPLES[2], boxes=[Box(0, 0, 1, 1, 0.1)] * 513)
    with pytest.raises(InvalidEvent):
        encode(many)


def test_frame_ids_are_unique_hex():
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise_anything_but_invalid_event(data):
    try:
        event = decode(data)
    except InvalidEvent as exc:
        assert exc.reason in {"malformed", "invalid", "unknown_schema", "oversized"}
    else:  # astronomically unlikely, but then it must be a fully valid event
        assert decode(encode(event)) == event


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=10)
        | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([e.__struct_config__.tag for e in EXAMPLES]), st.lists(json_like, max_size=12)
)
def test_well_formed_msgpack_with_a_real_tag_never_crashes_the_decoder(tag, fields):
    data = msgspec.msgpack.encode([tag, *fields])
    try:
        event = decode(data)
    except InvalidEvent as exc:
        assert exc.reason in {"malformed", "invalid"}
    else:
        assert decode(encode(event)) == event


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(min_value=0, max_value=2**63 - 1),
    camera=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", fullmatch=True),
    image=st.binary(min_size=1, max_size=2048),
)
def test_any_valid_frame_round_trips(seq, camera, image):
    frame = a_frame(seq=seq, camera_id=camera, image=image)
    assert decode(encode(frame), Frame) == frame
