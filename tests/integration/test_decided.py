"""The gate's ledger of decided frame records, in a real Redis (streams.decided)."""

from __future__ import annotations

import uuid

import pytest

from streams.clients import redis_client
from streams.decided import PREFIX, DecidedLedger


@pytest.fixture
def ledger(stack, settings):
    app_id = f"ledger-{uuid.uuid4().hex[:8]}"  # each test its own consumer group's ledger
    return DecidedLedger(redis_client(settings), app_id, keep=5)


def test_a_recorded_frame_record_is_decided_and_others_are_not(ledger):
    assert ledger.record([("0:7", "a" * 32), ("1:7", "b" * 32)]) == 2
    asked = [("0:7", "a" * 32), ("1:7", "b" * 32), ("0:8", "c" * 32), ("2:7", "a" * 32)]
    assert ledger.decided(asked) == {("0:7", "a" * 32), ("1:7", "b" * 32)}


def test_another_frame_at_a_recorded_offset_is_not_decided(ledger):
    # A topic deleted and created again counts offsets from 0: a new frame at an old offset.
    ledger.record([("0:0", "a" * 32)])
    assert ledger.decided([("0:0", "f" * 32)]) == set()


def test_each_partition_keeps_its_newest_offsets_and_expires(ledger):
    ledger.record([(f"0:{offset}", f"{offset:032x}") for offset in range(8)])
    kept = ledger.decided([(f"0:{offset}", f"{offset:032x}") for offset in range(8)])
    assert kept == {(f"0:{offset}", f"{offset:032x}") for offset in range(3, 8)}
    ttl = ledger.client.ttl(f"{PREFIX}{ledger.app_id}:0")
    assert 0 < ttl <= 7 * 86_400, "a ledger nobody writes to goes by itself"


def test_nothing_to_ask_or_record_costs_no_round_trip(ledger):
    assert ledger.record([]) == 0
    assert ledger.decided([("", "a" * 32)]) == set()


def test_a_delivery_that_names_no_frame_record_is_refused(ledger):
    with pytest.raises(ValueError, match="partition:offset"):
        ledger.record([("trusted", "a" * 32)])
