"""The CIFAR ResNets of He et al. (2016), "Deep Residual Learning for Image Recognition", Sec. 4.2.

Depth ``6n + 2``: a 3x3 convolution with 16 filters, then three stages of ``n`` basic blocks
(two 3x3 convolutions each) with 16, 32 and 64 filters on 32x32, 16x16 and 8x8 feature maps
(the first block of stages 2 and 3 subsamples with stride 2), global average pooling and a
fully connected layer (with ``dropout > 0``, dropout sits between the pooling and that layer:
the paper's Table 8 does not say where its dropout goes). Shortcuts are identities; where the width doubles, the identity is
subsampled and zero-padded in the new channels ("option A"), so the network has no projection
parameters. Parameter counts match He et al.'s Table 6: ResNet-20 0.27M, ResNet-44 0.66M,
ResNet-56 0.85M.

The paper uses ResNet-20 and ResNet-56 on CIFAR-10 and ResNet-44 on CIFAR-100.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STAGE_WIDTHS = (16, 32, 64)


class PadShortcut(nn.Module):
    """Option A shortcut: subsample by ``stride`` and zero-pad the new channels on both sides."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        extra = out_channels - in_channels
        self.pad = (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, *self.pad))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = (
            PadShortcut(in_channels, out_channels, stride)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-``depth`` for 32x32 images; ``depth = 6n + 2`` (8, 20, 32, 44, 56, 110, ...).

    Input ``(N, 3, 32, 32)``, output logits ``(N, num_classes)``.

    Examples
    --------
    >>> model = CifarResNet(depth=20, num_classes=10)
    >>> round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    0.27
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, depth: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"depth must be 6n + 2 with n >= 1 (8, 20, 32, 44, 56, ...), got {depth!r}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        blocks_per_stage = (depth - 2) // 6
        self.depth = depth
        self.conv = nn.Conv2d(3, STAGE_WIDTHS[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(STAGE_WIDTHS[0])
        layers: list[nn.Module] = []
        in_channels = STAGE_WIDTHS[0]
        for stage, width in enumerate(STAGE_WIDTHS):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(in_channels, width, stride))
                in_channels = width
        self.blocks = nn.Sequential(*layers)
        # No module at rate 0, so that such a network draws no random numbers for dropout.
        self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # He initialisation of the convolutions (He et al. 2015, as the ResNet paper says).
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(self.dropout(x))


def resnet_cifar(depth: int, num_classes: int, dropout: float = 0.0) -> CifarResNet:
    """ResNet-``depth`` of He et al. for CIFAR (``resnet_cifar(56, 10)`` is ResNet-56)."""
    return CifarResNet(depth=depth, num_classes=num_classes, dropout=dropout)
