"""The Faust app: before partitions are taken away, finish what is in flight, commit, then
revoke; and the settings that reach faust."""

from __future__ import annotations

import asyncio

import pytest

from streams.app import create_app, finish_commit_revoke
from streams.settings import Settings, SettingsError


def test_work_in_flight_finishes_before_the_commit_and_the_commit_before_the_revocation():
    log: list[str] = []

    async def finish() -> None:
        await asyncio.sleep(0.01)  # a batch still in the model
        log.append("finished")

    async def commit() -> bool:
        log.append("committed")
        return True

    async def revoke(revoked: set) -> None:
        log.append(f"revoked {sorted(revoked)}")

    asyncio.run(finish_commit_revoke([finish], commit, revoke, {1}))
    assert log == ["finished", "committed", "revoked [1]"]


def test_a_failure_in_flight_or_in_the_commit_does_not_stop_the_rebalance():
    log: list[str] = []

    async def broken() -> None:
        raise ConnectionError("broker gone")

    commits = iter([False, True])  # a periodic commit was in progress: commit again

    async def commit() -> bool:
        log.append("commit")
        return next(commits)

    async def revoke(revoked: set) -> None:
        log.append("revoked")

    asyncio.run(finish_commit_revoke([broken], commit, revoke, set()))
    assert log == ["commit", "commit", "revoked"]

    async def failing_commit() -> bool:
        raise RuntimeError("coordinator moved")

    log.clear()
    asyncio.run(finish_commit_revoke([], failing_commit, revoke, set()))
    assert log == ["revoked"]


def test_the_producer_linger_setting_reaches_faust():
    app = create_app(Settings.from_env({"SECMLOPS_WORKER_PRODUCER_LINGER": "0.02"}))
    assert app.conf.producer_linger == 0.02


def test_each_agents_queue_is_the_stream_buffer_setting_not_fausts_4096():
    # The queue bounds how far one agent runs ahead of another on the same records.
    assert create_app(Settings.from_env({})).conf.stream_buffer_maxsize == 128
    app = create_app(Settings.from_env({"SECMLOPS_WORKER_STREAM_BUFFER": "64"}))
    assert app.conf.stream_buffer_maxsize == 64
    with pytest.raises(SettingsError, match="SECMLOPS_WORKER_STREAM_BUFFER=4"):
        Settings.from_env({"SECMLOPS_WORKER_STREAM_BUFFER": "4"})
