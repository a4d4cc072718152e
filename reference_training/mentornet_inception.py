"""The CIFAR student network that MentorNet (Jiang et al. 2018) trains as ``--studentnet=inception``.

The paper's Table 4 follows MentorNet's settings and calls the network GoogLeNet V1. MentorNet's
released code (github.com/google/mentornet, commit 76d6be2) builds, for ``inception``, the
function ``cifarnet`` of ``code/inception_model.py`` (lines 25-99): TF-slim's CifarNet, a small
convolutional network, not an Inception (GoogLeNet) network. This module is that network::

    conv1   5x5, 64 filters, stride 1, SAME padding, ReLU            (line 71)
    pool1   2x2 max pooling, stride 2 (VALID)                         (line 73)
    norm1   local response normalisation, depth_radius 4, bias 1,
            alpha 0.001/9, beta 0.75                                 (line 75)
    conv2   5x5, 64 filters, ReLU                                     (line 76)
    norm2   as norm1                                                  (line 78)
    pool2   2x2 max pooling, stride 2                                 (line 79)
    fc3     fully connected 4096 -> 384, ReLU                         (line 83)
    dropout keep probability 0.8 in training (rate 0.2)              (line 85; the keep
            probability 0.8 is passed by cifar_train_baseline.py line 243)
    fc4     fully connected 384 -> 192, ReLU                          (line 87)
    logits  fully connected 192 -> classes                            (lines 89-94)

Initialisation (``cifarnet_arg_scope``, lines 104-123, and the logits layer): convolution weights
truncated normal with std 0.05 and zero biases (slim's default), fc3/fc4 weights truncated normal
with std 0.04 and biases 0.1, logits weights truncated normal with std 1/192 and zero biases.
TensorFlow's truncated normal redraws values beyond two standard deviations.

TensorFlow's LRN divides by ``(bias + alpha * sum of squares over 2r+1 channels) ** beta``;
PyTorch's ``LocalResponseNorm(size, alpha, beta, k)`` divides by ``(k + alpha/size * sum) **
beta``: so ``size = 2r + 1 = 9`` and PyTorch's alpha is TensorFlow's times 9, i.e. 0.001.

Parameters: 1,756,426 for 10 classes, 1,773,796 for 100 (no batch norm, so no buffers).
Images are NCHW here and NHWC in TensorFlow, so the flattened 4096 features of pool2 are in
another order; that permutes fc3's rows and changes nothing else.
"""

from __future__ import annotations

import torch
from torch import nn

#: TF-slim's ``cifarnet`` layer widths (code/inception_model.py lines 71-89).
CONV_FILTERS = 64
KERNEL = 5
FC3, FC4 = 384, 192
#: MentorNet's dropout: keep probability 0.8 (code/cifar_train_baseline.py line 243).
DEFAULT_DROPOUT = 0.2


def _truncated_normal_(tensor: torch.Tensor, std: float) -> None:
    nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2 * std, b=2 * std)


class MentorNetInception(nn.Module):
    """MentorNet's CIFAR ``inception`` student (TF-slim CifarNet) for 32x32 images.

    Input ``(N, 3, 32, 32)``, output logits ``(N, num_classes)``. ``dropout`` is the rate after
    fc3 in training (MentorNet: 0.2).

    Examples
    --------
    >>> model = MentorNetInception(num_classes=10)
    >>> sum(p.numel() for p in model.parameters())
    1756426
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_classes: int, dropout: float = DEFAULT_DROPOUT) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.conv1 = nn.Conv2d(3, CONV_FILTERS, KERNEL, padding=KERNEL // 2)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.norm1 = nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0)
        self.conv2 = nn.Conv2d(CONV_FILTERS, CONV_FILTERS, KERNEL, padding=KERNEL // 2)
        self.norm2 = nn.LocalResponseNorm(9, alpha=0.001, beta=0.75, k=1.0)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.fc3 = nn.Linear(CONV_FILTERS * 8 * 8, FC3)
        self.dropout = nn.Dropout(dropout)
        self.fc4 = nn.Linear(FC3, FC4)
        self.logits = nn.Linear(FC4, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for conv in (self.conv1, self.conv2):
            _truncated_normal_(conv.weight, 5e-2)
            nn.init.zeros_(conv.bias)
        for fc in (self.fc3, self.fc4):
            _truncated_normal_(fc.weight, 0.04)
            nn.init.constant_(fc.bias, 0.1)
        _truncated_normal_(self.logits.weight, 1 / 192.0)
        nn.init.zeros_(self.logits.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(self.pool1(torch.relu(self.conv1(x))))
        x = self.pool2(self.norm2(torch.relu(self.conv2(x))))
        x = torch.relu(self.fc3(torch.flatten(x, 1)))
        x = torch.relu(self.fc4(self.dropout(x)))
        return self.logits(x)
