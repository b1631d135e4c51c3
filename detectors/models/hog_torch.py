"""OpenCV's HOG + linear SVM people detector, rebuilt in PyTorch so that it is differentiable.

Why this exists: the adversarial monitors need a white-box target, and ``OpenCVHog``
(``cv2.HOGDescriptor``) gives no gradients for FGSM/PGD "vanishing" attacks or adversarial
patches.  This is the same Dalal–Triggs pipeline in torch operations, so that

* :meth:`TorchHog.window_scores` and :meth:`TorchHog.vanishing_loss` give every window's
  SVM score with gradients with respect to the input pixels, and
* :meth:`TorchHog.detect_batch` is a batched :class:`~detectors.models.base.Detector`
  whose boxes and scores match ``OpenCVHog`` (it copies OpenCV's approximate ``atan``,
  gamma table, pyramid sizes and resizing, box rounding and grouping).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from detectors.models.base import empty_detections
from detectors.models.buckets import pad_batch
from detectors.models.hog_search import HogSearch

__all__ = ["LevelScores", "TorchHog"]

_F32, _DEG = np.float32, 180.0 / math.pi
# cv::fastAtan2's polynomial (degrees) and constants, in the float32 arithmetic OpenCV uses.
_P1, _P3, _P5, _P7 = (
    float(_F32(c) * _F32(_DEG))
    for c in (0.9997878412794807, -0.3258083974640975, 0.1555786518463281, -0.04432655554792128)
)
_ATAN_EPS = float(_F32(np.finfo(np.float64).eps))
_TO_RAD, _BIN_SCALE = float(_F32(math.pi / 180)), float(_F32(9 / math.pi))
_SQRT_LUT = np.sqrt(np.arange(256, dtype=np.float32))  # OpenCV's gamma table
_WIN_W, _WIN_H, _BLOCK, _CELL, _NBINS = 64, 128, 16, 8, 9
_CHUNK_PIXELS = 1 << 18  # pixels per forward pass on CPU: keeps the work in cache


@dataclass(frozen=True)
class LevelScores:
    """SVM scores of every detection window at one pyramid level.

    Attributes
    ----------
    scale
        Ratio of the input size to this level's size (1.0 for the first level).
    scores
        ``(B, ny, nx)``; ``scores[b, j, i]`` is the window whose top-left corner is at
        ``((i * win_stride - pad) * scale, (j * win_stride - pad) * scale)`` in input
        pixels, where ``pad`` is ``padding`` rounded up to a multiple of
        ``gcd(win_stride, 8)``.
    """

    scale: float
    scores: torch.Tensor


def _mask(op: Callable, a: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    """``op(a, b)`` as 0/1 floats, for ``torch.lerp(u, v, mask)``: exact, and on CPU much
    faster than ``torch.where`` (and than converting a bool tensor)."""
    return op(a.detach(), b, out=torch.empty_like(a, memory_format=torch.contiguous_format))


def _fast_atan_deg(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``cv::fastAtan2(y, x)`` in degrees, in [0, 360), as OpenCV computes it (no gradient)."""
    ax, ay = x.abs(), y.abs()
    c = torch.minimum(ax, ay) / (torch.maximum(ax, ay) + _ATAN_EPS)
    cc = c * c
    a = (((cc * _P7 + _P5) * cc + _P3) * cc + _P1) * c
    a = torch.lerp(a, 90.0 - a, _mask(torch.lt, ax, ay))
    a = torch.lerp(a, 180.0 - a, _mask(torch.lt, x, 0.0))
    return torch.lerp(a, 360.0 - a, _mask(torch.lt, y, 0.0))


def _gamma(v: torch.Tensor) -> torch.Tensor:
    """``sqrt(v)`` for ``v`` in [0, 255], rounded like OpenCV's table (via float64); its
    gradient ``0.5 / sqrt(max(v, 1))`` is finite at 0, so black pixels stay attackable."""
    value = torch.sqrt(v.detach().double()).to(v.dtype)
    if not (torch.is_grad_enabled() and v.requires_grad):
        return value
    return value + (v - v.detach()) * (0.5 / torch.sqrt(v.detach().clamp_min(1.0)))


