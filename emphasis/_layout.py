"""From user layouts to rows of logits, and back.

Inputs follow ``torch.nn.functional.cross_entropy``: logits (C,) with a scalar
label, (N, C) with labels (N,), or (N, C, d1, ..., dk) with labels
(N, d1, ..., dk); ``axis`` names the class axis (1 by default, -1 for
channels-last data). The kernel works on (M, C) rows.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "Rows",
    "check_shapes",
    "class_axes",
    "label_layout",
    "sample_weight_shape",
    "to_rows",
]

Shape = tuple[int | None, ...]  #: a static shape; None: unknown until run time (a graph)


class Rows(NamedTuple):
    logits: Any  #: (M, C)
    labels: Any  #: (M,)
    label_shape: tuple[int, ...]  #: the shape of per-example outputs
    restore: Callable[[Any], Any]  #: (M, C) gradient rows -> the layout of the logits


def class_axes(axis: Any, shape: Shape, name: str = "logits", *, several: bool = False) -> Any:
    """The class axis (or, when ``several``, a tuple of axes) normalised to >= 0.

    TypeError for a non-integer axis, ValueError for a scalar, an axis out of range
    or a repeated axis. Returns an int unless ``several`` and ``axis`` is a tuple.
    """
    axes = axis if several and isinstance(axis, tuple) else (axis,)
    if not axes or not all(_is_int(a) for a in axes):
        expected = "an int or a tuple of ints" if several else "an int (the class axis)"
        raise TypeError(f"axis must be {expected}, got {axis!r}")
    ndim = len(shape)
    if ndim == 0:
        raise ValueError(f"{name} must have a class axis, got a scalar")
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for {name} of shape {shape}")
    normalised = tuple(int(a) % ndim for a in axes)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"axis must not repeat an axis, got {axis!r}")
    return normalised if isinstance(axis, tuple) else normalised[0]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _compatible(a: Shape, b: Shape) -> bool:
    return len(a) == len(b) and all(
        x is None or y is None or x == y for x, y in zip(a, b, strict=True)
    )


def label_layout(
    labels_shape: Shape,
    logits_shape: Shape,
    axis: int,
    names: tuple[str, str] = ("logits", "labels"),
    *,
    column: bool = True,
) -> str:
    """How labels are given, decided by shape as Keras and ``F.cross_entropy`` do.

    ``"sparse"``: the shape of the logits without the class axis; ``"column"`` (when
    allowed): with a class axis of size 1 (Keras's (N, 1) labels); ``"one-hot"``: the
    shape of the logits. ``None`` sizes (unknown in a graph) match anything.
    ValueError otherwise.
    """
    logits, labels = names
    expected = logits_shape[:axis] + logits_shape[axis + 1 :]
    if len(labels_shape) == len(logits_shape):
        if (
            column
            and labels_shape[axis] == 1
            and _compatible(labels_shape[:axis] + labels_shape[axis + 1 :], expected)
        ):
            return "column"
        if logits_shape[axis] != 1 and _compatible(labels_shape, logits_shape):
            return "one-hot"
    elif _compatible(labels_shape, expected):
        return "sparse"
    raise ValueError(
        f"{labels} must hold integer class indices of shape {expected} (or one-hot rows of "
        f"shape {logits_shape}) for {logits} of shape {logits_shape} with the class axis "
        f"{axis}, got shape {labels_shape}"
    )


def sample_weight_shape(weight_shape: Shape, label_shape: Shape) -> Shape:
    """The shape sample weights take before broadcasting to the per-example losses.

    One weight per example ((N,) or (N, 1)) or one per loss; trailing axes are added.
    ValueError when they cannot broadcast.
    """
    rank = len(label_shape)
    shape = tuple(weight_shape)
    if len(shape) == rank + 1 and shape[-1] == 1:
        shape = shape[:-1]
    if 0 < len(shape) < rank:
        shape = shape + (1,) * (rank - len(shape))
    fits = len(shape) == 0 or (
        len(shape) == rank
        and all(
            w in (None, 1) or n is None or w == n for w, n in zip(shape, label_shape, strict=True)
        )
    )
    if not fits:
        raise ValueError(
            f"sample_weight must broadcast to the per-example losses of shape {label_shape} "
            f"(one weight per example, or one per loss), got shape {tuple(weight_shape)}"
        )
    return shape


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
    if len(logits_shape) == 1:
        axis = 0
    axis = class_axes(axis, logits_shape, logits)
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
