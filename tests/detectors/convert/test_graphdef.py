"""The hand-written GraphDef reader: the real SSDLite graph, hand-made messages, bad bytes."""

from __future__ import annotations

import contextlib
import struct
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.convert.graphdef import parse_graphdef, read_graphdef


# A tiny protobuf encoder, to build messages the reader must understand.
def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number, value):
    """``value``: int → varint; bytes → length-delimited; ('f32', x) → fixed32 float."""
    if isinstance(value, tuple):
        return varint(number << 3 | 5) + struct.pack("<f", value[1])
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def shape(*dims):
    return b"".join(field(2, field(1, d)) for d in dims)


def tensor(dtype, dims, *parts):
    return field(1, dtype) + field(2, shape(*dims)) + b"".join(parts)


def node(name, op, inputs=(), **attrs):
    body = field(1, name.encode()) + field(2, op.encode())
    body += b"".join(field(3, i.encode()) for i in inputs)
    for key, value in attrs.items():
        body += field(5, field(1, key.encode()) + field(2, value))
    return field(1, body)


def graph(*nodes):
    return b"".join(nodes) + field(4, field(1, 27))  # versions { producer: 27 }, ignored


def test_the_real_graph_has_every_node_and_op_of_ssdlite_mobilenetv2(ssdlite_graph):
    g = read_graphdef(ssdlite_graph)
    ops = Counter(n.op for n in g.nodes)
    assert len(g.nodes) == 2790
    assert ops["Conv2D"] == 55 and ops["DepthwiseConv2dNative"] == 33
    assert ops["FusedBatchNorm"] == 76 and ops["BiasAdd"] == 12 and ops["Relu6"] == 59
    assert ops["Const"] == 1163 and ops["NonMaxSuppressionV3"] == 1 and ops["Sigmoid"] == 1
    assert {"ResizeBilinear", "TensorArrayV3", "Exit", "TopKV2"} <= set(ops)
    image = g["image_tensor"]
    assert image.op == "Placeholder" and image.attr["dtype"] == np.uint8
    assert image.attr["shape"] == (-1, -1, -1, 3)
    assert "detection_boxes" in g and "no_such_node" not in g


def test_real_constants_decode_with_their_dtype_shape_and_values(ssdlite_graph):
    g = read_graphdef(ssdlite_graph)
    weights = g["FeatureExtractor/MobilenetV2/Conv/weights"].attr["value"]
    assert weights.dtype == np.float32 and weights.shape == (3, 3, 3, 32)
    assert np.isfinite(weights).all() and weights.std() > 0
    assert g["Preprocessor/mul/x"].attr["value"] == np.float32(2 / 255)
    size = g["Preprocessor/map/while/ResizeImage/stack"].attr["value"]
    assert size.dtype == np.int32 and size.tolist() == [300, 300]
    floats = [n.attr["value"] for n in g.nodes if n.op == "Const" and n.attr["dtype"] == np.float32]
    assert sum(v.size for v in floats) > 3_000_000  # the ~3.1 M weights


def test_real_attributes_of_every_kind_decode(ssdlite_graph):
    g = read_graphdef(ssdlite_graph)
    conv = g["FeatureExtractor/MobilenetV2/Conv/Conv2D"]
    assert conv.attr["strides"] == [1, 2, 2, 1] and conv.attr["padding"] == b"SAME"
    assert (
        conv.attr["T"] == np.float32
        and conv.inputs[0] == "FeatureExtractor/MobilenetV2/MobilenetV2/input"
    )
    bn = g["FeatureExtractor/MobilenetV2/Conv/BatchNorm/FusedBatchNorm"]
    assert bn.attr["epsilon"] == pytest.approx(0.001) and bn.attr["is_training"] is False
    resize = g["Preprocessor/map/while/ResizeImage/resize_images/ResizeBilinear"]
    assert resize.attr["align_corners"] is False


def const(name, *tensor_args, **attrs):
    return node(name, "Const", value=field(8, tensor(*tensor_args)), **attrs)


