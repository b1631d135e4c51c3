"""The broker's classpath is pinned, fetched once, and verified before the JVM sees it."""

from __future__ import annotations

import hashlib

import pytest

from streams.settings import Settings
from streams.stack.jars import KAFKA_VERSION, Jar, fetch_jars, read_lock
from streams.stack.process import StackError


def test_the_lock_pins_the_broker_and_a_logging_backend():
    jars = {jar.artifact: jar for jar in read_lock()}
    assert jars["kafka_2.13"].version == KAFKA_VERSION
    assert KAFKA_VERSION.startswith("4.1.")
    assert "log4j-slf4j-impl" in jars  # without a binding the broker logs nothing
    assert all(len(jar.sha256) == 64 and jar.size > 0 for jar in jars.values())


def _fake_repo(tmp_path, content=b"PK fake jar"):
    """A file:// Maven repository holding one jar, and its lock entry."""
    repo = tmp_path / "repo"
    jar = Jar("org.example", "thing", "1.0", hashlib.sha256(content).hexdigest(), len(content))
    path = repo / "org" / "example" / "thing" / "1.0" / jar.filename
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return repo, jar


def _settings(tmp_path, repo):
    return Settings.from_env(
        {"SECMLOPS_CACHE_DIR": str(tmp_path / "cache"), "SECMLOPS_MAVEN_REPO": f"file://{repo}"}
    )


def test_jars_are_downloaded_once_and_verified(tmp_path, monkeypatch):
    repo, jar = _fake_repo(tmp_path)
    monkeypatch.setattr("streams.stack.jars.read_lock", lambda: [jar])
    libs = fetch_jars(_settings(tmp_path, repo), progress=False)
    assert (libs / jar.filename).read_bytes() == b"PK fake jar"
    (repo / "org").rename(tmp_path / "gone")  # the repository vanishes: the cache serves
    assert fetch_jars(_settings(tmp_path, repo), progress=False) == libs


def test_a_download_with_the_wrong_checksum_is_refused(tmp_path, monkeypatch):
    repo, jar = _fake_repo(tmp_path)
    forged = Jar(jar.group, jar.artifact, jar.version, "0" * 64, jar.size)
    monkeypatch.setattr("streams.stack.jars.read_lock", lambda: [forged])
    with pytest.raises(StackError, match="sha256"):
        fetch_jars(_settings(tmp_path, repo), progress=False)
    assert not list((tmp_path / "cache").rglob("*.jar"))


def test_a_tampered_cached_jar_is_removed_and_reported(tmp_path, monkeypatch):
    repo, jar = _fake_repo(tmp_path)
    monkeypatch.setattr("streams.stack.jars.read_lock", lambda: [jar])
    libs = fetch_jars(_settings(tmp_path, repo), progress=False)
    (libs / jar.filename).write_bytes(b"PK evil")
    with pytest.raises(StackError, match="differs"):
        fetch_jars(_settings(tmp_path, repo), progress=False)
    assert not (libs / jar.filename).exists()


def test_an_unreachable_repository_is_a_clear_error(tmp_path, monkeypatch):
    _, jar = _fake_repo(tmp_path)
    monkeypatch.setattr("streams.stack.jars.read_lock", lambda: [jar])
    with pytest.raises(StackError, match="cannot download"):
        fetch_jars(_settings(tmp_path, tmp_path / "nowhere"), progress=False)
