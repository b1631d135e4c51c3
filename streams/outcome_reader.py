"""Read the outcomes of frames one has just sent.

Two levels: the detector's (``pds.predictions`` and ``pds.deadletter``, the
default), or the terminal ones after the gate (``terminal=True``:
``pds.trusted``, ``pds.quarantine`` and ``pds.deadletter``).  Used by the
demo, the benchmarks and the integration tests: open the reader *before*
sending, so that it starts at the current end of the topics and sees only
new records, then wait until every expected frame has its outcome.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import TracebackType

from tqdm import tqdm

from streams.clients import tail
from streams.events import DeadLetter, InvalidEvent, Prediction, Quarantine, decode
from streams.settings import Settings
from streams.topics import TOPICS

__all__ = ["OutcomeReader", "Outcomes"]


@dataclass
class Outcomes:
    """What came back: predictions (trusted ones, after the gate) and quarantined frames by
    frame id, dead letters in arrival order."""

    predictions: dict[str, Prediction] = field(default_factory=dict)
    quarantined: dict[str, Quarantine] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    unreadable: int = 0

    @property
    def count(self) -> int:
        """Frames (or undecodable payloads) with at least one outcome."""
        return len(self.predictions.keys() | self.quarantined.keys()) + len(self.dead_letters)


class OutcomeReader:
    """Tails the outcome topics from their current ends (see the module docstring)."""

    def __init__(self, settings: Settings, *, terminal: bool = False) -> None:
        specs = (TOPICS.trusted, TOPICS.quarantine) if terminal else (TOPICS.predictions,)
        self._consumer = tail(settings, *specs, TOPICS.deadletter, client_id="secmlops-outcomes")

    def wait(
        self,
        frame_ids: set[str],
        *,
        dead_letter_hashes: set[str] = frozenset(),  # type: ignore[assignment]
        timeout_s: float = 60.0,
        progress: bool = False,
        enough: int | None = None,
    ) -> Outcomes:
        """Collect outcomes until each frame id and each payload hash has one (or ``enough``
        of them have), or timeout.

        Frames that never decoded have no frame id; their dead letters are
        matched by the sha256 of the payload instead.
        """
        outcomes = Outcomes()
        expected = len(frame_ids) + len(dead_letter_hashes)
        if enough is not None:
            expected = min(expected, enough)
        deadline = time.monotonic() + timeout_s
        seen_dead: set[str] = set()
        with tqdm(total=expected, desc="outcomes", unit="frame", disable=not progress) as bar:
            while outcomes.count < expected and time.monotonic() < deadline:
                batches = self._consumer.poll(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        before = outcomes.count
                        self._absorb(
                            record.value, frame_ids, dead_letter_hashes, seen_dead, outcomes
                        )
                        bar.update(outcomes.count - before)
        return outcomes

    @staticmethod
    def _absorb(
        value: bytes,
        frame_ids: set[str],
        hashes: set[str],
        seen_dead: set[str],
        outcomes: Outcomes,
    ) -> None:
        try:
            event = decode(value)
        except InvalidEvent:
            outcomes.unreadable += 1
            return
        if isinstance(event, Prediction | Quarantine) and event.frame_id in frame_ids:
            if event.frame_id in outcomes.predictions or event.frame_id in outcomes.quarantined:
                outcomes.duplicates += 1
            if isinstance(event, Prediction):
                outcomes.predictions[event.frame_id] = event
            else:
                outcomes.quarantined[event.frame_id] = event
        elif isinstance(event, DeadLetter):
            ident = event.frame_id if event.frame_id in frame_ids else event.payload_sha256
            if ident not in frame_ids and ident not in hashes:
                return
            if ident in seen_dead:
                outcomes.duplicates += 1
                return
            seen_dead.add(ident)
            outcomes.dead_letters.append(event)

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> OutcomeReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
