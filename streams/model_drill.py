"""The ``degrade`` drill: a degraded model version promoted on the live stack mid-replay.

Frame injections change what the cameras send; this one changes what serves.
When a replay reaches a ``degrade`` entry of its schedule, :class:`ModelDrill`
makes a validly signed, blinded copy of the serving version
(:func:`model_store.redteam.degrade`), registers it, gives it the serving
version's calibration (a release pipeline calibrates every version before it
serves) and promotes it, announced on ``pds.control`` like any promotion.
The model-health monitor and the rollback policy are then on their own: the
drill measures how long they take (``secmlops eval``'s ``by_type.degrade``).

:meth:`ModelDrill.restore` puts the version that served before the drill back
when the policy did not, so one drill never leaks into the next run.
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from model_store.errors import ModelStoreError
from model_store.redteam import degrade
from model_store.registry import Registry
from model_store.signing import Signer, Verifier
from producers.injection.spec import InjectionSpec
from streams.calibration import CalibrationStore
from streams.clients import redis_client
from streams.control import announce
from streams.settings import Settings

__all__ = ["ModelDrill"]

log = logging.getLogger(__name__)


class ModelDrill:
    """Carries out ``degrade`` injections against the registry of ``settings``.

    Call it with the spec when the replay reaches the spec's first frame
    (:class:`producers.injection.Drill` does); ``degraded`` lists the versions
    it promoted, in order.
    """

    def __init__(self, settings: Settings, *, actor: str = "red-team drill") -> None:
        self.settings = settings
        self.actor = actor
        self.registry = Registry(redis_client(settings), Verifier.from_settings(settings))
        self.model = settings.model_name
        try:
            self.original = self.registry.active(self.model)
        except RedisError as exc:
            raise ModelStoreError(
                f"a degrade drill needs the model registry at {settings.redis_url}: {exc}"
            ) from exc
        if self.original is None:
            raise ModelStoreError(f"no version of {self.model} serves: nothing to degrade")
        self.degraded: list[str] = []

    def __call__(self, spec: InjectionSpec) -> str:
        return self.promote_degraded(strength=spec.params.get("strength", 2.0))

    def promote_degraded(self, *, strength: float = 2.0) -> str:
        """A blinded copy of the serving version serves from now on; its version id."""
        good = self.registry.active(self.model)
        reason = f"red-team drill: a blinded copy (strength {strength:g}) of version {good}"
        artifact = degrade(
            self.registry.load(self.model, good),
            self.registry.verifier,
            Signer.from_settings(self.settings),
            mode="blind",
            strength=strength,
        )
        version = self.registry.register(self.model, artifact, actor=self.actor, reason=reason)
        calibrations = CalibrationStore(self.registry.client, self.model)
        meta = {"copied_from": good, "actor": self.actor}
        calibrations.save(version, calibrations.load(good), meta)
        self.registry.promote(self.model, version, actor=self.actor, reason=reason)
        announce(
            self.settings,
            command="promote",
            model=self.model,
            version=version,
            actor=self.actor,
            reason=reason,
        )
        self.degraded.append(version)
        log.info("drill: degraded version %s of %s promoted", version, self.model)
        return version

    def restore(self) -> bool:
        """Serve the version that served before the drill again; True when it had to."""
        if self.registry.active(self.model) == self.original:
            return False
        reason = "red-team drill over: the version that served before it is restored"
        self.registry.promote(self.model, self.original, actor=self.actor, reason=reason)
        announce(
            self.settings,
            command="promote",
            model=self.model,
            version=self.original,
            actor=self.actor,
            reason=reason,
        )
        return True