def _pad101(g: torch.Tensor, p: int) -> torch.Tensor:
    """Pad the last two dimensions by ``p`` like ``cv2.BORDER_REFLECT_101``, whatever ``p``."""
    if p < min(g.shape[-2:]):
        return F.pad(g, (p, p, p, p), mode="reflect")
    for dim, n in ((-2, g.shape[-2]), (-1, g.shape[-1])):
        idx = np.abs(np.arange(-p, n + p)) % max(2 * n - 2, 1)
        idx = torch.from_numpy(np.where(idx >= n, 2 * n - 2 - idx, idx)).to(g.device)
        g = g.index_select(dim, idx)
    return g


class TorchHog(HogSearch):
    """Differentiable, batched port of OpenCV's default HOG people detector.

    Takes the keyword arguments of :class:`~detectors.models.hog_search.HogSearch`
    (``padding`` is rounded up to a multiple of ``gcd(win_stride, 8)``, as OpenCV
    does), ``device``, the torch device the computation runs on, ``svm``, the 3781
    linear-SVM coefficients in OpenCV's layout (default: OpenCV's pretrained people
    detector; the model store passes them from a signed artifact), and ``version``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> hog = TorchHog()
    >>> [d.shape for d in hog.detect_batch([np.zeros((128, 64, 3), np.uint8)])]
    [(0, 5)]
    >>> [tuple(level.scores.shape) for level in hog.window_scores(torch.zeros(2, 3, 128, 64))]
    [(2, 3, 3)]
    """

    name = "hog-torch"

    def __init__(
        self,
        *,
        device: str | torch.device = "cpu",
        svm: np.ndarray | None = None,
        version: str = "1",
        **search: float,
    ) -> None:
        super().__init__(**search)  # type: ignore[arg-type]
        self.version = version
        win_stride, padding = self.win_stride, self.padding
        self.device = torch.device(device)
        self._chunk = _CHUNK_PIXELS if self.device.type == "cpu" else 64 * _CHUNK_PIXELS
        self.pad = self.device.type == "cuda"  # few shapes for cuDNN (models/buckets.py)
        self._stride = math.gcd(win_stride, _CELL)  # blocks are computed on this grid
        self._pad = -(-padding // self._stride) * self._stride
        # Block kernel of cell (cx, cy) = outer(f[cy], f[cx]): Gaussian (σ 4, centre 8)
        # times the tent weights to the cell centres 3.5 and 11.5.
        i = np.arange(_BLOCK)
        f = [
            np.exp(-((i - 8.0) ** 2) / 32) * np.maximum(0, 1 - abs(i - c) / 8) for c in (3.5, 11.5)
        ]
        f = torch.from_numpy(np.stack(f).astype(np.float32)).to(self.device)
        self._kx, self._ky = f.view(2, 1, 1, _BLOCK), f.view(2, 1, _BLOCK, 1)
        if svm is None:
            svm = cv2.HOGDescriptor_getDefaultPeopleDetector()
        svm = np.asarray(svm, dtype=np.float32).ravel()
        if svm.shape != (3781,):
            raise ValueError(f"the SVM needs 3780 weights and a bias, got {svm.size} values")
        # OpenCV orders blocks x-major (7 × 15), then cells cx * 2 + cy, then bins.  Ours:
        # rows (by, bx), flipped for F.fold; columns bin * 4 + cx * 2 + cy, as the convs make.
        weights = svm[:3780].reshape(7, 15, 2, 2, _NBINS).transpose(1, 0, 4, 2, 3)[::-1, ::-1]
        self._svm = torch.from_numpy(weights.reshape(105, 36).copy()).to(self.device)
        self._bias = float(svm[3780])

    def window_scores(self, images: torch.Tensor, *, quantize: bool = True) -> list[LevelScores]:
        """SVM score of every window at every pyramid level, differentiable w.r.t. ``images``.

        Parameters
        ----------
        images
            ``(B, 3, H, W)`` float tensor, BGR, values in [0, 1], on :attr:`device`.
        quantize
            Round the input and every resized level to the uint8 grid in the forward pass,
            like OpenCV's uint8 pyramid, with straight-through (identity) gradients.
            Without it, resized levels score up to about 1 away from OpenCV's.

        Returns
        -------
        list of LevelScores
            One per pyramid level, largest first.  Levels are resized with
            ``F.interpolate`` (bilinear, no antialiasing) so that gradients flow.  A backward
            pass holds about 0.4 GB per 640×360 image.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"need a (B, 3, H, W) tensor, got {tuple(images.shape)}")
        out = []
        for s, size in self._levels(*images.shape[2:]):
            level = images if s == 1.0 else F.interpolate(images, size=size, mode="bilinear")
            level = level * 255.0
            if quantize:
                level = level + (level.detach().round().clamp(0, 255) - level.detach())
            # +1: the derivative at the border needs one more pixel
            out.append(LevelScores(s, self._scores(_pad101(_gamma(level), self._pad + 1))))
        return out

    def vanishing_loss(
        self, images: torch.Tensor, margin: float = 1.0, *, quantize: bool = True
    ) -> torch.Tensor:
        """Loss that is zero exactly when no window scores above ``hit_threshold - margin``.

        Per image, the sum over all windows of all pyramid levels of
        ``relu(score - hit_threshold + margin)``.  A "vanishing" attack minimises it so that
        the detector finds nobody; the margin keeps the attack working after rounding to
        uint8 and through the small differences from OpenCV.

        Parameters
        ----------
        images, quantize
            As for :meth:`window_scores`.
        margin
            How far below the threshold scores must go before they stop counting.

        Returns
        -------
        torch.Tensor
            ``(B,)`` losses, differentiable w.r.t. ``images``.
        """
        offset = margin - self.hit_threshold
        levels = self.window_scores(images, quantize=quantize)
        return sum(F.relu(level.scores + offset).sum(dim=(1, 2)) for level in levels)

    def detect_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Pedestrian boxes per BGR uint8 image, as ``OpenCVHog.detect_batch`` gives them.

        Images of the same size are scored together, level by level, without gradients.
        The pyramid uses ``cv2.resize(INTER_LINEAR_EXACT)``, padding and gamma as OpenCV
        does; boxes are grouped like ``HOGDescriptor.detectMultiScale`` (group threshold 2,
        eps 0.2): each group's score is its highest window score.  Boxes are clipped.
        """
        out = [empty_detections() for _ in images]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"need BGR uint8 HxWx3 images, got {image.dtype} {image.shape}")
            if image.shape[0] >= _WIN_H and image.shape[1] >= _WIN_W:
                by_size.setdefault(image.shape[:2], []).append(i)
        with torch.no_grad():
            for (height, width), idx in by_size.items():
                found = self._windows_found(np.stack([images[i] for i in idx]))
                for i, rows in zip(idx, found, strict=True):
                    out[i] = _clip(_group(np.vstack(rows)), width, height) if rows else out[i]
        return out

    def _windows_found(self, stack: np.ndarray) -> list[list[np.ndarray]]:
        """Per image, ``x, y, w, h, score`` rows of the windows at or above the threshold."""
        n, height, width = stack.shape[:3]
        found: list[list[np.ndarray]] = [[] for _ in range(n)]
        p = self._pad + 1
        for s, (lh, lw) in self._levels(height, width):
            step = max(1, self._chunk // (lh * lw))
            for start in range(0, n, step):
                chunk = stack[start : start + step]
                g = np.empty((len(chunk), 3, lh + 2 * p, lw + 2 * p), np.float32)
                for k, image in enumerate(chunk):
                    if s != 1.0:
                        image = cv2.resize(image, (lw, lh), interpolation=cv2.INTER_LINEAR_EXACT)
                    image = cv2.copyMakeBorder(image, p, p, p, p, cv2.BORDER_REFLECT_101)
                    for c, plane in enumerate(cv2.split(image)):
                        cv2.LUT(plane, _SQRT_LUT, dst=g[k, c])
                pixels = torch.from_numpy(g).to(self.device)
                if self.pad:
                    pixels = pad_batch(pixels, step)
                scores = self._scores(pixels)[: len(chunk)]
                b, iy, ix = torch.nonzero(scores >= self.hit_threshold, as_tuple=True)
                values = scores[b, iy, ix].cpu().numpy()
                b, iy, ix = b.cpu().numpy() + start, iy.cpu().numpy(), ix.cpu().numpy()
                x = np.rint((ix * self.win_stride - self._pad) * s)  # cvRound, half to even
                y = np.rint((iy * self.win_stride - self._pad) * s)
                w, h = np.full_like(x, round(_WIN_W * s)), np.full_like(x, round(_WIN_H * s))
                rows = np.stack([x, y, w, h, values], axis=1)
                for k in np.unique(b):
                    found[k].append(rows[b == k])
        return found

    def _levels(self, height: int, width: int) -> list[tuple[float, tuple[int, int]]]:
        """Pyramid scales and ``(h, w)`` sizes, chosen exactly like ``detectMultiScale``."""
        levels, s = [], 1.0
        for _ in range(64):  # HOGDescriptor.nlevels
            size = (round(height / s), round(width / s))
            if size[0] < _WIN_H or size[1] < _WIN_W:
                break
            levels.append((s, size))
            s *= self.scale
        return levels or [(1.0, (height, width))]

    def _scores(self, g: torch.Tensor) -> torch.Tensor:
        """``(B, ny, nx)`` window scores of gamma-corrected images padded by ``pad + 1``."""
        maps = self._orientation_maps(g)
        # Block histograms (B, 36, nby, nbx) by two separable strided convs, with each bin
        # (then each bin and cell column) as its own image: faster than grouped convs.
        n, _, h, w = maps.shape
        blocks = F.conv2d(maps.view(n * _NBINS, 1, h, w), self._kx, stride=(1, self._stride))
        blocks = F.conv2d(blocks.view(n * 18, 1, h, -1), self._ky, stride=(self._stride, 1))
        blocks = blocks.view(n, 36, *blocks.shape[2:])
        blocks = blocks / (torch.linalg.vector_norm(blocks, dim=1, keepdim=True) + 3.6)
        blocks = blocks.clamp(max=0.2)  # L2-Hys
        blocks = blocks / (torch.linalg.vector_norm(blocks, dim=1, keepdim=True) + 1e-3)
        # The SVM: one matmul for every (block offset, block) pair, then F.fold sums the
        # 15 × 7 offsets of each window (a correlation, hence the flipped weights).
        _, _, nby, nbx = blocks.shape
        d = _CELL // self._stride
        parts = self._svm @ blocks.flatten(2)
        full = F.fold(parts, (nby + 14 * d, nbx + 6 * d), (15, 7), dilation=d)[:, 0]
        step = self.win_stride // self._stride
        return full[:, 14 * d : nby : step, 6 * d : nbx : step] + self._bias

    def _orientation_maps(self, g: torch.Tensor) -> torch.Tensor:
        """``(B, 9, h - 2, w - 2)`` gradient magnitudes split into orientation bins."""
        dx = g[:, :, 1:-1, 2:] - g[:, :, 1:-1, :-2]
        dy = g[:, :, 2:, 1:-1] - g[:, :, :-2, 1:-1]
        m2 = dx * dx + dy * dy
        # Strongest channel per pixel; ties go to the first of B, G, R, as in OpenCV.
        best_dx, best_dy, best = dx[:, :1], dy[:, :1], m2[:, :1]
        for k in (1, 2):
            better = _mask(torch.gt, m2[:, k : k + 1], best)
            best_dx = torch.lerp(best_dx, dx[:, k : k + 1], better)
            best_dy = torch.lerp(best_dy, dy[:, k : k + 1], better)
            best = torch.maximum(best, m2[:, k : k + 1])
        a = _fast_atan_deg(best_dy.detach(), best_dx.detach())
        if torch.is_grad_enabled() and best.requires_grad:
            # OpenCV's values with the gradients of the exact atan2 and sqrt; flat pixels,
            # where those are infinite, are kept out of the graph.
            zero = _mask(torch.eq, best, 0.0)
            mag = torch.sqrt(best + zero) * (1.0 - zero)
            exact = torch.atan2(best_dy + zero, best_dx) * _DEG
            a = a + (exact - exact.detach())
        else:
            mag = torch.sqrt(best)
        a = a * _TO_RAD * _BIN_SCALE - 0.5  # in [-0.5, 17.5); bin k is centred on 20k + 10°
        low = torch.floor(a.detach())
        upper = a - low
        low = low + 9.0 * _mask(torch.lt, low, 0.0) - 9.0 * _mask(torch.ge, low, _NBINS)
        high = low + 1.0 - 9.0 * _mask(torch.eq, low, _NBINS - 1)
        maps = torch.zeros((g.shape[0], _NBINS, *mag.shape[2:]), dtype=g.dtype, device=g.device)
        maps.scatter_add_(1, low.long(), mag - mag * upper)
        return maps.scatter_add_(1, high.long(), mag * upper)


def _group(found: np.ndarray, threshold: int = 2, eps: float = 0.2) -> np.ndarray:
    """``HOGDescriptor::groupRectangles`` on ``x, y, w, h, score`` rows.

    Groups are the connected components of OpenCV's ``SimilarRects(eps)``.  A group needs
    more than ``threshold`` members; its box is the rounded mean box, its score the highest
    score, and it is dropped when it lies inside a better-supported group.
    """
    r, big = found[:, :4], len(found)
    delta = eps * 0.5 * (np.minimum.outer(r[:, 2], r[:, 2]) + np.minimum.outer(r[:, 3], r[:, 3]))
    near = np.ones((big, big), dtype=bool)
    for a in (r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]):
        near &= np.abs(a[:, None] - a[None, :]) <= delta
    labels = np.arange(big)
    while True:  # connected components by min-label propagation
        new = np.where(near, labels[None, :], big).min(axis=1)
        if (new == labels).all():
            break
        labels = new
    labels = np.unique(labels, return_inverse=True)[1]
    n = np.bincount(labels)
    sums = np.zeros((len(n), 4))
    np.add.at(sums, labels, r)
    x, y, w, h = rects = np.rint(sums * (1.0 / n)[:, None]).T
    scores = np.full(len(n), -np.inf)
    np.maximum.at(scores, labels, found[:, 4])
    dx, dy = np.rint(w * eps), np.rint(h * eps)
    inside = (
        (x[:, None] >= x - dx)
        & (y[:, None] >= y - dy)
        & ((x + w)[:, None] <= x + w + dx)
        & ((y + h)[:, None] <= y + h + dy)
        & ((n > np.maximum(3, n)[:, None]) | (n[:, None] < 3))
        & (n > threshold)
    )
    np.fill_diagonal(inside, False)
    keep = (n > threshold) & ~inside.any(axis=1)
    return np.column_stack([rects.T[keep], scores[keep]])


def _clip(found: np.ndarray, width: int, height: int) -> np.ndarray:
    """``x, y, w, h, score`` rows → clipped ``x1, y1, x2, y2, score`` float32; empties dropped."""
    x1, y1 = found[:, 0].clip(0, width), found[:, 1].clip(0, height)
    x2 = (found[:, 0] + found[:, 2]).clip(0, width)
    y2 = (found[:, 1] + found[:, 3]).clip(0, height)
    boxes = np.stack([x1, y1, x2, y2, found[:, 4]], axis=1).astype(np.float32)
    return boxes[(x2 > x1) & (y2 > y1)].reshape(-1, 5)
