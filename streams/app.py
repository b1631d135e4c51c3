"""The Faust application: wiring only (settings, broker, topics), no processing logic.

Settings that matter for correctness, and why:

* ``processing_guarantee="at_least_once"``: faust's exactly-once mode has open
  bugs; outputs are flushed before offsets are committed, so a crash means a
  replay, never a loss.
* ``stream_wait_empty=False``: faust would otherwise wait, on every stop and
  rebalance, until every fetched record is acknowledged, and the gate keeps
  records unacknowledged until their frame is decided (:mod:`streams.held`).
  What is unacknowledged is simply read again; a stop first drains
  (:mod:`streams.drain`).
* :class:`App` commits what is acknowledged when partitions are about to be
  taken away, which faust 0.15 does not (see there).
* Agents run with ``concurrency=1``: with more, faust can commit past an
  event still in flight (faust-streaming#606) and lose it on a crash.
* Topics carry raw bytes and agents decode them with :mod:`streams.events`,
  so that a malformed record becomes a dead letter instead of being logged
  and skipped by faust's own deserialiser.
* Topics are created by :func:`streams.clients.ensure_topics` with their
  partition counts and retention; faust does not declare them.

And one setting for cost: ``stream_buffer_maxsize`` is
``SECMLOPS_WORKER_STREAM_BUFFER`` (128; faust's default is 4096).  Every agent
that reads a topic has a queue of its own, and faust stops fetching a
partition while any of them is nearly full.  So the queue's size bounds how
far one agent can run ahead of another on the same records, and the
monitors share each decoded frame only while they are that close
(:class:`streams.observations.ImageCache` holds a queue and two batches).  With
4096, on a backlog the faster monitors ran hundreds of frames ahead of the
slower ones, and each decoded the frames again (docs/benchmarks.md, "Gate
cost").
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import faust
from faust.types import TP, ConsumerT

from streams.settings import Settings
from streams.threads import thread_cpu_seconds
from streams.topics import TOPICS, TopicSpec

__all__ = ["App", "acknowledge", "app", "faust_topic", "keep_unacknowledged", "settings"]

log = logging.getLogger(__name__)


class App(faust.App):
    """faust's App, but it commits the acknowledged offsets before a rebalance takes them.

    Why: faust 0.15's consumer forgets the acknowledged offsets of the partitions
    being revoked before anything can commit them, and then commits nothing.  So
    every rebalance (a worker joining, leaving or stalling) handed the next owner
    everything acknowledged since the last periodic commit, and it predicted and
    decided those frames again (seen in ``tests/integration/test_rebalance.py``: 43
    of 60 frames decided twice).  The commit runs where aiokafka allows it, in the
    revocation callback, before faust's own handling; outputs are flushed first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Awaited before that commit: work in flight that acknowledges records once
        #: done (the detector's batches, :mod:`streams.inflight`) finishes first, so
        #: its records are committed here and not predicted again by the next owner.
        self.before_revoke: list[Callable[[], Awaitable[None]]] = []

    def _new_consumer(self) -> ConsumerT:
        consumer = super()._new_consumer()
        revoke = consumer.on_partitions_revoked

        async def commit_then_revoke(revoked: set[TP]) -> None:
            await finish_commit_revoke(self.before_revoke, consumer.commit, revoke, revoked)

        consumer.on_partitions_revoked = commit_then_revoke  # type: ignore[method-assign]
        return consumer


async def finish_commit_revoke(
    before: Iterable[Callable[[], Awaitable[None]]],
    commit: Callable[[], Awaitable[bool]],
    revoke: Callable[[set[TP]], Awaitable[None]],
    revoked: set[TP],
) -> None:
    """What :class:`App` does when partitions are about to be taken away, in this order:
    finish the work in flight, commit what is acknowledged, then faust's own revocation.
    Neither a failure of the first nor of the second stops the rebalance."""
    for finish in before:
        try:
            await finish()
        except Exception:  # what did not finish is read again by the next owner
            log.exception("work in flight failed before the rebalance")
    try:
        # A periodic commit in progress makes the first call wait and return
        # False without committing what was acknowledged since: commit again.
        if not await commit():
            await commit()
    except Exception:  # the rebalance must go on; at worst records are read again
        log.exception("could not commit before the rebalance")
    await revoke(revoked)


def keep_unacknowledged(events: Iterable[faust.EventT]) -> None:
    """Keep events unacknowledged after the ``take_events`` batch they came in, until
    :func:`acknowledge`: for work that ends after the loop body (the gate, the detector)."""
    for event in events:
        event.message.incref()  # take_events' own acknowledgement drops only its reference


def acknowledge(events: Iterable[faust.EventT]) -> None:
    """Acknowledge events kept by :func:`keep_unacknowledged`: once every reference is
    gone, the offset may be committed."""
    for event in events:
        message = event.message
        if event.ack():  # the last reference
            event.app.sensors.on_message_out(message.tp, message.offset, message)


def _credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    sec = settings.kafka_security
    context = None
    if sec.protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=sec.ssl_cafile)
        if sec.ssl_certfile:
            context.load_cert_chain(sec.ssl_certfile, sec.ssl_keyfile)
    if sec.protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=sec.sasl_username,
            password=sec.sasl_password,
            mechanism=sec.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: Settings) -> App:
    """A faust App for ``settings``; the worker uses the module-level :data:`app`."""
    return App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        processing_guarantee="at_least_once",
        store="memory://",
        datadir=str(settings.state_dir / "worker"),
        table_standby_replicas=0,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=settings.worker_fetch_bytes,
        stream_buffer_maxsize=settings.worker_stream_buffer,
        stream_wait_empty=False,
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_commit_interval=settings.worker_commit_interval_s,
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_s / 3),
        producer_acks=-1,
        producer_linger=settings.worker_producer_linger_s,
        web_host="127.0.0.1",
        web_port=settings.worker_web_port,
        web_bind="127.0.0.1",
    )


settings = Settings.from_env()
app = create_app(settings)


def faust_topic(*specs: TopicSpec) -> faust.TopicT:
    """The faust handle of one topic, or of several read as one stream, carrying raw bytes
    (see the module docstring).  Topics read together must be co-partitioned by camera id
    (streams/topics.py), so that one camera's events meet in one stream."""
    return app.topic(
        *(spec.name for spec in specs),
        partitions=specs[0].partitions if len(specs) == 1 else None,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )


frames_topic = faust_topic(TOPICS.frames)
predictions_topic = faust_topic(TOPICS.predictions)
deadletter_topic = faust_topic(TOPICS.deadletter)
control_topic = faust_topic(TOPICS.control)
signals_topic = faust_topic(TOPICS.signals)
alerts_topic = faust_topic(TOPICS.alerts)
trusted_topic = faust_topic(TOPICS.trusted)
quarantine_topic = faust_topic(TOPICS.quarantine)
# Monitors that judge a frame together with its prediction read both in one stream.
frames_and_predictions_topic = faust_topic(TOPICS.frames, TOPICS.predictions)
# The gate reads frames (kept as evidence in case they are quarantined), predictions and
# signals in one stream.
gate_input_topic = faust_topic(TOPICS.frames, TOPICS.predictions, TOPICS.signals)


@app.page("/threads/")
async def thread_cpu(web: Any, request: Any) -> Any:
    """CPU seconds so far by thread group (:mod:`streams.threads`), as JSON, on the
    worker's web port (``SECMLOPS_WORKER_WEB_PORT``, bound to 127.0.0.1)."""
    return web.json(thread_cpu_seconds())
