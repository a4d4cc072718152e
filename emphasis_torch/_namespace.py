"""The array namespace through which :mod:`emphasis.kernel` runs on torch tensors.

The kernel uses a dozen namespace functions; these are plain torch calls, so
eager mode pays no wrapper cost and ``torch.compile`` traces straight torch ops.
Two differences from ``array_api_compat.torch`` matter:

- ``arange`` creates its tensor on the device of the batch (the kernel does not
  pass ``device=``, and a CPU ``arange`` compared with CUDA labels fails);
- in eager mode, ``zeros_like``, ``ones_like`` and ``full_like`` of large arrays
  return a broadcast view of a 0-d tensor (``expand_as``) instead of writing a
  full array: the kernel only reads them (``where`` operands), and each saved
  write is a pass over (M, C).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from emphasis.kernel import ArrayNamespace

__all__ = ["TorchNamespace"]


#: Below this many elements a filled tensor costs less than building a broadcast view.
_VIEW_FROM = 1 << 15


def _constant_like(x: torch.Tensor, value: float) -> torch.Tensor:
    if torch.compiler.is_compiling() or x.numel() < _VIEW_FROM:
        return torch.full_like(x, value)  # the compiler folds constants into its kernels
    return torch.full((), value, dtype=x.dtype, device=x.device).expand_as(x)


class TorchNamespace:
    """Namespace bound to one device; ``TorchNamespace(t.device)``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def arange(self, stop: int, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.arange(stop, dtype=dtype, device=self.device)

    @staticmethod
    def where(condition: torch.Tensor, x: torch.Tensor, y: torch.Tensor, /) -> torch.Tensor:
        return torch.where(condition, x, y)

    exp = staticmethod(torch.exp)
    expm1 = staticmethod(torch.expm1)
    log = staticmethod(torch.log)
    logaddexp = staticmethod(torch.logaddexp)
    moveaxis = staticmethod(torch.movedim)
    reshape = staticmethod(torch.reshape)

    @staticmethod
    def take_along_axis(x: torch.Tensor, indices: torch.Tensor, axis: int) -> torch.Tensor:
        return torch.take_along_dim(x, indices, dim=axis)

    @staticmethod
    def max(x: torch.Tensor, axis: int | None = None) -> torch.Tensor:
        return torch.amax(x) if axis is None else torch.amax(x, dim=axis)

    @staticmethod
    def sum(x: torch.Tensor, axis: int | None = None) -> torch.Tensor:
        return torch.sum(x) if axis is None else torch.sum(x, dim=axis)

    @staticmethod
    def zeros_like(x: torch.Tensor) -> torch.Tensor:
        return _constant_like(x, 0.0)

    @staticmethod
    def ones_like(x: torch.Tensor) -> torch.Tensor:
        return _constant_like(x, 1.0)

    @staticmethod
    def full_like(x: torch.Tensor, value: float) -> torch.Tensor:
        return _constant_like(x, value)


if TYPE_CHECKING:  # mypy checks the class against the kernel's protocol
    _conforms: ArrayNamespace = TorchNamespace(torch.device("cpu"))
