"""Red-team injection: adversarial attacks, natural shifts and integrity attacks on a replay."""

from producers.injection.drill import Drill
from producers.injection.spec import InjectionSpec, SpecError, load_schedule, parse_spec

__all__ = ["Drill", "InjectionSpec", "SpecError", "load_schedule", "parse_spec"]
