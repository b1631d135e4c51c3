"""MobileNetV2 (width 1.0) as TensorFlow's Object Detection API builds it, in PyTorch.

Why a separate backbone instead of ``torchvision.models.mobilenet_v2``: the weights come from
a TensorFlow graph (see :mod:`detectors.convert.ssdlite`), and TensorFlow's ``SAME`` padding
is not torch's symmetric padding.  A stride-2 convolution over an even-sized input pads one
pixel at the bottom and right only, so torchvision's layers would shift every feature map by
half a pixel.  :class:`SameConv2d` pads exactly as TensorFlow does.  Batch norms are already
folded into the convolutions by the converter, so every layer is a convolution with a bias
and an optional ReLU6.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["InvertedResidual", "MobileNetV2", "SameConv2d", "same_padding"]

# (expansion t, output channels c, repeats n, first stride s), as in the MobileNetV2 paper.
_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1))  # fmt: skip


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``SAME`` padding ``(before, after)`` of one dimension.

    Examples
    --------
    >>> same_padding(300, 3, 2), same_padding(75, 3, 2), same_padding(19, 3, 1)
    ((0, 1), (1, 1), (1, 1))
    """
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A convolution with a bias, TensorFlow ``SAME`` padding and an optional ReLU6.

    Parameters
    ----------
    cin, cout
        Input and output channels.
    kernel, stride
        Square kernel size and stride.
    depthwise
        One filter per input channel (``groups=cin``, ``cout`` must equal ``cin``).
    relu6
        Apply ``min(max(x, 0), 6)`` after the convolution.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, *,
                 depthwise: bool = False, relu6: bool = True) -> None:  # fmt: skip
        super().__init__(cin, cout, kernel, stride, padding=0, groups=cin if depthwise else 1)
        self.relu6 = relu6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``(B, cin, H, W)`` into ``(B, cout, ceil(H / s), ceil(W / s))``."""
        (k, _), (s, _) = self.kernel_size, self.stride
        top, bottom = same_padding(x.shape[-2], k, s)
        left, right = same_padding(x.shape[-1], k, s)
        if top == bottom and left == right:
            padding = (top, left)
        else:
            x, padding = F.pad(x, (left, right, top, bottom)), (0, 0)
        y = F.conv2d(x, self.weight, self.bias, self.stride, padding, 1, self.groups)
        return F.relu6(y, inplace=True) if self.relu6 else y


class InvertedResidual(nn.Module):
    """Expand (1×1, ReLU6) → depthwise 3×3 (ReLU6) → project (1×1, linear), plus a residual
    when the stride is 1 and the channels match."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.expand = SameConv2d(cin, hidden) if expansion != 1 else None
        self.depthwise = SameConv2d(hidden, hidden, 3, stride, depthwise=True)
        self.project = SameConv2d(hidden, cout, relu6=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output."""
        return self.from_expanded(x, self.expand(x) if self.expand is not None else x)

    def from_expanded(self, x: torch.Tensor, expanded: torch.Tensor) -> torch.Tensor:
        """The block's output, given its input and the output of its expansion layer."""
        y = self.project(self.depthwise(expanded))
        return y + x if self.residual else y


class MobileNetV2(nn.Module):
    """MobileNetV2 1.0 returning the two feature maps SSD uses.

    ``forward`` gives the expansion output of block 13 (576 channels, stride 16: the layer
    TensorFlow's SSD feature extractor taps) and the output of the final 1×1 convolution
    (1280 channels, stride 32).

    Examples
    --------
    >>> c4, c5 = MobileNetV2()(torch.zeros(1, 3, 300, 300))
    >>> tuple(c4.shape), tuple(c5.shape)
    ((1, 576, 19, 19), (1, 1280, 10, 10))
    """

    tap = 13  # block whose expansion output is the first SSD feature map

    def __init__(self) -> None:
        super().__init__()
        self.stem = SameConv2d(3, 32, 3, 2)
        blocks, cin = [], 32
        for t, c, n, s in _BLOCKS:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.ModuleList(blocks)
        self.last = SameConv2d(cin, 1280)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, 3, H, W)`` normalised RGB → the stride-16 and stride-32 feature maps."""
        x = self.stem(x)
        tapped = x
        for i, block in enumerate(self.blocks):
            if i == self.tap:
                tapped = block.expand(x)
                x = block.from_expanded(x, tapped)
            else:
                x = block(x)
        return tapped, self.last(x)
