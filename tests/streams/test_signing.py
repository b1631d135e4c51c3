"""Frame signatures: per-camera keys, every field covered, rotation, clear key errors."""

from __future__ import annotations

import json

import msgspec
import pytest

from producers.frames import build_frame
from producers.synthetic import pattern_frame
from streams.events import decode, encode
from streams.settings import Settings
from streams.signing import Keyring, SigningKeyError, generate_key


@pytest.fixture
def keyring():
    return Keyring({"k1": bytes(range(32))}, "k1")


@pytest.fixture
def frame():
    return build_frame("cam-1", 3, pattern_frame(3, width=64, height=48))


def test_a_signed_frame_verifies_after_a_trip_through_the_wire(keyring, frame):
    signed = keyring.sign(frame)
    assert signed.key_id == "k1"
    assert len(signed.signature) == 32
    assert keyring.verify(decode(encode(signed))) == "ok"


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 4},
        {"capture_ts_ns": 1},
        {"camera_id": "cam-2"},
        {"width": 65},
        {"frame_id": "0" * 32},
    ],
)
def test_changing_any_header_field_breaks_the_signature(keyring, frame, change):
    tampered = msgspec.structs.replace(keyring.sign(frame), **change)
    assert keyring.verify(tampered) == "bad_signature"


def test_changing_one_pixel_byte_breaks_the_signature(keyring, frame):
    signed = keyring.sign(frame)
    image = bytearray(signed.image)
    image[len(image) // 2] ^= 1
    assert keyring.verify(msgspec.structs.replace(signed, image=bytes(image))) == "bad_signature"


def test_cameras_have_different_keys(keyring):
    assert keyring.camera_key("k1", "cam-1") != keyring.camera_key("k1", "cam-2")


def test_unsigned_and_unknown_keys_are_reported_as_such(keyring, frame):
    assert keyring.verify(frame) == "unsigned"
    other = Keyring({"k9": b"x" * 32}, "k9").sign(frame)
    assert keyring.verify(other) == "unknown_key"


def test_rotation_keeps_old_keys_verifying(tmp_path, frame):
    old, new = generate_key(), generate_key()
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"active": "k2", "keys": {"k1": old, "k2": new}}))
    path.chmod(0o600)
    rotated = Keyring.from_settings(Settings.from_env({"SECMLOPS_FRAME_KEYS_FILE": str(path)}))
    before = Keyring.from_settings(Settings.from_env({"SECMLOPS_FRAME_KEY": old}))
    assert rotated.verify(before.sign(frame)) == "ok"
    assert rotated.sign(frame).key_id == "k2"


def test_a_key_file_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"active": "k1", "keys": {"k1": generate_key()}}))
    path.chmod(0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        Keyring.from_settings(Settings.from_env({"SECMLOPS_FRAME_KEYS_FILE": str(path)}))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECMLOPS_FRAME_KEY"),
        ({"SECMLOPS_FRAME_KEY": "abcd"}, "at least 16 bytes"),
        ({"SECMLOPS_FRAME_KEY": "not hex, not base64!"}, "hex or base64"),
    ],
)
def test_missing_or_weak_keys_are_clear_errors(env, message):
    with pytest.raises(SigningKeyError, match=message):
        Keyring.from_settings(Settings.from_env(env))


def test_the_key_is_not_in_the_settings_repr():
    key = generate_key()
    assert key not in repr(Settings.from_env({"SECMLOPS_FRAME_KEY": key}))
