"""Event contracts: the schema of every record that crosses a Kafka topic.

Why one module: producers, agents and tests must agree byte for byte on what a
frame or a verdict looks like.  Each schema is a frozen ``msgspec.Struct``
with a version tag (``"frame/1"``), encoded as a compact MessagePack *array*
(field names are not repeated in every message).  Decoding is strict: unknown
schema tags, wrong types, out-of-range numbers, over-long strings and
oversized payloads are rejected with an :class:`InvalidEvent` that carries a
machine-readable ``reason`` for the dead-letter record.

Evolving a schema means adding a new tagged class (``"frame/2"``) and keeping
the old one decodable; never change the meaning of an existing tag.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import Meta

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_IMAGE_BYTES",
    "Alert",
    "Box",
    "Control",
    "DeadLetter",
    "Decision",
    "Event",
    "Frame",
    "InvalidEvent",
    "Prediction",
    "Quarantine",
    "Signal",
    "Signals",
    "Timing",
    "Truth",
    "decode",
    "encode",
    "new_id",
    "signals_in",
]

# Kafka's default max.message.bytes is 1 MiB + 12 bytes.  Events stay below it
# with room for the record overhead and headers; larger images travel by
# reference (claim-check), never inline.
MAX_EVENT_BYTES = 1_000_000
MAX_IMAGE_BYTES = 990_000
MAX_BOXES = 512
MAX_TEXT = 2_000
MAX_MAP_ENTRIES = 32

# --- constrained scalar types: the validation rules, in one place -----------

CameraId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
EventId = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}$")]
Name = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9._/-]{0,63}$")]
Version = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
TimestampNs = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Pixels = Annotated[int, Meta(ge=1, le=16_384)]
Coord = Annotated[float, Meta(ge=-16_384.0, le=32_768.0)]
Real = Annotated[float, Meta(ge=-1e9, le=1e9)]  # also rejects NaN and inf
Millis = Annotated[float, Meta(ge=0.0, le=3.6e6)]
Text = Annotated[str, Meta(max_length=MAX_TEXT)]
ShortText = Annotated[str, Meta(max_length=256)]
InlineImage = Annotated[bytes, Meta(max_length=MAX_IMAGE_BYTES)]
ParamValue = float | int | bool | ShortText
Params = Annotated[dict[ShortText, ParamValue], Meta(max_length=MAX_MAP_ENTRIES)]
Scores = Annotated[dict[Name, Real], Meta(max_length=MAX_MAP_ENTRIES)]

Severity = Literal["info", "warning", "critical"]
ImageEncoding = Literal["jpeg", "png"]
Action = Literal[
    "trust",
    "quarantine",
    "deadletter",
    "release",
    "purge",
    "promote",
    "rollback",
    "alert",
    "canary",
]
Command = Literal["promote", "rollback", "reload"]


class InvalidEvent(ValueError):
    """An event that must not be processed; ``reason`` is a short stable code.

    Reasons: ``oversized``, ``malformed`` (not MessagePack, or wrong shape),
    ``unknown_schema`` (a tag this version does not know), ``wrong_schema``
    (a valid event on the wrong topic), ``invalid`` (a field breaks a rule).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Event(msgspec.Struct, frozen=True, array_like=True, tag_field="schema"):
    """Base of all events; subclasses set ``tag`` to ``"<kind>/<version>"``."""


class Frame(Event, tag="frame/1"):
    """One camera image, keyed on Kafka by ``camera_id``.

    ``frame_id`` is globally unique; ``seq`` increases by one per frame of a
    camera, so gaps and replays are visible downstream.  The image travels
    inline in ``image``, or, when it is too large for a Kafka message, by
    reference: ``image_ref`` names a claim-check in Redis and ``image_sha256``
    binds the referenced bytes to this event.  ``signature`` is an
    HMAC-SHA256 over everything else (see :mod:`streams.signing`), made with
    the camera's key derived from key ``key_id``; both empty means unsigned.
    """

    frame_id: EventId
    camera_id: CameraId
    seq: Count
    capture_ts_ns: TimestampNs
    width: Pixels
    height: Pixels
    encoding: ImageEncoding
    image: InlineImage = b""
    image_ref: Annotated[str, Meta(pattern=r"^$|^[A-Za-z0-9:._-]{1,200}$")] = ""
    image_sha256: Annotated[str, Meta(pattern=r"^$|^[0-9a-f]{64}$")] = ""
    key_id: Annotated[str, Meta(pattern=r"^$|^[A-Za-z0-9._-]{1,64}$")] = ""
    signature: Annotated[bytes, Meta(max_length=32)] = b""

    def __post_init__(self) -> None:
        if bool(self.image) == bool(self.image_ref):
            raise ValueError("a frame carries its image either inline or by reference, not both")
        if self.image_ref and not self.image_sha256:
            raise ValueError("an image by reference needs image_sha256")
        if self.signature and (len(self.signature) != 32 or not self.key_id):
            raise ValueError("a signature is 32 bytes and names its key_id")


