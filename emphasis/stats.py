"""Batch statistics to log during training: relevance, weights, focus, spread.

Definition 2 of the paper: the emphasis spread of a batch is the variance of its
examples' weights. The effective sample size ``(sum w)^2 / sum w^2`` says how many
examples effectively drive the update (N when all weights are equal).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from emphasis import kernel
from emphasis.functional import prepare
from emphasis.schemes import Scheme

__all__ = ["BatchStats", "batch_stats", "effective_sample_size", "emphasis_spread"]


class BatchStats(NamedTuple):
    """Statistics of one batch; arrays have the shape of the labels."""

    p: np.ndarray  #: relevance score softmax(z)[y] (NaN where ignored)
    raw_weights: np.ndarray  #: w(p) (0 where ignored)
    weights: np.ndarray  #: the weights applied: w / mean(w) when the scheme normalises
    focus: float  #: the scheme's emphasis focus
    spread: float  #: variance of the raw weights over the valid examples (Definition 2)
    effective_sample_size: float  #: (sum w)^2 / sum w^2 over the valid examples


def _valid_values(values: npt.ArrayLike, where: npt.ArrayLike | None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if where is not None:
        array = array[np.asarray(where, dtype=bool)]
    return array.ravel()


def emphasis_spread(weights: npt.ArrayLike, where: npt.ArrayLike | None = None) -> float:
    """Variance of the weights (over the entries where ``where`` is True); NaN if none.

    >>> emphasis_spread([1.0, 1.0, 4.0])
    2.0
    """
    values = _valid_values(weights, where)
    return float(values.var()) if values.size else float("nan")


def effective_sample_size(weights: npt.ArrayLike, where: npt.ArrayLike | None = None) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``; 0 when all weights are 0.

    >>> effective_sample_size([1.0, 1.0, 0.0, 0.0])
    2.0
    """
    values = _valid_values(weights, where)
    squares = float(np.sum(values**2))
    return float(np.sum(values) ** 2 / squares) if squares > 0 else 0.0


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
    valid = batch.valid
    p = np.where(valid, np.exp(out.log_p), np.nan).astype(np.float64)
    raw = np.where(valid, np.exp(out.log_weight), 0.0).astype(np.float64)
    applied = np.where(valid, np.exp(out.log_weight - out.log_mean_weight), 0.0).astype(np.float64)
    shape = batch.label_shape
    return BatchStats(
        p=p.reshape(shape),
        raw_weights=raw.reshape(shape),
        weights=applied.reshape(shape),
        focus=scheme.focus,
        spread=emphasis_spread(raw, valid),
        effective_sample_size=effective_sample_size(applied, valid),
    )
