"""The served model: swaps when the pointer moves, refuses bad artifacts, survives outages."""

from __future__ import annotations

import uuid

import pytest
import redis

from model_store.catalog import hog_parts, make_artifact
from model_store.errors import ModelStoreError
from model_store.registry import Registry
from model_store.signing import Signer, Verifier
from streams.clients import redis_client
from streams.serving import ModelServer


@pytest.fixture
def registry(stack):
    client = redis_client(stack.settings)
    yield Registry(client, Verifier.from_settings(stack.settings))
    client.close()


@pytest.fixture
def two_versions(registry, settings):
    name = f"serve-{uuid.uuid4().hex[:6]}"
    signer = Signer.from_settings(settings)
    for threshold in (0.0, 0.4):
        manifest, state = hog_parts()
        manifest["preprocessing"]["hit_threshold"] = threshold
        registry.register(name, make_artifact((manifest, state), signer), actor="test")
    return name


def test_no_active_version_is_a_clear_error(registry, two_versions):
    with pytest.raises(ModelStoreError, match="no active version"):
        ModelServer(registry, two_versions).current()


def test_it_swaps_when_poked_and_only_then_within_the_poll_interval(registry, two_versions):
    registry.promote(two_versions, "1", actor="test")
    server = ModelServer(registry, two_versions, poll_s=3600)
    assert server.current().version == "1"
    registry.promote(two_versions, "2", actor="test")
    assert server.current().version == "1"  # not checked yet: same batch boundary rules
    server.poke()
    served = server.current()
    assert served.version == "2"
    assert served.detector.hit_threshold == 0.4


def test_a_tampered_version_is_refused_and_the_current_model_keeps_serving(registry, two_versions):
    registry.promote(two_versions, "1", actor="test")
    server = ModelServer(registry, two_versions, poll_s=0)
    first = server.current()
    key = f"secmlops:model:{two_versions}:2:weights"
    registry.client.set(key, registry.client.get(key)[:-1] + b"\x00")
    registry.client.set(f"secmlops:model:{two_versions}:active", "2")  # bypassing promote's check
    assert server.current() is first
    assert server.current() is first  # and it is not retried on every batch


def test_a_registry_outage_keeps_the_current_model(registry, two_versions):
    registry.promote(two_versions, "1", actor="test")
    server = ModelServer(registry, two_versions, poll_s=0)
    first = server.current()
    registry.client = redis.Redis(port=1, socket_connect_timeout=0.2)  # nothing listens there
    assert server.current() is first