class Truth(Event, tag="truth/1"):
    """What a red-team drill did to a frame.  Only the scorer may read these.

    ``injections`` is empty for an untouched frame.  ``params`` holds each
    injection's parameters as ``"<injection>.<name>"``.  ``delivered`` is
    false for a frame the drill dropped on purpose.
    """

    frame_id: EventId
    camera_id: CameraId
    seq: Count
    capture_ts_ns: TimestampNs
    injections: Annotated[list[Name], Meta(max_length=16)] = []
    params: Params = {}
    delivered: bool = True


class Box(msgspec.Struct, frozen=True, array_like=True):
    """An axis-aligned detection in pixel coordinates of the original frame."""

    x1: Coord
    y1: Coord
    x2: Coord
    y2: Coord
    score: Real

    def __post_init__(self) -> None:
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError("box corners are inverted (x2 < x1 or y2 < y1)")


class Timing(msgspec.Struct, frozen=True, array_like=True):
    """Where a frame's time went inside the detector agent, in milliseconds."""

    queue_ms: Millis = 0.0
    decode_ms: Millis = 0.0
    infer_ms: Millis = 0.0
    post_ms: Millis = 0.0


class Prediction(Event, tag="prediction/1"):
    """The detector's output for one frame, tagged with the model that made it."""

    frame_id: EventId
    camera_id: CameraId
    seq: Count
    capture_ts_ns: TimestampNs
    model: Name
    model_version: Version
    boxes: Annotated[list[Box], Meta(max_length=MAX_BOXES)]
    timing: Timing
    processed_ts_ns: TimestampNs
    #: The frame record it was made from, ``partition:offset`` of ``pds.frames`` ("" when
    #: not read from Kafka): the same record read again is the same delivery, while a
    #: replayed frame is a new record with the same ``frame_id``.
    delivery: ShortText = ""


def delivery_of(partition: int, offset: int) -> str:
    """How a record of ``pds.frames`` is named in ``Prediction.delivery`` and by monitors."""
    return f"{partition}:{offset}"


class Signal(Event, tag="signal/1"):
    """One monitor's score for one frame; ``alarm`` when it crosses ``threshold``."""

    frame_id: EventId
    camera_id: CameraId
    seq: Count
    monitor: Name
    score: Real
    threshold: Real
    alarm: bool
    ts_ns: TimestampNs
    model_version: Version | None = None
    reason: Text = ""
    #: The frame record scored, as ``Prediction.delivery`` ("" when not read from Kafka):
    #: the gate lets a signal wait for its prediction until the detector is past that record.
    delivery: ShortText = ""


#: Signals in one ``signals/1`` record (its producer also keeps it well under MAX_EVENT_BYTES:
#: :func:`streams.monitoring.pack_signals`).
MAX_SIGNALS = 256


class Signals(Event, tag="signals/1"):
    """Signals of one monitor for a batch of one camera's frames, in one record.

    Why not one record per signal: with every monitor on that was eight records a
    frame, and producing and consuming them cost a 2-core worker about a tenth of
    its throughput (docs/benchmarks.md).  Consumers read ``signal/1`` records
    too (:func:`signals_in`).
    """

    signals: Annotated[list[Signal], Meta(min_length=1, max_length=MAX_SIGNALS)]


def signals_in(event: Event) -> list[Signal]:
    """The signals an event of ``pds.signals`` carries (a ``signals/1`` or a ``signal/1``).

    Raises
    ------
    InvalidEvent
        ``wrong_schema`` for any other event.
    """
    if isinstance(event, Signals):
        return list(event.signals)
    if isinstance(event, Signal):
        return [event]
    raise InvalidEvent("wrong_schema", f"got {type(event).__name__}, expected signals")


