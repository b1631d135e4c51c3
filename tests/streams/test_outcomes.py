"""Dead letters keep enough of a bad input to find it, never the whole of it."""

from __future__ import annotations

import hashlib

from streams.events import DeadLetter, decode, encode
from streams.outcomes import Rejected, dead_letter


def test_a_dead_letter_records_where_the_input_was_and_why_it_failed():
    payload = b"\x00" * 5000
    record = dead_letter(
        Rejected("malformed", "not msgpack"),
        payload=payload,
        source_topic="pds.frames",
        partition=2,
        offset=41,
        key=b"cam-7",
    )
    assert decode(encode(record), DeadLetter) == record
    assert (record.source_topic, record.partition, record.offset) == ("pds.frames", 2, 41)
    assert record.reason == "malformed"
    assert record.payload_size == 5000
    assert record.payload_sha256 == hashlib.sha256(payload).hexdigest()
    assert len(record.payload_head) == 256
    assert record.key == b"cam-7"


def test_long_details_and_keys_are_truncated_to_stay_valid():
    record = dead_letter(
        Rejected("invalid", "x" * 10_000, None), payload=b"", source_topic="t", key=b"k" * 1000
    )
    assert decode(encode(record)) == record
    assert len(record.detail) == 2000
    assert len(record.key) == 256
