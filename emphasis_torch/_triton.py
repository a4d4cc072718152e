"""Fused Triton kernels for the two passes over the (M, C) logits.

The torch-ops path reads and writes (M, C) arrays about a dozen times; the only work
that needs the whole row is

- :func:`row_statistics`, one read of each row: the labelled logit and the max and
  shifted sum of the other logits (:class:`emphasis.kernel.RowStatistics`), kept
  online over blocks of columns;
- :func:`grad_rows`, one read and one write: the gradient rows from the saved
  ``coef``, ``rest_max`` and ``rest_sum`` (:func:`emphasis.kernel.grad_rows`).

Everything between them is O(M) and stays :mod:`emphasis.kernel` in torch ops (log p
without cancellation, the weights, GR's normaliser), so the mathematics is written
once. Inputs of 16 or 32 bits compute in float32. With ``TRITON_INTERPRET=1`` (set
before this module is imported) the kernels run on CPU tensors, slowly: that is how
they are tested without a GPU.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from emphasis.kernel import RowStatistics

__all__ = ["grad_rows", "row_statistics"]

#: Whether the kernels were defined for Triton's interpreter (CPU tensors) in this process:
#: TRITON_INTERPRET is read when a kernel is defined, that is when this module is imported.
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"

#: The widest block of columns a program loads at once.
MAX_BLOCK = 4096


def _block(num_classes: int, block: int | None) -> int:
    return block or max(16, min(triton.next_power_of_2(num_classes), MAX_BLOCK))


@triton.jit
def _row_statistics_kernel(
    logits_ptr,
    labels_ptr,
    z_label_ptr,
    rest_max_ptr,
    rest_sum_ptr,
    row_stride,
    num_classes,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)  # int64 offsets: M * C may exceed 2**31
    base = logits_ptr + row * row_stride
    label = tl.load(labels_ptr + row)
    z_label = tl.load(base + label).to(tl.float32)
    running_max = tl.full((), -float("inf"), tl.float32)
    running_sum = tl.zeros((), tl.float32)
    for start in range(0, num_classes, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        z = tl.load(base + cols, mask=cols < num_classes, other=-float("inf")).to(tl.float32)
        z = tl.where(cols == label, -float("inf"), z)
        new_max = tl.maximum(running_max, tl.max(z, axis=0))
        # Shift by 0 while every logit so far is -inf: never -inf - -inf.
        shift = tl.where(new_max > -float("inf"), new_max, 0.0)
        running_sum = running_sum * tl.exp(running_max - shift) + tl.sum(tl.exp(z - shift), axis=0)
        running_max = new_max
    tl.store(z_label_ptr + row, z_label)
    tl.store(rest_max_ptr + row, running_max)
    tl.store(rest_sum_ptr + row, running_sum)


@triton.jit
def _grad_rows_kernel(
    logits_ptr,
    labels_ptr,
    coef_ptr,
    rest_max_ptr,
    rest_sum_ptr,
    grad_ptr,
    row_stride,
    grad_row_stride,
    num_classes,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = logits_ptr + row * row_stride
    out = grad_ptr + row * grad_row_stride
    label = tl.load(labels_ptr + row)
    coef = tl.load(coef_ptr + row).to(tl.float32)
    rest_max = tl.load(rest_max_ptr + row).to(tl.float32)
    rest_sum = tl.load(rest_sum_ptr + row).to(tl.float32)
    scale = coef / tl.where(rest_sum > 0, rest_sum, 1.0)
    for start in range(0, num_classes, BLOCK):
        cols = start + tl.arange(0, BLOCK)
        in_row = cols < num_classes
        z = tl.load(base + cols, mask=in_row, other=-float("inf")).to(tl.float32)
        target = cols == label
        # The target's exp(z_y - rest_max) may overflow: mask it before exp, not after.
        rest = tl.where(target, -float("inf"), z)
        grad = tl.where(target, -coef, tl.exp(rest - rest_max) * scale)
        tl.store(out + cols, grad.to(grad_ptr.dtype.element_ty), mask=in_row)


def _rows(logits: torch.Tensor) -> torch.Tensor:
    if logits.ndim != 2:
        raise ValueError(f"logits must be (M, C) rows, got shape {tuple(logits.shape)}")
    if logits.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise TypeError(f"the Triton kernels take 16- or 32-bit floats, got {logits.dtype}")
    return logits if logits.stride(1) == 1 else logits.contiguous()


def row_statistics(
    logits: torch.Tensor, labels: torch.Tensor, block: int | None = None
) -> RowStatistics:
    """:func:`emphasis.kernel.row_statistics` of rows (M, C), labels (M,) in [0, C), in
    float32. ``block``: columns per step (a power of 2 >= 16; default: the row, at
    most ``MAX_BLOCK``)."""
    logits = _rows(logits)
    m, c = logits.shape
    labels = labels.to(torch.int64).contiguous()
    z_label, rest_max, rest_sum = (
        torch.empty(m, dtype=torch.float32, device=logits.device) for _ in range(3)
    )
    if m:
        _row_statistics_kernel[(m,)](
            logits, labels, z_label, rest_max, rest_sum, logits.stride(0), c, BLOCK=_block(c, block)
        )
    return RowStatistics(z_label, rest_max, rest_sum)


def grad_rows(
    logits: torch.Tensor,
    labels: torch.Tensor,
    coef: torch.Tensor,
    rest_max: torch.Tensor,
    rest_sum: torch.Tensor,
    block: int | None = None,
) -> torch.Tensor:
    """:func:`emphasis.kernel.grad_rows`, in the dtype of ``logits`` (a new tensor: the
    caller's logits are never overwritten)."""
    logits = _rows(logits)
    m, c = logits.shape
    grad = torch.empty_like(logits)
    if m:
        vectors = (v.to(torch.float32).contiguous() for v in (coef, rest_max, rest_sum))
        _grad_rows_kernel[(m,)](
            logits,
            labels.to(torch.int64).contiguous(),
            *vectors,
            grad,
            logits.stride(0),
            grad.stride(0),
            c,
            BLOCK=_block(c, block),
        )
    return grad


# -- as torch operators: torch.compile traces them as opaque calls (fullgraph) -----------


@torch.library.custom_op("emphasis::row_statistics", mutates_args=())
def row_statistics_op(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`row_statistics` as an operator: (z_label, rest_max, rest_sum), float32."""
    z_label, rest_max, rest_sum = row_statistics(logits, labels)
    return z_label, rest_max, rest_sum


@row_statistics_op.register_fake
def _(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    m = logits.shape[0]
    z_label, rest_max, rest_sum = (logits.new_empty(m, dtype=torch.float32) for _ in range(3))
    return z_label, rest_max, rest_sum


@torch.library.custom_op("emphasis::grad_rows", mutates_args=())
def grad_rows_op(
    logits: torch.Tensor,
    labels: torch.Tensor,
    coef: torch.Tensor,
    rest_max: torch.Tensor,
    rest_sum: torch.Tensor,
) -> torch.Tensor:
    """:func:`grad_rows` as an operator."""
    return grad_rows(logits, labels, coef, rest_max, rest_sum)


@grad_rows_op.register_fake
def _(
    logits: torch.Tensor,
    labels: torch.Tensor,
    coef: torch.Tensor,
    rest_max: torch.Tensor,
    rest_sum: torch.Tensor,
) -> torch.Tensor:
    return torch.empty_like(logits)
