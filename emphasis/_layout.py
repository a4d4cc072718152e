"""From user layouts to rows of logits, and back.

Inputs follow ``torch.nn.functional.cross_entropy``: logits (C,) with a scalar
label, (N, C) with labels (N,), or (N, C, d1, ..., dk) with labels
(N, d1, ..., dk); ``axis`` names the class axis (1 by default, -1 for
channels-last data). The kernel works on (M, C) rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["Rows", "check_shapes", "to_rows"]


class Rows(NamedTuple):
    logits: Any  #: (M, C)
    labels: Any  #: (M,)
    label_shape: tuple[int, ...]  #: the shape of per-example outputs
    restore: Callable[[Any], Any]  #: (M, C) gradient rows -> the layout of the logits


def check_shapes(
    logits_shape: tuple[int, ...],
    labels_shape: tuple[int, ...],
    axis: int,
    names: tuple[str, str] = ("logits", "labels"),
) -> int:
    """Return the normalised class axis; raise ValueError when shapes disagree.

    ``names`` are the framework's names of the two arguments (torch: input, target).
    """
    logits, labels = names
    ndim = len(logits_shape)
    if ndim == 0:
        raise ValueError(f"{logits} must have a class axis, got a scalar")
    if ndim == 1:
        axis = 0
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for {logits} of shape {logits_shape}")
    axis %= ndim
    expected = logits_shape[:axis] + logits_shape[axis + 1 :]
    if tuple(labels_shape) != expected:
        raise ValueError(
            f"{labels} must have shape {expected} for {logits} of shape {logits_shape} with the "
            f"class axis {axis}, got {tuple(labels_shape)}"
        )
    if logits_shape[axis] < 1:
        raise ValueError(f"{logits} must have at least one class, got shape {logits_shape}")
    return axis


def to_rows(
    logits: Any, labels: Any, axis: int, xp: Any, names: tuple[str, str] = ("logits", "labels")
) -> Rows:
    """Move the class axis last and flatten to rows (no copy for (N, C) input)."""
    logits_shape = tuple(int(n) for n in logits.shape)
    axis = check_shapes(logits_shape, tuple(int(n) for n in labels.shape), axis, names)
    num_classes = logits_shape[axis]
    last = len(logits_shape) - 1
    moved = logits if axis == last else xp.moveaxis(logits, axis, -1)
    moved_shape = tuple(int(n) for n in moved.shape)
    label_shape = moved_shape[:-1]
    needs_reshape = len(logits_shape) != 2

    def restore(grad: Any) -> Any:
        if needs_reshape:
            grad = xp.reshape(grad, moved_shape)
        return grad if axis == last else xp.moveaxis(grad, -1, axis)

    if needs_reshape:
        moved = xp.reshape(moved, (-1, num_classes))
        labels = xp.reshape(labels, (-1,))
    return Rows(moved, labels, label_shape, restore)
