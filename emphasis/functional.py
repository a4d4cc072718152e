"""The NumPy API: loss values and logit gradients of a batch.

These functions validate their input, lay it out in rows and call
:mod:`emphasis.kernel`, the same code the framework adapters run.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from emphasis import kernel
from emphasis._layout import to_rows
from emphasis._validation import (
    check_class_weight,
    check_ignore_index,
    check_label_values,
    check_logits_values,
    check_reduction,
)
from emphasis._value_checks import logits_message
from emphasis.schemes import Scheme

__all__ = ["logit_grad", "loss", "loss_and_grad"]


def compute_dtype(dtype: Any) -> np.dtype[Any]:
    """The NumPy core computes every float input in ``np.longdouble``.

    This is the reference implementation, so it buys accuracy with speed: the
    kernel's exps have arguments up to ~745 in magnitude, whose rounding costs up
    to |x| ulp in a working precision equal to the output's. x86-64's 80-bit
    extended precision carries 11 more bits, which brings float64 results to
    within ~1.5 ulp of the exact values at every logit scale (measured against
    mpmath in the tests), and float32/16-bit results to correct rounding. Where
    ``longdouble`` is plain float64 (Windows, macOS on Arm) float64 results keep
    the error of the float64 algorithm, up to ~|x| ulp. The result is returned
    in the input dtype.
    """
    dtype = np.dtype(dtype)
    name = dtype.name
    if dtype.kind == "f" or name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        return np.dtype(np.longdouble)
    raise TypeError(f"logits must be a floating-point array, got dtype {name}")


class Batch(NamedTuple):
    """A validated batch in rows (computed in float32 or float64)."""

    logits: np.ndarray  #: (M, C)
    labels: np.ndarray  #: (M,) in [0, C), 0 where ignored
    valid: np.ndarray  #: (M,) bool
    example_weight: np.ndarray  #: (M,) class weight of the label, 0 where ignored
    label_shape: tuple[int, ...]
    restore: Any
    dtype: np.dtype[Any]  #: the input dtype


def prepare(
    logits: npt.ArrayLike,
    labels: npt.ArrayLike,
    scheme: Scheme,
    *,
    ignore_index: int = -100,
    axis: int = 1,
    weight: npt.ArrayLike | None = None,
) -> Batch:
    """Validate a batch and lay it out in rows."""
    if not isinstance(scheme, Scheme):
        raise TypeError(
            f"scheme must be an emphasis scheme (CCE(), MAE(), GCE(q), GR(beta, lam)), got "
            f"{scheme!r}"
        )
    logits = np.asarray(logits)
    dtype = logits.dtype
    logits = logits.astype(compute_dtype(dtype), copy=False)
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    check_ignore_index(ignore_index)
    check_logits_values(logits)
    rows = to_rows(logits, labels, axis, np)
    num_classes = rows.logits.shape[-1]
    valid = check_label_values(rows.labels, num_classes, ignore_index)
    safe = np.where(valid, rows.labels, 0).astype(np.int64)
    dead = valid & np.all(np.isneginf(rows.logits), axis=-1)
    if dead.any():
        raise ValueError(logits_message("dead", example=int(np.argmax(dead))))
    class_weight = check_class_weight(weight, num_classes)
    example_weight = (
        valid.astype(rows.logits.dtype)
        if class_weight is None
        else np.where(valid, class_weight.astype(rows.logits.dtype)[safe], 0)
    )
    return Batch(rows.logits, safe, valid, example_weight, rows.label_shape, rows.restore, dtype)


def _reduction_scale(example_weight: np.ndarray, reduction: str) -> np.ndarray:
    """Per-example factor of the reduced loss: c_i / sum(c) for "mean", c_i otherwise."""
    if reduction != "mean":
        return example_weight
    total = example_weight.sum()
    return example_weight / total if total > 0 else np.zeros_like(example_weight)


def loss_and_grad(
    logits: npt.ArrayLike,
    labels: npt.ArrayLike,
    scheme: Scheme,
    reduction: str = "mean",
    *,
    ignore_index: int = -100,
    axis: int = 1,
    weight: npt.ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The reported loss and its logit gradient, dL/dz, in one pass.

    Args:
        logits: unnormalised scores, shape (C,), (N, C) or (N, C, d1, ..., dk); any
            float dtype (16-bit floats compute in float32). Entries may be -inf, not
            NaN or +inf.
        labels: integer class indices, shape (), (N,) or (N, d1, ..., dk); entries
            equal to ``ignore_index`` are ignored.
        scheme: ``CCE()``, ``MAE()``, ``GCE(q)`` or ``GR(beta, lam, ...)``.
        reduction: ``"mean"`` over the valid examples (weighted by the class weight of
            each label when ``weight`` is given, as torch does), ``"sum"`` or
            ``"none"``.
        ignore_index: label value whose examples get zero loss and zero gradient and
            count neither in the mean nor in GR's normalisation.
        axis: the class axis of ``logits`` (1 by default; -1 for channels-last).
        weight: optional (C,) class weights, multiplying each example's loss and
            gradient (its weight), as in ``torch.nn.functional.cross_entropy``.

    Returns:
        ``(loss, grad)``: loss is a scalar (shape ()) or, for ``"none"``, has the
        shape of ``labels``; grad has the shape and dtype of ``logits``. For
        ``"none"`` each example's gradient row is the gradient of its own loss.

    The gradient of example i is ``(w_i / 2) * d_i`` (see :mod:`emphasis.kernel`),
    scaled by GR's normalisation (mean weight 1 over the valid examples), eps and
    the reduction. For GR the loss is the scheme's ``reported_loss`` (CCE by
    default), whose gradient is not GR's.

    >>> import numpy as np, emphasis
    >>> z = np.array([[2.0, 0.0, 0.0]])
    >>> emphasis.logit_grad(z, [0], emphasis.CCE()).round(4)
    array([[-0.213 ,  0.1065,  0.1065]])
    """
    reduction_ = check_reduction(reduction)
    batch = prepare(logits, labels, scheme, ignore_index=ignore_index, axis=axis, weight=weight)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        # log(0) and exp overflow occur only in branches that `where` discards.
        return _loss_and_grad(batch, scheme, reduction_)


