"""Fixtures for tests against the real Kafka broker and Redis.

The session starts its own stack on free ports in a temporary state folder,
so it never touches a stack the developer is running (``make up``).  The jar
cache is the user's, so the broker's jars are downloaded once per machine.
Set ``SECMLOPS_KAFKA_BOOTSTRAP`` and ``SECMLOPS_REDIS_URL`` to run the same
tests against services of your own instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from model_store.setup import setup_models
from model_store.signing import throwaway_keys
from streams.settings import Settings
from streams.signing import Keyring
from streams.stack import Stack, ephemeral_env
from streams.worker import WorkerProcess

# The models registered for the session; the last one serves.
MODELS = ("hog",)


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> dict[str, str]:
    """The SECMLOPS_* variables of the session's stack (pass them to subprocesses).

    Fresh keys every session: frame signing, and a model signing key pair.
    """
    keys = {**throwaway_keys(), "SECMLOPS_MODEL_NAME": "pedestrian-test"}
    if os.environ.get("SECMLOPS_KAFKA_BOOTSTRAP"):
        return keys
    return {**ephemeral_env(tmp_path_factory.mktemp("stack")), **keys}


@pytest.fixture(scope="session")
def settings(env) -> Settings:
    return Settings.from_env({**os.environ, **env})


@pytest.fixture(scope="session")
def stack(settings):
    """The running stack; stopped (with nothing left behind) at the end of the session."""
    stack = Stack(settings)
    stack.up(progress=False)
    list(setup_models(settings, which=MODELS))
    yield stack
    stack.down()


@pytest.fixture(scope="module")
def worker(stack, env, tmp_path_factory):
    """A ``secmlops worker`` process, ready: it has answered a warm-up frame."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = WorkerProcess(log, env={**env, "SECMLOPS_WORKER_BATCH_WAIT": "0.02"}).start()
    try:
        process.wait_ready(stack.settings)
        yield process
    finally:
        process.stop()


class TopicTail:
    """Reads a topic from its end at creation time: only what a test produced afterwards."""

    def __init__(self, settings: Settings, topic: str, *, from_start: bool = False) -> None:
        from kafka import TopicPartition

        from streams.clients import consumer

        self._consumer = consumer(settings)
        partitions = [
            TopicPartition(topic, p) for p in sorted(self._consumer.partitions_for_topic(topic))
        ]
        self._consumer.assign(partitions)
        if from_start:
            self._consumer.seek_to_beginning(*partitions)
        else:
            self._consumer.seek_to_end(*partitions)
        for tp in partitions:
            self._consumer.position(tp)

    def collect(self, keep, count: int, timeout_s: float = 60.0) -> list:
        """Decoded events for which ``keep(event)`` holds, in partition order, until ``count``
        (each signal of a ``signals/1`` record on its own)."""
        import time

        from streams.events import Signals, decode

        found: list = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            for records in self._consumer.poll(timeout_ms=200).values():
                events = [decode(r.value) for r in records]
                # A signals/1 record is read as the signals it carries.
                events = [s for e in events for s in (e.signals if isinstance(e, Signals) else [e])]
                found += [e for e in events if keep(e)]
        return found

    def close(self) -> None:
        self._consumer.close()


def collect_from(tails: list[TopicTail], keep, count: int, timeout_s: float = 120.0) -> list:
    """Like :meth:`TopicTail.collect` over several topics at once (e.g. every outcome topic)."""
    import time

    found: list = []
    deadline = time.monotonic() + timeout_s
    while len(found) < count and time.monotonic() < deadline:
        for reader in tails:
            found += reader.collect(keep, count - len(found), 0.2)
    return found


@pytest.fixture
def tail(stack):
    """Factory: ``tail(topic)`` starts reading ``topic`` from now on."""
    tails: list[TopicTail] = []

    def make(topic: str) -> TopicTail:
        tails.append(TopicTail(stack.settings, topic))
        return tails[-1]

    yield make
    for t in tails:
        t.close()


@pytest.fixture(scope="session")
def keyring(settings) -> Keyring:
    """The session's frame-signing keys (the worker verifies with the same)."""
    return Keyring.from_settings(settings)


def secmlops(env: dict[str, str], *args: str, check: bool = True, timeout: float = 300):
    """Run the ``secmlops`` command line in a subprocess with ``env`` added to the environment."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def gate_holding_env(env: dict[str, str], deadline_s: float) -> dict[str, str]:
    """Worker settings under which every prediction waits in the gate for ``deadline_s``:
    the gate requires a monitor (``drift.image``) that no worker runs."""
    return {
        **env,
        "SECMLOPS_MONITORS": "integrity",
        "SECMLOPS_GATE_REQUIRE": "integrity,drift.image",
        "SECMLOPS_GATE_DEADLINE": str(deadline_s),
    }


def send_until_predicted(settings: Settings, keyring: Keyring, frames: list) -> None:
    """Send ``frames`` and wait until the detector has predicted every one of them."""
    from producers.frames import FrameSender
    from streams.outcome_reader import OutcomeReader

    ids = {frame.frame_id for frame in frames}
    with OutcomeReader(settings) as predictions:
        with FrameSender(settings, keyring) as sender:
            for frame in frames:
                sender.send(frame)
        assert predictions.wait(ids, timeout_s=120).count == len(ids)


def send_until_decided(settings: Settings, keyring: Keyring, frames: list):
    """Send ``frames`` and return their terminal outcomes (trusted or quarantined), once
    each has one or after two minutes."""
    from producers.frames import FrameSender
    from streams.outcome_reader import OutcomeReader

    with OutcomeReader(settings, terminal=True) as reader:
        with FrameSender(settings, keyring) as sender:
            for frame in frames:
                sender.send(frame)
        return reader.wait({frame.frame_id for frame in frames}, timeout_s=120)