class Quarantine(Event, tag="quarantine/1"):
    """A frame held back from consumers, with the evidence for a reviewer."""

    frame_id: EventId
    camera_id: CameraId
    seq: Count
    model_version: Version
    reasons: Annotated[list[Name], Meta(max_length=MAX_MAP_ENTRIES)]
    scores: Scores
    ts_ns: TimestampNs
    thumbnail_ref: ShortText = ""
    delivery: ShortText = ""  # as Prediction.delivery: which record of a replayed frame id


class Alert(Event, tag="alert/1"):
    """Something a human should see, covering a range of a camera's frames."""

    alert_id: EventId
    ts_ns: TimestampNs
    severity: Severity
    source: Name
    message: Text
    camera_id: CameraId | None = None
    first_seq: Count | None = None
    last_seq: Count | None = None
    evidence: Params = {}


class Decision(Event, tag="decision/1"):
    """An audited action by a policy agent or an operator."""

    decision_id: EventId
    ts_ns: TimestampNs
    action: Action
    subject: ShortText  # a frame id or a model version
    actor: ShortText
    reason: Text
    camera_id: CameraId | None = None


class Control(Event, tag="control/1"):
    """A command broadcast to every agent, such as switching the model version."""

    command_id: EventId
    ts_ns: TimestampNs
    command: Command
    model: Name
    version: Version
    actor: ShortText
    reason: Text = ""


class DeadLetter(Event, tag="deadletter/1"):
    """An input that could not be processed, and why; nothing is dropped silently."""

    ts_ns: TimestampNs
    source_topic: ShortText
    partition: Annotated[int, Meta(ge=-1)]
    offset: Annotated[int, Meta(ge=-1)]
    reason: Name
    detail: Text
    payload_size: Count
    payload_sha256: Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
    payload_head: Annotated[bytes, Meta(max_length=256)] = b""
    key: Annotated[bytes, Meta(max_length=256)] | None = None
    frame_id: EventId | None = None


AnyEvent = (
    Frame
    | Truth
    | Prediction
    | Signal
    | Signals
    | Quarantine
    | Alert
    | Decision
    | Control
    | DeadLetter
)
E = TypeVar("E", bound=Event)

_encoder = msgspec.msgpack.Encoder()
_any_decoder = msgspec.msgpack.Decoder(AnyEvent)


def new_id() -> str:
    """A fresh, globally unique event id (128 random bits as 32 hex digits)."""
    return uuid.uuid4().hex


def encode(event: Event) -> bytes:
    """Serialise an event, checking it against its own schema first.

    msgspec validates on decode, not on construction, so the encoded bytes are
    decoded once more here: a producer learns at once, with the field named,
    that it built an event its consumers would reject.  The check costs a few
    microseconds per event (bytes fields are copied, not parsed).

    Raises
    ------
    InvalidEvent
        ``oversized`` or ``invalid``, as :func:`decode` would.
    """
    data = _encoder.encode(event)
    decode(data, type(event))
    return data


def _classify(error: str) -> str:
    """Map a msgspec validation message to a dead-letter reason code."""
    if error.endswith("at `$[0]`"):  # the schema tag itself
        return "unknown_schema" if error.startswith("Invalid value") else "malformed"
    if error.startswith("Expected `array`") and "`$" not in error:
        return "malformed"  # not an event at all, e.g. a bare number or map
    return "invalid"


def decode(data: bytes, expected: type[E] | None = None) -> E:
    """Parse and validate one event.

    Parameters
    ----------
    data
        The raw Kafka record value.
    expected
        The schema the topic carries; a valid event of another kind is
        rejected with reason ``wrong_schema``.

    Raises
    ------
    InvalidEvent
        With ``reason`` set to one of the codes listed on the class.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidEvent("malformed", f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_EVENT_BYTES:
        raise InvalidEvent("oversized", f"{len(data)} bytes > {MAX_EVENT_BYTES}")
    try:
        event = _any_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(_classify(str(exc)), str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec lets bad UTF-8 through
        raise InvalidEvent("malformed", str(exc)) from None
    if expected is not None and not isinstance(event, expected):
        raise InvalidEvent(
            "wrong_schema", f"got {type(event).__name__}, this topic carries {expected.__name__}"
        )
    return event  # type: ignore[return-value]
