"""The stable logit gradient of Eq. (6), written once against an array namespace.

This module is what the adapters call: every function takes ``xp``, an array
namespace (``numpy``, ``array_api_compat.torch``, ``jax.numpy``, ``keras.ops``,
``tensorflow.experimental.numpy``) and uses only elementwise functions,
``where``, ``max``, ``sum``, ``arange``, ``take_along_axis`` and broadcasting, so the same code runs
eagerly, under ``torch.compile``, ``tf.function``/XLA and ``jax.jit``. (A namespace
needs: ``arange, where, exp, expm1, log, logaddexp, max, sum, take_along_axis,
zeros_like, ones_like, full_like``, plus ``moveaxis`` and ``reshape`` for layouts.)

Rows are examples: ``logits`` has shape (M, C) and ``labels`` shape (M,) (see
:mod:`emphasis._layout` for N-d and channels-last inputs).

The mathematics. With ``p = softmax(z)[y]``, Eq. (6) reads

    dL/dz = (softmax(z) - onehot(y)) * w(p) / (2 (1 - p)),

which is 0/0 as p -> 1 when computed literally (float32 gives NaN already at
z = [20, 0, 0, 0]). For j != y, ``softmax(z)_j / (1 - p)`` is the softmax of the
non-target logits alone, so the exact and stable form is

    dL/dz = (w / 2) * d,   d_j = softmax(z_rest)_j (j != y),   d_y = -1,

every row of which sums to 0 and has L1 norm w. With the authors' eps the
gradient is multiplied by ``(1 - p) / ((1 - p) + eps / 2)``. ``log p`` and
``log(1 - p)`` come from the log-odds ``u = log((1 - p) / p) =
logsumexp(z_rest) - z_y`` as ``-softplus(u)`` and ``-softplus(-u)``, never as
``1 - softmax``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np

from emphasis._validation import is_concrete_number
from emphasis.schemes import Scheme

__all__ = [
    "AllReduce",
    "ArrayNamespace",
    "Forward",
    "coefficients",
    "compute_dtype_name",
    "forward",
    "grad_rows",
    "log_mean_weight",
    "reduce_losses",
    "relevance",
    "safe_labels",
]


class ArrayNamespace(Protocol):
    """The functions the kernel calls on its namespace ``xp`` (NumPy's names and meanings).

    ``numpy`` and ``jax.numpy`` satisfy it as they are; the adapters' own namespaces
    (``emphasis_torch._namespace.TorchNamespace``, emphasis_tf's Keras namespace) are
    checked against it by mypy.
    """

    def arange(self, stop: int, dtype: Any = ...) -> Any: ...
    def where(self, condition: Any, x: Any, y: Any, /) -> Any: ...
    def exp(self, x: Any, /) -> Any: ...
    def expm1(self, x: Any, /) -> Any: ...
    def log(self, x: Any, /) -> Any: ...
    def logaddexp(self, x: Any, y: Any, /) -> Any: ...
    def max(self, x: Any, axis: int | None = ...) -> Any: ...
    def sum(self, x: Any, axis: int | None = ...) -> Any: ...
    def take_along_axis(self, x: Any, indices: Any, axis: int) -> Any: ...
    def zeros_like(self, x: Any, /) -> Any: ...
    def ones_like(self, x: Any, /) -> Any: ...
    def full_like(self, x: Any, value: float, /) -> Any: ...
    def moveaxis(self, x: Any, source: int, destination: int, /) -> Any: ...
    def reshape(self, x: Any, shape: Any, /) -> Any: ...


#: ``all_reduce(x, op)`` with op "sum" or "max": combines a scalar over the devices
#: of a data-parallel job, so that GR's normalisation runs over the global batch.
AllReduce = Callable[[Any, str], Any]


class Relevance(NamedTuple):
    """Per-example quantities of the softmax, each of shape (M,)."""

    log_p: Any  #: log p, p = softmax(z)[y]
    log_1mp: Any  #: log(1 - p), without cancellation
    rest_max: Any  #: max of the non-target logits (0 when all are -inf): the softmax shift
    rest_sum: Any  #: sum_j!=y exp(z_j - rest_max) (0 when all are -inf)


class Forward(NamedTuple):
    """What a forward pass computes; ``coef``, ``rest_max`` and ``rest_sum`` are all the backward needs."""

    loss: Any  #: (M,) per-example loss value (0 for ignored rows)
    coef: Any  #: (M,) per-example gradient scale: grad_i = coef_i * d_i
    rest_max: Any  #: (M,) see :class:`Relevance`
    rest_sum: Any  #: (M,)
    log_p: Any  #: (M,)
    log_weight: Any  #: (M,) log of the raw weight w(p)
    log_mean_weight: Any  #: () log of the normaliser (0 when the scheme does not normalise)


def compute_dtype_name(dtype_name: str) -> str:
    """The adapters' compute dtype: float64 for float64 input, float32 for every other float.

    exp(beta ...) overflows float16 at beta > 11, so 16-bit inputs never compute in
    their own dtype. (The NumPy core itself computes in ``np.longdouble``: it is the
    reference, see :func:`emphasis.functional.compute_dtype`.)

    >>> compute_dtype_name("bfloat16")
    'float32'
    """
    return "float64" if dtype_name == "float64" else "float32"


def _one_hot(labels: Any, num_classes: int, xp: Any) -> Any:
    return xp.arange(num_classes, dtype=labels.dtype) == labels[:, None]


def safe_labels(labels: Any, ignore_index: int, xp: Any = np) -> tuple[Any, Any]:
    """Return ``(labels with ignored entries set to 0, valid mask)``."""
    valid = labels != ignore_index
    return xp.where(valid, labels, xp.zeros_like(labels)), valid


class RowStatistics(NamedTuple):
    """The only quantities of a row (M,) that need a pass over its C logits."""

    z_label: Any  #: the labelled logit z_y
    rest_max: Any  #: max of the other logits (-inf when all are -inf, or C = 1)
    rest_sum: Any  #: sum_j!=y exp(z_j - max(rest_max, 0 if -inf)) (0 when all are -inf)


def row_statistics(logits: Any, labels: Any, xp: Any = np) -> RowStatistics:
    """z_y and the max and shifted sum of the non-target logits of each row.

    This is the pass over (M, C); a fused kernel (emphasis_torch's Triton kernel)
    computes the same three vectors and hands them to :func:`relevance_of`.
    """
    target = _one_hot(labels, logits.shape[-1], xp)
    z_y = xp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
    rest = xp.where(target, xp.full_like(logits, -math.inf), logits)
    m = xp.max(rest, axis=-1)
    m_safe = xp.where(m > -math.inf, m, xp.zeros_like(m))
    s = xp.sum(xp.exp(rest - m_safe[:, None]), axis=-1)
    return RowStatistics(z_y, m, s)


def relevance_of(stats: RowStatistics, xp: Any = np) -> Relevance:
    """:class:`Relevance` from :class:`RowStatistics`: O(M), no pass over the logits."""
    m = stats.rest_max
    log_odds = (m - stats.z_label) + xp.log(stats.rest_sum)  # log((1 - p) / p), one rounding
    zero = xp.zeros_like(log_odds)
    return Relevance(
        log_p=-xp.logaddexp(zero, log_odds),
        log_1mp=-xp.logaddexp(zero, -log_odds),
        rest_max=xp.where(m > -math.inf, m, xp.zeros_like(m)),
        rest_sum=stats.rest_sum,
    )


def relevance(logits: Any, labels: Any, xp: Any = np) -> Relevance:
    """log p, log(1 - p) and the non-target log-sum-exp of each row.

    Args:
        logits: (M, C) floating array; entries may be -inf, not NaN or +inf.
        labels: (M,) integer class indices in [0, C).
        xp: array namespace.

    A row whose target logit is -inf has p = 0; a row whose other logits are all
    -inf has p = 1. A row of only -infs has no softmax and gives NaN.
    """
    return relevance_of(row_statistics(logits, labels, xp), xp)


def log_mean_weight(
    log_weight: Any,
    example_weight: Any,
    xp: Any = np,
    all_reduce: AllReduce | None = None,
) -> Any:
    """``log(sum_i c_i w_i / sum_i c_i)``, the normaliser of GR's weights.

    Args:
        log_weight: (M,) log w_i.
        example_weight: (M,) c_i >= 0; 0 for ignored rows (they count neither in the
            numerator nor in the denominator). 1 for plain examples, the class weight
            of the label otherwise.
        all_reduce: optional cross-device reduction for a global-batch mean.

    Computed with a max shift, so exp(beta h) never overflows. Returns 0 when no
    example has positive weight (nothing to normalise).
    """
    counted = example_weight > 0
    masked = xp.where(counted, log_weight, xp.full_like(log_weight, -math.inf))
    if log_weight.shape[0] == 0:  # an empty batch (shapes are static, also under jit)
        m = xp.full_like(xp.sum(log_weight), -math.inf)
    else:
        m = xp.max(masked)
    if all_reduce is not None:
        m = all_reduce(m, "max")
    m = xp.where(m > -math.inf, m, xp.zeros_like(m))
    s = xp.sum(xp.where(counted, example_weight * xp.exp(masked - m), xp.zeros_like(masked)))
    total = xp.sum(example_weight)
    if all_reduce is not None:
        s = all_reduce(s, "sum")
        total = all_reduce(total, "sum")
    ok = (s > 0) & (total > 0)
    one = xp.ones_like(s)
    return xp.where(ok, m + xp.log(xp.where(ok, s, one)) - xp.log(xp.where(ok, total, one)), 0 * s)


def _eps_factor(log_1mp: Any, eps: Any, xp: Any) -> Any:
    """``(1 - p) / ((1 - p) + eps/2)``; exactly 1 when eps = 0 (exact Eq. (6))."""
    if is_concrete_number(eps) and eps == 0:
        return None
    one_minus_p = xp.exp(log_1mp)
    ratio = one_minus_p / (one_minus_p + eps / 2)
    if is_concrete_number(eps):
        return ratio
    return xp.where(eps > 0, ratio, xp.ones_like(ratio))


def coefficients(
    rel: Relevance,
    log_weight: Any,
    log_mean: Any,
    scheme: Scheme,
    valid: Any,
    xp: Any = np,
) -> Any:
    """Per-example gradient scale ``(w_i / mean w) / 2 * eps_factor_i``; 0 if inert.

    A row is inert when it is ignored or has no non-target class left (all other
    logits -inf): its gradient is zero.
    """
    coef = xp.exp(log_weight - log_mean - math.log(2.0))
    factor = _eps_factor(rel.log_1mp, scheme.eps, xp)
    if factor is not None:
        coef = coef * factor
    live = valid & (rel.rest_sum > 0)
    return xp.where(live, coef, xp.zeros_like(coef))


def forward(
    logits: Any,
    labels: Any,
    scheme: Scheme,
    xp: Any = np,
    *,
    valid: Any = None,
    example_weight: Any = None,
    all_reduce: AllReduce | None = None,
    stats: RowStatistics | None = None,
) -> Forward:
    """Loss values and gradient coefficients of each row.

    Args:
        logits: (M, C) floating array.
        labels: (M,) class indices in [0, C) (see :func:`safe_labels`).
        scheme: a :class:`~emphasis.Scheme`.
        valid: (M,) bool mask of rows that count; all rows when None.
        example_weight: (M,) weights used in GR's normalising mean (class weights of
            the labels); ones when None. They are *not* applied to ``loss`` or
            ``coef``: the caller multiplies the per-example loss by them, and the
            chain rule carries them into the gradient.
        all_reduce: see :func:`log_mean_weight`.
        stats: the rows' :class:`RowStatistics` when a fused kernel computed them
            (``logits`` is then not read).
    """
    rel = relevance_of(row_statistics(logits, labels, xp) if stats is None else stats, xp)
    if valid is None:
        valid = xp.ones_like(rel.log_p) > 0
    log_weight = scheme.log_weight(rel.log_p, rel.log_1mp, xp)
    if scheme.normalize:
        if example_weight is None:
            example_weight = xp.where(valid, xp.ones_like(rel.log_p), xp.zeros_like(rel.log_p))
        else:
            example_weight = xp.where(valid, example_weight, xp.zeros_like(example_weight))
        log_mean = log_mean_weight(log_weight, example_weight, xp, all_reduce)
    else:
        log_mean = 0.0
    coef = coefficients(rel, log_weight, log_mean, scheme, valid, xp)
    loss = scheme.loss_value(rel.log_p, rel.log_1mp, xp)
    loss = xp.where(valid, loss, xp.zeros_like(loss))
    return Forward(loss, coef, rel.rest_max, rel.rest_sum, rel.log_p, log_weight, log_mean)


def reduce_losses(losses: Any, example_weight: Any, reduction: str, xp: Any = np) -> Any:
    """Reduce per-example losses (already weighted, 0 where ignored) as torch does.

    ``"mean"`` divides by ``sum(example_weight)`` (the count of valid examples, or the
    sum of their class weights); a mean over no valid example is NaN, with a zero
    gradient (as ``F.cross_entropy``).
    """
    if reduction == "none":
        return losses
    total = xp.sum(losses)
    if reduction == "sum":
        return total
    count = xp.sum(example_weight)
    positive = count > 0
    mean = total / xp.where(positive, count, xp.ones_like(count))
    return xp.where(positive, mean, xp.full_like(mean, math.nan))


def grad_rows(
    logits: Any, labels: Any, coef: Any, rest_max: Any, rest_sum: Any, xp: Any = np
) -> Any:
    """The gradient rows ``coef_i * d_i`` from what :func:`forward` saved.

    ``d_ij = exp(z_ij - rest_max_i) / rest_sum_i`` for j != y_i (the softmax of the
    non-target logits) and ``d_iy = -1``. The shift is a logit itself, so
    ``z - rest_max`` is exact where it matters and each entry costs two roundings
    at any logit scale (a rounded log-sum-exp shift would cost |z| ulp). Recomputing
    ``d`` here keeps the saved state to the logits plus three (M,) vectors.

    Args:
        logits: (M, C); labels: (M,); coef, rest_max, rest_sum: (M,).

    Returns:
        (M, C) array: the gradient of each row's loss with respect to its logits.
    """
    target = _one_hot(labels, logits.shape[-1], xp)
    # Rows without non-target classes have rest_sum == 0 and coef == 0.
    scale = coef / xp.where(rest_sum > 0, rest_sum, xp.ones_like(rest_sum))
    # exp of the masked logits, written exactly as row_statistics writes it: under a tracing
    # compiler (jax.jit, XLA) the two are one array, computed once for forward and backward
    # (common-subexpression elimination), and the target's own exp(z_y - rest_max), which
    # may overflow, is never formed.
    rest = xp.where(target, xp.full_like(logits, -math.inf), logits)
    return xp.where(target, -coef[:, None], xp.exp(rest - rest_max[:, None]) * scale[:, None])
