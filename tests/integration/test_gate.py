"""The gate on the real stack: one outcome per delivered frame, and a reviewable quarantine."""

from __future__ import annotations

import json
import uuid

import msgspec

from producers.frames import FrameSender, build_frame
from producers.synthetic import pattern_frame
from streams.clients import redis_client
from streams.events import DeadLetter, Decision, Prediction, Quarantine, encode
from streams.quarantine import QuarantineStore
from streams.topics import TOPICS
from tests.integration.conftest import collect_from, secmlops


def outcome_of(event) -> tuple[str, str] | None:
    if isinstance(event, Prediction):
        return ("trusted", event.frame_id)
    if isinstance(event, Quarantine):
        return ("quarantined", event.frame_id)
    if isinstance(event, DeadLetter) and event.frame_id:
        return ("deadletter", event.frame_id)
    return None


def test_every_delivered_frame_ends_trusted_quarantined_or_dead_lettered_exactly_once(
    worker, settings, keyring, tail, env
):
    cam = f"gate-{uuid.uuid4().hex[:8]}"
    outcomes = [tail(TOPICS.trusted.name), tail(TOPICS.quarantine.name)]
    outcomes.append(tail(TOPICS.deadletter.name))
    decisions = tail(TOPICS.decisions.name)
    frames = [build_frame(cam, s, pattern_frame(s, width=160, height=128)) for s in range(24)]
    with FrameSender(settings, keyring) as sender:
        sent = [sender.send(f) for f in frames[:20]]
        unsigned = msgspec.structs.replace(frames[20], key_id="", signature=b"")
        sender.send_raw(cam.encode(), encode(unsigned))
        sender.send_raw(cam.encode(), encode(sent[5]))  # replayed: a second delivery
        sent += [sender.send(f) for f in frames[21:]]
    ours = {f.frame_id for f in sent} | {unsigned.frame_id}
    expected = len(sent) + 2  # every signed frame, the unsigned one, the replayed copy

    found = collect_from(
        outcomes, lambda e: outcome_of(e) is not None and outcome_of(e)[1] in ours, expected
    )
    kinds = [outcome_of(e) for e in found]
    assert len(kinds) == expected, kinds
    assert ("deadletter", unsigned.frame_id) in kinds
    replayed = sorted(kind for kind, frame_id in kinds if frame_id == sent[5].frame_id)
    assert replayed in (["quarantined", "trusted"], ["quarantined", "quarantined"])
    per_frame = {frame_id for _, frame_id in kinds}
    assert per_frame == ours

    held = [e for e in found if isinstance(e, Quarantine) and e.frame_id == sent[5].frame_id]
    assert any("integrity" in q.reasons for q in held)
    store = QuarantineStore(redis_client(settings))
    item = store.get(sent[5].frame_id)
    assert item is not None and item.frame is not None
    assert item.decoded_frame().frame_id == sent[5].frame_id

    run = secmlops(env, "quarantine", "list", "--camera", cam, "--json", check=False)
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    assert sent[5].frame_id in {i["frame_id"] for i in listed}
    shown = secmlops(env, "quarantine", "show", sent[5].frame_id).stdout
    assert "integrity" in shown and "reasons" in shown

    # A reviewer releases it: audited, sent again, and judged again with the replay waived.
    trusted = tail(TOPICS.trusted.name)
    quarantined = tail(TOPICS.quarantine.name)
    result = secmlops(
        env, "quarantine", "release", sent[5].frame_id, "--reason", "reviewed: a test frame"
    )
    assert "released" in result.stdout
    [audit] = decisions.collect(
        lambda e: isinstance(e, Decision) and e.subject == sent[5].frame_id, 1, 30
    )
    assert audit.action == "release" and audit.reason == "reviewed: a test frame"
    again = collect_from([trusted, quarantined], lambda e: e.frame_id == sent[5].frame_id, 1, 60)
    assert len(again) == 1
    after = store.get(sent[5].frame_id)
    assert after.released_by == settings.actor
    if isinstance(again[0], Quarantine):  # held again, but never for the replay itself
        assert "integrity" not in again[0].reasons, again[0].reasons
        assert after.status == "held" and after.times == item.times + 1
    else:
        assert after.status == "released"


def test_quarantine_cli_explains_unknown_frames_and_bad_purges(stack, env):
    missing = secmlops(env, "quarantine", "show", "0" * 32, check=False)
    assert missing.returncode != 0 and "not in the quarantine" in missing.stderr
    both = secmlops(env, "quarantine", "purge", "--all", "--older-than", "1d", check=False)
    assert both.returncode == 2 and "one of them" in both.stderr
