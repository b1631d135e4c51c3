"""A minimal reader for TensorFlow's frozen ``GraphDef`` files, with no TensorFlow installed.

Why hand-written: the only other ways to parse a ``.pb`` graph are TensorFlow itself or
tensorboard's generated ``_pb2`` modules plus ``protobuf``, about 60 MB of dependencies for
what is some 150 lines of protobuf wire format.  The converters only need the nodes, their
inputs and their attributes (constant tensors, strings, numbers, shapes), so that is all
this reads.  The file is downloaded, so every length and offset is bounds-checked and any
malformed input raises a :class:`ValueError` that says where it went wrong.

Field numbers follow ``tensorflow/core/framework/{graph,node_def,attr_value,tensor,
tensor_shape,types}.proto``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GraphDef", "NodeDef", "parse_graphdef", "read_graphdef"]

# DataType enum → numpy dtype and the TensorProto field that holds typed values.
_DTYPES: dict[int, tuple[np.dtype, int]] = {
    1: (np.dtype("<f4"), 5),  # DT_FLOAT: float_val
    2: (np.dtype("<f8"), 6),  # DT_DOUBLE: double_val
    3: (np.dtype("<i4"), 7),  # DT_INT32: int_val
    4: (np.dtype("u1"), 7),  # DT_UINT8
    5: (np.dtype("<i2"), 7),  # DT_INT16
    6: (np.dtype("i1"), 7),  # DT_INT8
    7: (np.dtype(object), 8),  # DT_STRING: string_val
    9: (np.dtype("<i8"), 10),  # DT_INT64: int64_val
    10: (np.dtype(bool), 11),  # DT_BOOL: bool_val
    17: (np.dtype("<u2"), 7),  # DT_UINT16
    19: (np.dtype("<f2"), 13),  # DT_HALF: half_val (bit patterns)
    22: (np.dtype("<u4"), 16),  # DT_UINT32: uint32_val
    23: (np.dtype("<u8"), 17),  # DT_UINT64: uint64_val
}
_FIXED = {1: 8, 5: 4}  # wire type → byte width
_WIRE_OF = {"f": 5, "d": 1}  # unpacked float32 / float64 values
_MAX_DIMS = 64
_MAX_ELEMENTS = 1 << 26  # a constant filled from a few values may not claim more than this


@dataclass(frozen=True)
class NodeDef:
    """One graph node.

    ``attr`` maps names to plain values: ``bytes`` (s), ``int`` (i), ``float`` (f),
    ``bool`` (b), ``numpy.dtype`` or the raw enum ``int`` (type), ``tuple`` of ints with
    -1 for unknown sizes, or ``None`` for unknown rank (shape), ``numpy.ndarray`` (tensor),
    ``str`` (func name) and ``list`` of those (list).
    """

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    attr: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GraphDef:
    """The nodes of a graph, in file order, and a name index."""

    nodes: tuple[NodeDef, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {n.name: n for n in self.nodes})

    def __getitem__(self, name: str) -> NodeDef:
        return self._index[name]  # type: ignore[attr-defined]

    def __contains__(self, name: object) -> bool:
        return name in self._index  # type: ignore[attr-defined]


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it."""
    value = shift = 0
    while True:
        if pos >= end:
            raise ValueError(f"truncated varint at byte {pos}")
        if shift >= 70:
            raise ValueError(f"varint longer than 10 bytes at byte {pos}")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _signed(value: int) -> int:
    """Two's-complement int64 from a varint (negative int32/int64 use 10 bytes)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(buf: memoryview, what: str) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` of a message; length-delimited values are views."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError(f"{what}: field number 0 at byte {pos}")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            if size > end - pos:
                raise ValueError(f"{what}: field {number} needs {size} bytes, {end - pos} left")
            value, pos = buf[pos : pos + size], pos + size
        elif wire in _FIXED:
            width = _FIXED[wire]
            if width > end - pos:
                raise ValueError(f"{what}: truncated fixed{width * 8} field {number}")
            value, pos = buf[pos : pos + width], pos + width
        else:
            raise ValueError(f"{what}: unsupported wire type {wire} for field {number}")
        yield number, wire, value


def _text(raw: Any, what: str) -> str:
    if not isinstance(raw, memoryview):
        raise ValueError(f"{what}: expected a string")
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what}: not UTF-8 ({exc})") from None


def _scalars(wire: int, raw: Any, kind: str) -> list:
    """Values of one occurrence of a repeated scalar field, packed or not.

    ``kind``: ``"v"`` varint (signed), ``"u"`` varint (unsigned), ``"f"`` float32,
    ``"d"`` float64.
    """
    fmt = {"f": "<f", "d": "<d"}.get(kind)
    if fmt and wire == _WIRE_OF[kind]:
        return [struct.unpack(fmt, raw)[0]]
    if kind in "vu" and wire == 0:
        return [_signed(raw) if kind == "v" else raw]
    if wire != 2:
        raise ValueError(f"wire type {wire} does not fit a repeated {kind} field")
    if fmt:
        width = struct.calcsize(fmt)
        if len(raw) % width:
            raise ValueError(f"packed field of {len(raw)} bytes is not a multiple of {width}")
        return np.frombuffer(raw, dtype=fmt).tolist()
    out, pos, end = [], 0, len(raw)
    while pos < end:
        value, pos = _varint(raw, pos, end)
        out.append(_signed(value) if kind == "v" else value)
    return out


def _shape(buf: memoryview) -> tuple[int, ...] | None:
    """A ``TensorShapeProto``: sizes (-1 unknown), or ``None`` for unknown rank."""
    dims: list[int] = []
    unknown_rank = False
    for number, wire, value in _fields(buf, "TensorShapeProto"):
        if number == 2 and wire == 2:
            size = 0
            for n, w, v in _fields(value, "TensorShapeProto.Dim"):
                if n == 1 and w == 0:
                    size = _signed(v)
            dims.append(size)
            if len(dims) > _MAX_DIMS:
                raise ValueError(f"shape has more than {_MAX_DIMS} dimensions")
        elif number == 3 and wire == 0:
            unknown_rank = bool(value)
    return None if unknown_rank else tuple(dims)


def _tensor(buf: memoryview) -> np.ndarray:
    """A ``TensorProto`` as a numpy array (from ``tensor_content`` or the typed values)."""
    dtype_enum, shape, content = 0, (), None
    values: dict[int, list] = {}
    for number, wire, value in _fields(buf, "TensorProto"):
        if number == 1 and wire == 0:
            dtype_enum = value
        elif number == 2 and wire == 2:
            shape = _shape(value)
        elif number == 4 and wire == 2:
            content = value
        elif number in (5, 6, 7, 8, 10, 11, 13, 16, 17):
            kind = {5: "f", 6: "d", 10: "v", 16: "u", 17: "u"}.get(number, "v")
            if number == 8:
                if wire != 2:
                    raise ValueError("TensorProto.string_val must be length-delimited")
                values.setdefault(8, []).append(bytes(value))
            else:
                values.setdefault(number, []).extend(_scalars(wire, value, kind))
    if dtype_enum not in _DTYPES:
        raise ValueError(f"unsupported tensor dtype enum {dtype_enum}")
    dtype, typed_field = _DTYPES[dtype_enum]
    if shape is None or any(d < 0 for d in shape):
        raise ValueError(f"constant tensor with unknown shape {shape}")
    count = math.prod(shape)
    if count > _MAX_ELEMENTS:
        raise ValueError(f"constant tensor of shape {shape} is implausibly large")
    if content is not None and dtype.kind != "O":
        if len(content) != count * dtype.itemsize:
            raise ValueError(
                f"tensor_content has {len(content)} bytes, shape {shape} of {dtype} needs "
                f"{count * dtype.itemsize}"
            )
        return np.frombuffer(content, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    typed = values.get(typed_field, [])
    if len(typed) > count:
        raise ValueError(f"{len(typed)} values for a tensor of shape {shape}")
    out = np.empty(count, dtype=dtype.newbyteorder("="))
    try:
        if dtype == np.float16:  # half_val holds the bit patterns
            typed = np.array(typed, dtype=np.uint16).view(np.float16).tolist()
        if not typed:
            out[...] = b"" if dtype.kind == "O" else 0
        else:  # TF semantics: fewer values than elements repeat the last one
            out[: len(typed)] = typed
            out[len(typed) :] = typed[-1]
    except (OverflowError, TypeError) as exc:
        raise ValueError(f"values do not fit a {dtype} tensor ({exc})") from None
    return out.reshape(shape)


def _attr(buf: memoryview, *, in_list: bool = False) -> Any:
    """An ``AttrValue`` (or, with ``in_list``, an ``AttrValue.ListValue``) as plain values."""
    result: Any = [] if in_list else None
    for number, wire, value in _fields(buf, "AttrValue"):
        if number == 1 and wire == 2 and not in_list:
            item: Any = _attr(value, in_list=True)
        elif number == 2 and wire == 2:
            item = bytes(value)
        elif number in (3, 4, 5, 6):
            items = _scalars(wire, value, "f" if number == 4 else "v" if number == 3 else "u")
            if not (in_list or items):
                raise ValueError(f"AttrValue field {number} is empty")
            if number == 5:
                items = [bool(t) for t in items]
            elif number == 6:
                items = [_DTYPES[t][0] if t in _DTYPES else t for t in items]
            item = items if in_list else items[-1]
        elif number == 7 and wire == 2:
            item = _shape(value)
        elif number == 8 and wire == 2:
            item = _tensor(value)
        elif number == (9 if in_list else 10) and wire == 2:  # func: NameAttrList, name only
            item = next((_text(v, "func name") for n, _, v in _fields(value, "func") if n == 1), "")
        else:
            continue
        if in_list:
            result.extend(item if isinstance(item, list) else [item])
        else:
            result = item
    return result


def _node(buf: memoryview) -> NodeDef:
    name = op = ""
    inputs: list[str] = []
    attr: dict[str, Any] = {}
    for number, wire, value in _fields(buf, "NodeDef"):
        if wire != 2:
            continue
        if number == 1:
            name = _text(value, "NodeDef.name")
        elif number == 2:
            op = _text(value, "NodeDef.op")
        elif number == 3:
            inputs.append(_text(value, "NodeDef.input"))
        elif number == 5:
            key, entry = "", None
            for n, w, v in _fields(value, "NodeDef.attr entry"):
                if n == 1 and w == 2:
                    key = _text(v, "attr key")
                elif n == 2 and w == 2:
                    entry = v
            try:
                attr[key] = _attr(entry) if entry is not None else None
            except ValueError as exc:
                raise ValueError(f"node {name!r} attr {key!r}: {exc}") from None
    if not name or not op:
        raise ValueError(f"node without a name or op (name={name!r}, op={op!r})")
    return NodeDef(name, op, tuple(inputs), attr)


def parse_graphdef(data: bytes) -> GraphDef:
    """Parse a serialised ``GraphDef``.

    Raises
    ------
    ValueError
        The bytes are not a well-formed ``GraphDef`` (the message says what and where).

    Examples
    --------
    >>> node = b"\\n\\x01x\\x12\\x05Const"  # name "x", op "Const"
    >>> g = parse_graphdef(b"\\n" + bytes([len(node)]) + node)
    >>> g["x"].op, len(g.nodes)
    ('Const', 1)
    >>> parse_graphdef(b"\\n\\x10abc")
    Traceback (most recent call last):
    ...
    ValueError: GraphDef: field 1 needs 16 bytes, 3 left
    """
    buf = memoryview(bytes(data))
    nodes = []
    for number, wire, value in _fields(buf, "GraphDef"):
        if number == 1:
            if wire != 2:
                raise ValueError(f"GraphDef.node has wire type {wire}, not a message")
            nodes.append(_node(value))
    if not nodes:
        raise ValueError("GraphDef has no nodes")
    return GraphDef(tuple(nodes))


def read_graphdef(path: str | Path) -> GraphDef:
    """Read and parse a ``.pb`` frozen graph file."""
    return parse_graphdef(Path(path).read_bytes())