def test_hand_made_messages_decode_like_tensorflow():
    data = graph(
        const("packed", 1, (2, 2), field(5, struct.pack("<4f", 1.5, -2, 3, 4)), dtype=field(6, 1)),
        const("unpacked_fill", 1, (3,), field(5, ("f32", 7.0)), field(5, ("f32", 8.0))),
        const("ints", 3, (3,), field(7, varint(-1) + varint(5))),
        const("int64", 9, (1,), field(10, -(1 << 40))),
        const("zeros", 1, (2, 3)),
        const("half", 19, (2,), field(13, varint(0x3C00) + varint(0xC000))),
        const("raw", 4, (2, 2), field(4, bytes([1, 2, 3, 255]))),
        const("text", 7, (2,), field(8, b"ab"), field(8, b"")),
        const("flags", 10, (2,), field(11, varint(1) + varint(0))),
        node(
            "add", "Add", ("packed", "^zeros"), i=field(3, -3), f=field(4, ("f32", 0.5)),
            b=field(5, 1), s=field(2, b"x"), shape=field(7, shape(-1, 4)),
            unknown=field(7, field(3, 1)),
            lst=field(1, field(3, varint(1) + varint(2)) + field(2, b"a") + field(2, b"b")),
            types=field(1, field(6, varint(1) + varint(3))),
        ),
    )  # fmt: skip
    g = parse_graphdef(data)
    assert [n.name for n in g.nodes][:2] == ["packed", "unpacked_fill"]
    np.testing.assert_array_equal(g["packed"].attr["value"], [[1.5, -2], [3, 4]])
    assert g["packed"].attr["dtype"] == np.float32
    np.testing.assert_array_equal(g["unpacked_fill"].attr["value"], [7, 8, 8])  # last repeats
    assert g["ints"].attr["value"].tolist() == [-1, 5, 5]
    assert g["int64"].attr["value"].tolist() == [-(1 << 40)]
    assert g["zeros"].attr["value"].shape == (2, 3) and not g["zeros"].attr["value"].any()
    assert g["half"].attr["value"].dtype == np.float16
    assert g["half"].attr["value"].tolist() == [1.0, -2.0]
    assert g["raw"].attr["value"].tolist() == [[1, 2], [3, 255]]
    assert g["text"].attr["value"].tolist() == [b"ab", b""]
    assert g["flags"].attr["value"].tolist() == [True, False]
    add = g["add"]
    assert add.inputs == ("packed", "^zeros")
    assert (add.attr["i"], add.attr["f"], add.attr["b"], add.attr["s"]) == (-3, 0.5, True, b"x")
    assert add.attr["shape"] == (-1, 4) and add.attr["unknown"] is None
    assert add.attr["lst"] == [1, 2, b"a", b"b"]  # in file order
    assert add.attr["types"] == [np.dtype(np.float32), np.dtype(np.int32)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no nodes"),
        (b"\x0a\x10abc", "needs 16 bytes, 3 left"),
        (b"\x0a" + b"\xff" * 11, "varint longer than 10 bytes"),
        (b"\x0a\x80", "truncated varint"),
        (b"\x0b\x00", "unsupported wire type 3"),
        (b"\x08\x01", "GraphDef.node has wire type 0"),
        (node("", "Const"), "node without a name"),
        (const("x", 1, (3,), field(4, b"\0" * 8)), "tensor_content has 8 bytes"),
        (const("x", 1, (1,), field(5, struct.pack("<2f", 1, 2))), "2 values for a tensor"),
        (const("x", 4, (1,), field(7, 300)), "do not fit"),
        (const("x", 14, (1,)), "unsupported tensor dtype"),
        (const("x", 1, (-1,)), "unknown shape"),
        (const("x", 1, (1 << 40,)), "implausibly large"),
        (const("x", 1, (1,), field(5, 3)), "does not fit a repeated"),
        (node("x", "Const", i=field(3, b"")), "is empty"),
        (field(1, field(1, b"\xc3\x28") + field(2, b"Const")), "not UTF-8"),
    ],
)  # fmt: skip
def test_malformed_bytes_raise_a_value_error_that_says_what_is_wrong(data, message):
    with pytest.raises(ValueError, match=message):
        parse_graphdef(data)


def test_a_truncated_real_graph_raises_a_value_error(ssdlite_graph):
    data = ssdlite_graph.read_bytes()
    for cut in (1, 1000, len(data) // 2, len(data) - 1):
        with pytest.raises(ValueError, match=r"needs \d+ bytes|truncated"):
            parse_graphdef(data[:cut])


_VALID = graph(
    node("c", "Const", value=field(8, tensor(1, (2,), field(5, struct.pack("<2f", 1, 2))))),
    node("a", "Add", ("c", "c"), T=field(6, 1), lst=field(1, field(3, varint(7)))),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=64)
    | st.tuples(st.integers(0, len(_VALID) - 1), st.binary(min_size=1, max_size=4))
)
def test_arbitrary_or_corrupted_bytes_either_parse_or_raise_value_error(case):
    if isinstance(case, tuple):  # overwrite a few bytes of a valid graph
        at, patch = case
        data = _VALID[:at] + patch + _VALID[at + len(patch) :]
    else:
        data = case
    with contextlib.suppress(ValueError):  # anything else (IndexError, ...) fails the test
        parse_graphdef(data)
