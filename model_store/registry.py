"""The model registry in Redis: versions, the active pointer, history and an audit log.

Why Redis: every worker already reaches it, and it keeps the artifacts next
to the pointer, so a worker on any machine loads exactly the bytes that were
signed.  Keys (``NAME`` is a model name such as ``pedestrian``):

- ``secmlops:model:NAME:VERSION:{manifest,weights,signature}``: the artifact;
- ``secmlops:model:NAME:versions``: hash VERSION → registration record (JSON);
- ``secmlops:model:NAME:active``: the version that serves;
- ``secmlops:model:NAME:history``: list of activations, newest first;
- ``secmlops:audit``: a stream of every action: who, what, when, why.

Registration verifies the artifact first: nothing untrusted enters.  Every
change is one MULTI/EXEC transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from model_store.artifacts import Artifact
from model_store.errors import ModelNotFoundError, ModelStoreError, StaleRollbackError
from model_store.signing import Verifier

__all__ = ["AuditEntry", "Registry", "VersionInfo"]

_PREFIX = "secmlops:model:"
AUDIT_STREAM = "secmlops:audit"
AUDIT_MAXLEN = 100_000


@dataclass(frozen=True)
class VersionInfo:
    """A registered version: what it is and its standing."""

    name: str
    version: str
    architecture: str
    registered_at: float
    registered_by: str
    reason: str
    signer: str
    weights_sha256: str
    status: str  # "ok", or "bad" once rolled back from
    active: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class AuditEntry:
    ts: float
    actor: str
    action: str
    model: str
    version: str
    reason: str


class Registry:
    """Register, promote and roll back signed model versions."""

    def __init__(self, client: redis.Redis, verifier: Verifier) -> None:
        self.client = client
        self.verifier = verifier

    def _key(self, name: str, *parts: str) -> str:
        return _PREFIX + ":".join((name, *parts))

    def _audit(
        self, pipe: Any, actor: str, action: str, name: str, version: str, reason: str
    ) -> None:
        pipe.xadd(
            AUDIT_STREAM,
            {
                "ts": f"{time.time():.6f}",
                "actor": actor,
                "action": action,
                "model": name,
                "version": version,
                "reason": reason,
            },
            maxlen=AUDIT_MAXLEN,
            approximate=True,
        )

    def register(self, name: str, artifact: Artifact, *, actor: str, reason: str = "") -> str:
        """Verify and store ``artifact`` as the next version of ``name``; returns the version.

        Raises
        ------
        UntrustedModelError
            Unsigned, untrusted signer, or weights changed after signing.
        """
        artifact.verify(self.verifier)
        version = str(self.client.incr(self._key(name, "next_version")))
        record = {
            "architecture": artifact.manifest["architecture"],
            "registered_at": time.time(),
            "registered_by": actor,
            "reason": reason,
            "signer": artifact.signer,
            "weights_sha256": artifact.manifest["weights_sha256"],
            "status": "ok",
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.set(
            self._key(name, version, "manifest"), json.dumps(artifact.manifest, sort_keys=True)
        )
        pipe.set(self._key(name, version, "weights"), artifact.weights)
        pipe.set(
            self._key(name, version, "signature"),
            json.dumps({"signer": artifact.signer, "signature": artifact.signature.hex()}),
        )
        pipe.hset(self._key(name, "versions"), version, json.dumps(record))
        pipe.sadd(_PREFIX + "names", name)
        self._audit(pipe, actor, "register", name, version, reason)
        pipe.execute()
        return version

    def names(self) -> list[str]:
        return sorted(n.decode() for n in self.client.smembers(_PREFIX + "names"))

    def active(self, name: str) -> str | None:
        """The version that serves, or None before the first promotion."""
        value = self.client.get(self._key(name, "active"))
        return value.decode() if value else None

    def versions(self, name: str) -> list[VersionInfo]:
        records = self.client.hgetall(self._key(name, "versions"))
        active = self.active(name)
        infos = [
            VersionInfo(name=name, version=v.decode(), active=v.decode() == active, **json.loads(r))
            for v, r in records.items()
        ]
        return sorted(infos, key=lambda info: int(info.version))

    def info(self, name: str, version: str) -> VersionInfo:
        for info in self.versions(name):
            if info.version == version:
                return info
        raise ModelNotFoundError(f"model {name!r} has no version {version!r}")

    def artifact(self, name: str, version: str) -> Artifact:
        """The stored artifact, *not yet verified* (see :meth:`load`)."""
        manifest, weights, signature = self.client.mget(
            [self._key(name, version, part) for part in ("manifest", "weights", "signature")]
        )
        if manifest is None or weights is None:
            raise ModelNotFoundError(f"model {name!r} has no version {version!r}")
        sig = json.loads(signature) if signature else {"signer": "", "signature": ""}
        return Artifact(
            json.loads(manifest), weights, bytes.fromhex(sig["signature"]), sig["signer"]
        )

    def load(self, name: str, version: str) -> Artifact:
        """The artifact after verifying its signature and weights: safe to load."""
        artifact = self.artifact(name, version)
        artifact.verify(self.verifier)
        return artifact

    def history(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        return [json.loads(e) for e in self.client.lrange(self._key(name, "history"), 0, limit - 1)]

    def _activate(
        self,
        name: str,
        version: str,
        *,
        action: str,
        actor: str,
        reason: str,
        mark_bad: str | None = None,
    ) -> str | None:
        self.info(name, version)  # raises if unknown
        previous = self.active(name)
        entry = {
            "ts": time.time(),
            "version": version,
            "previous": previous,
            "action": action,
            "actor": actor,
            "reason": reason,
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self._key(name, "active"), version)
        pipe.lpush(self._key(name, "history"), json.dumps(entry))
        if mark_bad is not None:
            record = json.loads(self.client.hget(self._key(name, "versions"), mark_bad))
            record["status"] = "bad"
            pipe.hset(self._key(name, "versions"), mark_bad, json.dumps(record))
        self._audit(pipe, actor, action, name, version, reason)
        pipe.execute()
        return previous

    def promote(self, name: str, version: str, *, actor: str, reason: str = "") -> str | None:
        """Make ``version`` the one that serves (after re-verifying it); returns the previous."""
        self.load(name, version)
        return self._activate(name, version, action="promote", actor=actor, reason=reason)

    def last_good(self, name: str) -> str | None:
        """The most recent previously active version that is not the current one nor bad."""
        current = self.active(name)
        status = {info.version: info.status for info in self.versions(name)}
        for entry in self.history(name, limit=1000):
            version = entry["version"]
            if version != current and status.get(version) == "ok":
                return version
        return None

    def rollback(
        self,
        name: str,
        *,
        actor: str,
        reason: str,
        to: str | None = None,
        expected: str | None = None,
    ) -> tuple[str, str]:
        """Serve the last known-good version again and mark the current one bad.

        Returns ``(from_version, to_version)``.  With ``expected``, only roll
        back if that version still serves (a policy judged it; if someone
        already moved on, there is nothing to undo): raises
        :class:`StaleRollbackError` otherwise.
        """
        current = self.active(name)
        if current is None:
            raise ModelStoreError(f"model {name!r} has no active version to roll back from")
        if expected is not None and current != expected:
            raise StaleRollbackError(
                f"model {name!r}: version {expected} no longer serves ({current} does)"
            )
        target = to or self.last_good(name)
        if target is None:
            raise ModelStoreError(f"model {name!r} has no earlier good version to roll back to")
        self.load(name, target)
        self._activate(
            name, target, action="rollback", actor=actor, reason=reason, mark_bad=current
        )
        return current, target

    def canary(self, name: str) -> dict[str, Any] | None:
        """The version running in shadow before it serves, or None: ``{version, until, ...}``."""
        raw = self.client.get(self._key(name, "canary"))
        return json.loads(raw) if raw else None

    def start_canary(
        self, name: str, version: str, *, seconds: float, actor: str, reason: str = ""
    ) -> dict[str, Any]:
        """Run ``version`` in shadow beside the serving one for ``seconds``, then let it serve.

        The detector agents run it on the same frames as the serving version;
        the policy agent promotes it when the period is over, unless its
        predictions departed from the serving version's (then it is marked
        bad).  Raises :class:`ModelStoreError` if it already serves or does
        not verify.
        """
        self.load(name, version)
        serving = self.active(name)
        if version == serving:
            raise ModelStoreError(f"{name}@{version} already serves; nothing to canary")
        now = time.time()
        record = {
            "version": version,
            "serving": serving,
            "started": now,
            "until": now + seconds,
            "actor": actor,
            "reason": reason,
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self._key(name, "canary"), json.dumps(record))
        self._audit(pipe, actor, "canary", name, version, reason or f"shadow for {seconds:g} s")
        pipe.execute()
        return record

    def end_canary(
        self, name: str, *, promote: bool, actor: str, reason: str
    ) -> dict[str, Any] | None:
        """Finish the canary: promote its version, or mark it bad.  Returns the canary record,
        or None when there was none (another worker finished it first)."""
        raw = self.client.getdel(self._key(name, "canary"))
        if raw is None:
            return None
        record = json.loads(raw)
        version = record["version"]
        if promote:
            self.promote(name, version, actor=actor, reason=reason)
        else:
            info = json.loads(self.client.hget(self._key(name, "versions"), version))
            info["status"] = "bad"
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(self._key(name, "versions"), version, json.dumps(info))
            self._audit(pipe, actor, "canary-abort", name, version, reason)
            pipe.execute()
        return record

    def audit(self, count: int = 50) -> list[AuditEntry]:
        """The newest audit entries, newest first."""
        entries = self.client.xrevrange(AUDIT_STREAM, count=count)
        return [
            AuditEntry(
                ts=float(fields[b"ts"]),
                actor=fields[b"actor"].decode(),
                action=fields[b"action"].decode(),
                model=fields[b"model"].decode(),
                version=fields[b"version"].decode(),
                reason=fields[b"reason"].decode(),
            )
            for _, fields in entries
        ]
