"""The registry on the real Redis: versions, promotion, rollback to the last good one, audit."""

from __future__ import annotations

import uuid

import pytest

from model_store.catalog import hog_parts, make_artifact
from model_store.errors import ModelNotFoundError, ModelStoreError, UntrustedModelError
from model_store.registry import Registry
from model_store.signing import Signer, Verifier, new_key_pair
from streams.clients import redis_client

PAIR = new_key_pair()
SIGNER = Signer(PAIR.private_hex)


@pytest.fixture
def registry(stack):
    client = redis_client(stack.settings)
    yield Registry(client, Verifier([PAIR.public_hex]))
    client.close()


@pytest.fixture
def name():
    return f"model-{uuid.uuid4().hex[:8]}"


def hog(threshold=0.0):
    manifest, state = hog_parts()
    manifest["preprocessing"]["hit_threshold"] = threshold
    return make_artifact((manifest, state), SIGNER)


def test_versions_count_up_and_nothing_serves_before_a_promotion(registry, name):
    assert registry.register(name, hog(), actor="ci") == "1"
    assert registry.register(name, hog(0.5), actor="ci") == "2"
    assert registry.active(name) is None
    assert [v.version for v in registry.versions(name)] == ["1", "2"]
    assert name in registry.names()


def test_an_untrusted_artifact_never_enters(registry, name):
    foreign = make_artifact(hog_parts(), Signer(new_key_pair().private_hex))
    with pytest.raises(UntrustedModelError):
        registry.register(name, foreign, actor="ci")
    assert registry.versions(name) == []


def test_promote_and_rollback_to_the_last_good_version(registry, name):
    for threshold in (0.0, 0.3, 0.6):
        registry.register(name, hog(threshold), actor="ci")
    assert registry.promote(name, "1", actor="ops", reason="first") is None
    assert registry.promote(name, "2", actor="ops", reason="better") == "1"
    assert registry.promote(name, "3", actor="ops", reason="newer") == "2"
    assert registry.rollback(name, actor="policy", reason="degraded") == ("3", "2")
    assert registry.info(name, "3").status == "bad"
    assert registry.active(name) == "2"
    assert registry.rollback(name, actor="policy", reason="still bad") == ("2", "1")
    with pytest.raises(ModelStoreError, match="no earlier good version"):
        registry.rollback(name, actor="policy", reason="again")
    history = registry.history(name)
    assert [h["action"] for h in history] == [
        "rollback",
        "rollback",
        "promote",
        "promote",
        "promote",
    ]
    assert history[0]["previous"] == "2"


def test_every_action_is_audited_with_who_and_why(registry, name):
    registry.register(name, hog(), actor="alice", reason="initial")
    registry.promote(name, "1", actor="bob", reason="go live")
    entries = [e for e in registry.audit(50) if e.model == name]
    assert [(e.action, e.actor, e.reason) for e in entries] == [
        ("promote", "bob", "go live"),
        ("register", "alice", "initial"),
    ]


def test_weights_tampered_in_redis_are_refused_on_load_and_promote(registry, name):
    registry.register(name, hog(), actor="ci")
    key = f"secmlops:model:{name}:1:weights"
    weights = registry.client.get(key)
    registry.client.set(key, weights[:-4] + b"evil")
    with pytest.raises(UntrustedModelError):
        registry.load(name, "1")
    with pytest.raises(UntrustedModelError):
        registry.promote(name, "1", actor="ci")
    assert registry.active(name) is None


def test_unknown_versions_are_named(registry, name):
    with pytest.raises(ModelNotFoundError, match="no version '9'"):
        registry.promote(name, "9", actor="ci")
