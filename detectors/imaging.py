"""Turning untrusted encoded image bytes into pixels, with limits.

Image decoders are a classic attack surface, so sizes are checked against
the frame's declared geometry before anything else sees the pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["ImageError", "decode_image", "decode_jpegs", "encode_image", "encode_jpeg"]


class ImageError(ValueError):
    """The bytes are not a decodable image, or not the image they claim to be."""


def decode_image(data: bytes, *, width: int, height: int) -> np.ndarray:
    """Decode JPEG/PNG bytes into a BGR uint8 array of exactly ``height × width``.

    Raises
    ------
    ImageError
        When the bytes do not decode, or decode to another size.
    """
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # e.g. an empty buffer
        image = None
    if image is None:
        raise ImageError("the image bytes do not decode (corrupt or not JPEG/PNG)")
    if image.shape[:2] != (height, width):
        raise ImageError(
            f"decoded size {image.shape[1]}x{image.shape[0]} differs from the declared "
            f"{width}x{height}"
        )
    return image


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """Encode a BGR uint8 image as JPEG."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in [1, 100], got {quality}")
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError("OpenCV could not encode the image as JPEG")
    return buffer.tobytes()


def encode_image(image: np.ndarray, encoding: str = "jpeg", quality: int = 90) -> bytes:
    """Encode a BGR uint8 image as ``jpeg`` (lossy, ``quality``) or ``png`` (lossless)."""
    if encoding == "jpeg":
        return encode_jpeg(image, quality)
    if encoding != "png":
        raise ValueError(f"unknown image encoding {encoding!r}; use jpeg or png")
    ok, buffer = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ImageError("OpenCV could not encode the image as PNG")
    return buffer.tobytes()


def decode_jpegs(datas: list[bytes], sizes: list[tuple[int, int]], device: str) -> list:
    """Decode JPEGs with torchvision onto ``device`` (nvJPEG on CUDA), as BGR ``3×H×W`` tensors.

    Why: on a GPU, decoding there is about 4× faster than 16 CPU threads and
    the pixels never cross the PCIe bus twice.  ``sizes`` are the declared
    ``(width, height)``; a batch that does not decode is decoded again one by
    one, so one corrupt frame only costs itself.  Each result is a tensor or
    an :class:`ImageError` for that frame.
    """
    import torch
    from torchvision.io import decode_jpeg

    raw = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    try:
        decoded: list = list(decode_jpeg(raw, device=device))
    except RuntimeError:
        decoded = []
        for one in raw:
            try:
                decoded.append(decode_jpeg(one, device=device))
            except RuntimeError as exc:
                decoded.append(ImageError(f"the image bytes do not decode ({exc})"))
    out: list = []
    for image, (width, height) in zip(decoded, sizes, strict=True):
        if isinstance(image, ImageError):
            out.append(image)
        elif image.shape[0] != 3 or tuple(image.shape[1:]) != (height, width):
            out.append(
                ImageError(
                    f"decoded size {tuple(image.shape)} differs from the declared "
                    f"3x{height}x{width} (colour JPEG)"
                )
            )
        else:
            out.append(image.flip(0))  # RGB -> BGR, the detectors' convention
    return out