def _loss_and_grad(batch: Batch, scheme: Scheme, reduction_: str) -> tuple[np.ndarray, np.ndarray]:
    out = kernel.forward(
        batch.logits,
        batch.labels,
        scheme,
        np,
        valid=batch.valid,
        example_weight=batch.example_weight,
    )
    scale = _reduction_scale(batch.example_weight, reduction_)
    grad = kernel.grad_rows(
        batch.logits, batch.labels, out.coef * scale, out.rest_max, out.rest_sum, np
    )
    grad = batch.restore(grad).astype(batch.dtype)
    value = kernel.reduce_losses(out.loss * batch.example_weight, batch.example_weight, reduction_)
    if reduction_ == "none":
        value = value.reshape(batch.label_shape)
    return np.asarray(value).astype(batch.dtype), grad


def logit_grad(
    logits: npt.ArrayLike,
    labels: npt.ArrayLike,
    scheme: Scheme,
    reduction: str = "mean",
    *,
    ignore_index: int = -100,
    axis: int = 1,
    weight: npt.ArrayLike | None = None,
) -> np.ndarray:
    """dL/dz of a batch, shaped like ``logits``. See :func:`loss_and_grad`.

    >>> import numpy as np, emphasis
    >>> g = emphasis.logit_grad(
    ...     np.array([[20.0, 0.0, 0.0, 0.0]]), [0], emphasis.GR(8, 0.5, normalize=False, eps=0)
    ... )
    >>> g.round(3)
    array([[-0.5  ,  0.167,  0.167,  0.167]])
    """
    return loss_and_grad(
        logits,
        labels,
        scheme,
        reduction=reduction,
        ignore_index=ignore_index,
        axis=axis,
        weight=weight,
    )[1]


def loss(
    logits: npt.ArrayLike,
    labels: npt.ArrayLike,
    scheme: Scheme,
    reduction: str = "mean",
    *,
    ignore_index: int = -100,
    axis: int = 1,
    weight: npt.ArrayLike | None = None,
) -> np.ndarray:
    """The reported loss value of a batch. See :func:`loss_and_grad`.

    >>> import numpy as np, emphasis
    >>> float(emphasis.loss(np.array([[0.0, 0.0]]), [1], emphasis.CCE()).round(4))
    0.6931
    """
    return loss_and_grad(
        logits,
        labels,
        scheme,
        reduction=reduction,
        ignore_index=ignore_index,
        axis=axis,
        weight=weight,
    )[0]
