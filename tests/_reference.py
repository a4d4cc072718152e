"""An exact reference for the loss and logit gradient, in mpmath at 60 significant digits.

It evaluates Eq. (6) literally, with the authors' eps,

    dL/dz_i = (softmax(z_i) - onehot(y_i)) * w(p_i) / (2 (1 - p_i) + eps),

then GR's normalisation (w_i / weighted mean of w over the valid examples) and the
reduction. At 60 digits the 0/0 of p -> 1 is no problem: 1 - p is formed as the
sum of the non-target probabilities, exactly as the mathematics defines it. The
float inputs are taken exactly (mpmath converts a float64 without rounding).
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np

import emphasis

mp = mpmath.mp.clone()
mp.dps = 60


def _weight(scheme: emphasis.Scheme, p: Any, one_minus_p: Any) -> Any:
    lam = mp.mpf(float(scheme.lam))
    beta = mp.mpf(float(scheme.beta))
    power = mp.mpf(1) if lam == 0 else (mp.mpf(0) if p == 0 else p**lam)
    h = power * one_minus_p
    return mp.exp(beta * h) if scheme.transform == "exp" else beta * h


def _loss(scheme: emphasis.Scheme, p: Any, one_minus_p: Any) -> Any:
    if isinstance(scheme, emphasis.GR):
        scheme = scheme.reported_loss
    if isinstance(scheme, emphasis.MAE):
        return 2 * one_minus_p
    q = float(scheme.q) if isinstance(scheme, emphasis.GCE) else 0.0
    if p == 0:
        return mp.inf if q == 0 else mp.mpf(1) / q
    # log p from 1 - p: at 60 digits, p itself rounds to 1 when 1 - p < 1e-60.
    log_p = mp.log1p(-one_minus_p) if one_minus_p < 0.5 else mp.log(p)
    return -log_p if q == 0 else -mp.expm1(q * log_p) / q


def reference(
    logits: np.ndarray,
    labels: np.ndarray,
    scheme: emphasis.Scheme,
    reduction: str = "mean",
    ignore_index: int = -100,
    weight: np.ndarray | None = None,
) -> tuple[Any, list[list[Any]]]:
    """(loss, grad) in mpmath numbers for (M, C) logits and (M,) labels.

    ``loss`` is one mpf for "mean"/"sum" and a list for "none"; ``grad`` is a list of
    rows of mpf.
    """
    rows = []
    for z, y in zip(logits.tolist(), labels.tolist(), strict=True):
        if y == ignore_index:
            rows.append(None)
            continue
        e = [mp.mpf(0) if v == -np.inf else mp.exp(mp.mpf(v)) for v in z]
        total = mp.fsum(e)
        rest = mp.fsum(e[j] for j in range(len(e)) if j != y)
        p, one_minus_p = e[y] / total, rest / total
        c = mp.mpf(1) if weight is None else mp.mpf(float(weight[y]))
        rows.append((z, y, e, total, p, one_minus_p, c))
    valid = [r for r in rows if r is not None]
    weights = [_weight(scheme, r[4], r[5]) for r in valid]
    mean_w = mp.mpf(1)
    if scheme.normalize and valid:
        total_c = mp.fsum(r[6] for r in valid)
        if total_c > 0:
            mean_w = mp.fsum(r[6] * w for r, w in zip(valid, weights, strict=True)) / total_c
    total_c = mp.fsum(r[6] for r in valid)
    eps = mp.mpf(float(scheme.eps))
    grads: list[list[Any]] = []
    losses: list[Any] = []
    k = 0
    for r in rows:
        if r is None:
            grads.append([mp.mpf(0)] * logits.shape[1])
            losses.append(mp.mpf(0))
            continue
        z, y, e, total, p, one_minus_p, c = r
        w = weights[k] / mean_w
        k += 1
        scale = c / total_c if reduction == "mean" else c
        denominator = 2 * one_minus_p + eps
        if denominator == 0:  # no non-target class left: the gradient is defined as 0
            grads.append([mp.mpf(0)] * len(z))
        else:
            factor = w / denominator * scale
            # -(1 - p), not p - 1: at 60 digits p - 1 would cancel for p within 1e-60 of 1.
            grads.append(
                [(-one_minus_p if j == y else e[j] / total) * factor for j in range(len(z))]
            )
        losses.append(c * _loss(scheme, p, one_minus_p))
    if reduction == "none":
        return losses, grads
    value = mp.fsum(losses)
    return (value / total_c if reduction == "mean" else value), grads


def ulp_error(actual: np.ndarray, exact: Any) -> np.ndarray:
    """|actual - exact| in units of the last place of the float64 nearest to exact.

    Below the smallest normal number the unit is the smallest normal's ulp, so
    that underflow to 0 or to a subnormal counts as at most a fraction of an ulp.
    """
    exact_f = np.array([[float(v) for v in row] for row in exact], dtype=np.float64)
    diff = np.array(
        [
            [abs(mp.mpf(float(a)) - v) for a, v in zip(arow, erow, strict=True)]
            for arow, erow in zip(actual.tolist(), exact, strict=True)
        ],
        dtype=float,
    )
    unit = np.spacing(np.maximum(np.abs(exact_f), np.finfo(np.float64).tiny))
    return np.asarray(diff / unit)
