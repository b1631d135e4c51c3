"""A red-team drill: the injections of one replay, applied frame by frame."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from producers.injection.natural import NATURAL
from producers.injection.spec import InjectionSpec, SpecError
from producers.sources import SourceFrame

__all__ = ["Drill"]


class Drill:
    """Decides, for each source frame, which injections apply and applies the pixel ones.

    Pixel injections (natural shifts, then adversarial attacks) change the
    image before it is encoded; integrity injections (unsigned, forged,
    replay, frozen, drop, reorder) are carried out by the replayer on the
    event and its delivery.  Model drills (``degrade``) act on the model
    store through ``model_drill``, once, when the replay reaches their first
    frame.  The adversary, and with it torch, is only loaded when an
    adversarial injection first applies.
    """

    def __init__(
        self,
        specs: Sequence[InjectionSpec],
        *,
        adversary: Callable[[], Any] | None = None,
        model_drill: Callable[[InjectionSpec], Any] | None = None,
        prepared: dict[tuple[str | None, int], tuple[np.ndarray, dict[str, float]]] | None = None,
    ) -> None:
        self.specs = list(specs)
        self._make_adversary = adversary
        self._adversary: Any = None
        self._model_drill = model_drill
        self._started: set[int] = set()
        # frames attacked ahead of the replay, by (camera, frame); may be shared by drills
        self._prepared = {} if prepared is None else prepared
        if model_drill is None and any(s.family == "model" for s in self.specs):
            raise SpecError(
                "a degrade drill promotes a model version: it needs the model store "
                "(secmlops replay and secmlops eval provide it)"
            )

    def __bool__(self) -> bool:
        return bool(self.specs)

    def active(self, camera_id: str, frame: int) -> list[InjectionSpec]:
        return [spec for spec in self.specs if spec.covers(camera_id, frame)]

    def start_model_drills(self, active: Sequence[InjectionSpec]) -> None:
        """Carry out each active model drill the first time the replay reaches it."""
        for spec in active:
            if spec.family == "model" and id(spec) not in self._started:
                self._started.add(id(spec))
                if self._model_drill is not None:  # always, when a model spec exists
                    self._model_drill(spec)

    def max_lag(self) -> int:
        return max((int(s.params["lag"]) for s in self.specs if s.type == "replay"), default=0)

    def prepare(self, frames: Iterable[SourceFrame], *, progress: bool = True) -> int:
        """Compute the adversarial frames ahead of the replay; how many there are.

        An attack takes seconds per frame on a CPU.  Computed inline, it
        stalls a paced replay, whose later frames then go out late and in a
        burst (stale, to the integrity monitor), and it makes the pipeline's
        throughput the attacker's.  Prepared frames are kept in memory
        (a 640×360 frame is 0.7 MB) and used by :meth:`perturb`.
        """
        wanted = [
            frame
            for frame in frames
            if any(s.family == "adversarial" for s in self.active(frame.camera_id, frame.number))
        ]
        bar = tqdm(wanted, desc="attacks", unit="frame", disable=not progress, leave=False)
        for frame in bar:
            active = self.active(frame.camera_id, frame.number)
            key = (frame.camera_id, frame.number)
            if key in self._prepared or any(s.type == "frozen" for s in active):
                continue  # done already; or frozen (the replayer substitutes the image first)
            self._prepared[key] = self._perturb(frame.image, frame.number, active)
        return len(self._prepared)

    def perturb(
        self,
        image: np.ndarray,
        frame: int,
        active: Sequence[InjectionSpec],
        camera_id: str | None = None,
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Apply the active pixel injections; returns the image and the truth parameters."""
        prepared = self._prepared.get((camera_id, frame))
        if prepared is not None:
            return prepared
        return self._perturb(image, frame, active)

    def _perturb(
        self, image: np.ndarray, frame: int, active: Sequence[InjectionSpec]
    ) -> tuple[np.ndarray, dict[str, float]]:
        params: dict[str, float] = {}
        for spec in active:
            if spec.family == "natural":
                strength = spec.strength(frame)
                image = NATURAL[spec.type](image, strength, spec.params, frame)
                params[f"{spec.type}.strength"] = round(strength, 4)
            elif spec.family == "adversarial":
                image, info = self._adversary_instance().attack(image, spec)
                params.update({f"{spec.type}.{k}": v for k, v in info.items()})
            else:
                continue
            params.update({f"{spec.type}.{k}": v for k, v in spec.params.items()})
        return image, params

    def _adversary_instance(self) -> Any:
        if self._adversary is None:
            if self._make_adversary is None:
                from producers.injection.adversarial import Adversary

                self._adversary = Adversary()
            else:
                self._adversary = self._make_adversary()
        return self._adversary
