"""Batch statistics to log during training: relevance, weights, focus, spread.

Definition 2 of the paper: the emphasis spread of a batch is the variance of its
examples' weights. The effective sample size ``(sum w)^2 / sum w^2`` says how many
examples effectively drive the update (N when all weights are equal).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from emphasis import kernel
from emphasis.functional import prepare
from emphasis.schemes import Scheme

__all__ = [
    "BatchStats",
    "Statistics",
    "batch_statistics",
    "batch_stats",
    "effective_sample_size",
    "emphasis_spread",
    "kish_size",
    "spread",
]


class BatchStats(NamedTuple):
    """Statistics of one batch; arrays have the shape of the labels."""

    p: np.ndarray  #: relevance score softmax(z)[y] (NaN where ignored)
    raw_weights: np.ndarray  #: w(p) (0 where ignored)
    weights: np.ndarray  #: the weights applied: w / mean(w) when the scheme normalises
    focus: float  #: the scheme's emphasis focus
    spread: float  #: variance of the raw weights over the valid examples (Definition 2)
    effective_sample_size: float  #: (sum w)^2 / sum w^2 over the valid examples


def spread(weights: Any, valid: Any, xp: Any = np) -> Any:
    """Variance of ``weights`` over the entries where ``valid`` (NaN if none), any namespace."""
    zero = xp.zeros_like(weights)
    count = xp.sum(xp.where(valid, xp.ones_like(weights), zero))
    mean = xp.sum(xp.where(valid, weights, zero)) / count
    return xp.sum(xp.where(valid, (weights - mean) ** 2, zero)) / count


def kish_size(weights: Any, valid: Any, xp: Any = np) -> Any:
    """``(sum w)^2 / sum w^2`` over the entries where ``valid`` (0 if all are 0), any namespace."""
    w = xp.where(valid, weights, xp.zeros_like(weights))
    squares = xp.sum(w * w)
    positive = squares > 0
    ratio = xp.sum(w) ** 2 / xp.where(positive, squares, xp.ones_like(squares))
    return xp.where(positive, ratio, xp.zeros_like(squares))


def _as_valid(values: npt.ArrayLike, where: npt.ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(values, dtype=np.float64).ravel()
    valid = np.ones(array.shape, bool) if where is None else np.asarray(where, bool).ravel()
    return array, valid


def emphasis_spread(weights: npt.ArrayLike, where: npt.ArrayLike | None = None) -> float:
    """Variance of the weights (over the entries where ``where`` is True); NaN if none.

    >>> emphasis_spread([1.0, 1.0, 4.0])
    2.0
    """
    with np.errstate(invalid="ignore"):  # no entry: 0 / 0 is the NaN promised
        return float(spread(*_as_valid(weights, where)))


def effective_sample_size(weights: npt.ArrayLike, where: npt.ArrayLike | None = None) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``; 0 when all weights are 0.

    >>> effective_sample_size([1.0, 1.0, 0.0, 0.0])
    2.0
    """
    return float(kish_size(*_as_valid(weights, where)))


class Statistics(NamedTuple):
    """:class:`BatchStats` of rows, as arrays of the namespace (no host round trip)."""

    p: Any  #: (M,)
    raw_weights: Any  #: (M,)
    weights: Any  #: (M,)
    spread: Any  #: ()
    effective_sample_size: Any  #: ()


def batch_statistics(
    log_p: Any, log_weight: Any, log_mean_weight: Any, valid: Any, xp: Any = np
) -> Statistics:
    """The statistics of rows from what :func:`emphasis.kernel.forward` returns."""
    zero = xp.zeros_like(log_p)
    p = xp.where(valid, xp.exp(log_p), xp.full_like(log_p, math.nan))
    raw = xp.where(valid, xp.exp(log_weight), zero)
    applied = xp.where(valid, xp.exp(log_weight - log_mean_weight), zero)
    return Statistics(p, raw, applied, spread(raw, valid, xp), kish_size(applied, valid, xp))


def batch_stats(
    logits: npt.ArrayLike,
    labels: npt.ArrayLike,
    scheme: Scheme,
    *,
    ignore_index: int = -100,
    axis: int = 1,
    weight: npt.ArrayLike | None = None,
) -> BatchStats:
    """Relevance scores, weights, focus, spread and effective sample size of a batch.

    Args are those of :func:`emphasis.logit_grad`; results are float64.

    >>> import numpy as np, emphasis
    >>> s = emphasis.batch_stats(np.zeros((2, 4)), [0, 1], emphasis.CCE())
    >>> s.p, s.raw_weights, s.spread
    (array([0.25, 0.25]), array([1.5, 1.5]), 0.0)
    """
    batch = prepare(logits, labels, scheme, ignore_index=ignore_index, axis=axis, weight=weight)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        out = kernel.forward(
            batch.logits,
            batch.labels,
            scheme,
            np,
            valid=batch.valid,
            example_weight=batch.example_weight,
        )
        stats = batch_statistics(out.log_p, out.log_weight, out.log_mean_weight, batch.valid)
    p, raw, applied = (
        np.asarray(field, dtype=np.float64).reshape(batch.label_shape) for field in stats[:3]
    )
    return BatchStats(
        p=p,
        raw_weights=raw,
        weights=applied,
        focus=scheme.focus,
        spread=emphasis_spread(raw, batch.valid.reshape(batch.label_shape)),
        effective_sample_size=effective_sample_size(
            applied, batch.valid.reshape(batch.label_shape)
        ),
    )
