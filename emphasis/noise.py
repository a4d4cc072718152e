"""Synthetic label noise for experiments with noisy labels.

Every generator takes clean integer labels of any shape and returns a
:class:`NoisyLabels` triple ``(labels, flipped, realised_rate)``. Noise is described
by a row-stochastic *transition matrix* ``T`` of shape ``(K, K)``::

    T[i, j] = P(noisy label = j | clean label = i)

Two conventions for "symmetric noise at rate r" exist in the literature; this module
implements the paper's and names the other one explicitly:

* **The paper's (default here).** With probability ``r`` the label is replaced by one
  of the *other* ``K - 1`` classes chosen uniformly (Wang et al., Sec. 4.2, following
  Tanaka et al. 2018 and Ma et al. 2018). The expected fraction of wrong labels (the
  realised rate) is ``r``::

      T[i, i] = 1 - r,    T[i, j] = r / (K - 1)  for j != i

  This is :func:`symmetric_noise` and
  ``symmetric_transition_matrix(K, r)`` (``include_true_class=False``).

* **"Resample over all classes".** With probability ``r`` the label is redrawn
  uniformly from all ``K`` classes, so it may land on the true class again and the
  realised rate is only ``r (K - 1) / K`` (the ambiguity discussed in DivideMix
  issue #29)::

      T[i, i] = 1 - r + r / K,    T[i, j] = r / K  for j != i

  Get it with
  ``transition_noise(labels, symmetric_transition_matrix(K, r, include_true_class=True))``.

Random numbers come from :func:`numpy.random.default_rng`; ``seed`` may be ``None``
(fresh entropy), an ``int`` (reproducible) or a :class:`numpy.random.Generator`
(whose state is advanced). The module is pure NumPy.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "NoisyLabels",
    "empirical_transition_matrix",
    "pair_noise",
    "pair_transition_matrix",
    "symmetric_noise",
    "symmetric_transition_matrix",
    "transition_noise",
]

#: Tolerance on ``|sum_j T[i, j] - 1|`` accepted by :func:`transition_noise`.
ROW_SUM_TOLERANCE = 1e-6

#: Accepted types of ``seed``.
SeedLike = None | int | np.integer[Any] | np.random.Generator
#: Accepted types of a rate (Python or NumPy real scalar).
RealLike = float | np.floating[Any] | np.integer[Any]
#: Accepted types of a class count (Python or NumPy integer).
IntLike = int | np.integer[Any]


class NoisyLabels(NamedTuple):
    """Result of a label-noise generator.

    Attributes:
        labels: The noisy labels, ``int64``, same shape as the clean labels given.
        flipped: Boolean mask of the same shape, ``True`` exactly where the noisy label
            differs from the clean one (``flipped == (labels != clean)``).
        realised_rate: ``flipped.mean()``: the fraction of labels actually changed;
            ``0.0`` for an empty input.

    Example:
        >>> import numpy as np
        >>> out = NoisyLabels(np.array([1, 1]), np.array([True, False]), 0.5)
        >>> out.realised_rate
        0.5
        >>> labels, flipped, rate = out
    """

    labels: np.ndarray
    flipped: np.ndarray
    realised_rate: float


# ---------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------


def _check_rate(rate: Any, name: str = "rate") -> float:
    if isinstance(rate, bool) or not isinstance(rate, (numbers.Real, np.ndarray)):
        raise TypeError(f"{name} must be a real number in [0, 1], got {rate!r}")
    if isinstance(rate, np.ndarray):
        if rate.ndim != 0 or rate.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a real number in [0, 1], got {rate!r}")
    value = float(rate)
    if not np.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    value = int(num_classes)
    if value < 2:
        raise ValueError(f"num_classes must be >= 2, got {value}")
    return value


def _as_label_array(labels: Any, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as an ``int64`` array after checking dtype and sign."""
    array = np.asarray(labels)
    if array.size == 0:
        # ``np.asarray([])`` is float64: accept any empty array.
        return np.zeros(array.shape, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"{name} must be an array of integer class indices, got dtype {array.dtype}"
        )
    if array.min() < 0:
        raise ValueError(f"{name} must be non-negative class indices, got {int(array.min())}")
    if array.dtype == np.uint64 and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} contains a value too large: {int(array.max())}")
    return array.astype(np.int64, copy=False)


def _check_labels(labels: Any, num_classes: Any) -> tuple[np.ndarray, int | None]:
    """Validate labels against ``num_classes`` (inferred when None).

    Returns the ``int64`` labels and the class count (``None`` only for empty labels
    with ``num_classes=None``).
    """
    array = _as_label_array(labels)
    if num_classes is None:
        if array.size == 0:
            return array, None
        inferred = int(array.max()) + 1
        if inferred < 2:
            raise ValueError(
                "num_classes must be >= 2; inferred labels.max() + 1 = "
                f"{inferred}, pass num_classes explicitly"
            )
        return array, inferred
    k = _check_num_classes(num_classes)
    if array.size and int(array.max()) >= k:
        raise ValueError(
            f"labels must be class indices in [0, {k - 1}] for num_classes={k}, "
            f"got {int(array.max())}"
        )
    return array, k


def _make_rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not (
        seed is None or isinstance(seed, (numbers.Integral, np.random.SeedSequence))
    ):
        raise TypeError(
            f"seed must be None, a non-negative int or a numpy.random.Generator, got {seed!r}"
        )
    if isinstance(seed, numbers.Integral):
        seed = int(seed)
    try:
        return np.random.default_rng(seed)
    except ValueError as error:  # negative int
        raise ValueError(
            f"seed must be None, a non-negative int or a numpy.random.Generator, got {seed!r}"
        ) from error


def _check_matrix(matrix: Any) -> np.ndarray:
    t = np.asarray(matrix)
    if t.dtype.kind not in "iuf":
        raise TypeError(f"matrix must be a real array of shape (K, K), got {t.dtype}")
    t = t.astype(np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"matrix must be square with shape (K, K), got {t.shape}")
    if t.shape[0] < 2:
        raise ValueError(f"matrix must be K x K with K >= 2 classes, got {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError("matrix must contain finite probabilities, got NaN or inf")
    if (t < 0).any():
        i, j = np.argwhere(t < 0)[0]
        raise ValueError(f"matrix must have non-negative entries, got matrix[{i}, {j}] = {t[i, j]}")
    sums = t.sum(axis=1)
    bad = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            "matrix must be row-stochastic (each row sums to 1 within "
            f"{ROW_SUM_TOLERANCE:g}), got row {i} summing to {sums[i]!r}"
        )
    return t


def _result(clean: np.ndarray, noisy: np.ndarray) -> NoisyLabels:
    flipped = np.asarray(noisy != clean)
    rate = float(flipped.mean()) if flipped.size else 0.0
    return NoisyLabels(noisy, flipped, rate)


# ---------------------------------------------------------------------------
# transition matrices
# ---------------------------------------------------------------------------


def symmetric_transition_matrix(
    num_classes: IntLike, rate: RealLike, *, include_true_class: bool = False
) -> np.ndarray:
    r"""Transition matrix of symmetric (uniform) label noise.

    With ``include_true_class=False`` (the paper's convention, the default), a label
    is moved with probability ``r`` to one of the *other* ``K - 1`` classes::

        T[i, i] = 1 - r,        T[i, j] = r / (K - 1)   (j != i)

    and the expected fraction of changed labels is ``r``. With
    ``include_true_class=True`` ("resample over all classes") a label is redrawn with
    probability ``r`` uniformly from all ``K`` classes::

        T[i, i] = 1 - r + r / K,  T[i, j] = r / K       (j != i)

    so the expected fraction of changed labels is ``r (K - 1) / K``.

    Args:
        num_classes: ``K >= 2``.
        rate: ``r`` in ``[0, 1]``.
        include_true_class: Choose the convention (see above). Default ``False``.

    Returns:
        ``float64`` array of shape ``(K, K)``; every row sums to 1.

    Example:
        >>> symmetric_transition_matrix(3, 0.3)
        array([[0.7 , 0.15, 0.15],
               [0.15, 0.7 , 0.15],
               [0.15, 0.15, 0.7 ]])
        >>> symmetric_transition_matrix(4, 0.4, include_true_class=True).diagonal()
        array([0.7, 0.7, 0.7, 0.7])
    """
    k = _check_num_classes(num_classes)
    r = _check_rate(rate)
    if not isinstance(include_true_class, (bool, np.bool_)):
        raise TypeError(f"include_true_class must be a bool, got {include_true_class!r}")
    if include_true_class:
        off, diag = r / k, 1.0 - r + r / k
    else:
        off, diag = r / (k - 1), 1.0 - r
    t = np.full((k, k), off, dtype=np.float64)
    np.fill_diagonal(t, diag)
    return t


def pair_transition_matrix(num_classes: IntLike, rate: RealLike) -> np.ndarray:
    """Transition matrix of pair-flip (asymmetric) noise.

    Class ``k`` is flipped to class ``(k + 1) mod K`` with probability ``r``::

        T[i, i] = 1 - r,   T[i, (i + 1) mod K] = r,   0 elsewhere.

    Args:
        num_classes: ``K >= 2``.
        rate: ``r`` in ``[0, 1]``.

    Returns:
        ``float64`` array of shape ``(K, K)``; every row sums to 1.

    Example:
        >>> pair_transition_matrix(3, 0.25)
        array([[0.75, 0.25, 0.  ],
               [0.  , 0.75, 0.25],
               [0.25, 0.  , 0.75]])
    """
    k = _check_num_classes(num_classes)
    r = _check_rate(rate)
    t = np.zeros((k, k), dtype=np.float64)
    rows = np.arange(k)
    t[rows, rows] = 1.0 - r
    t[rows, (rows + 1) % k] += r
    return t


# ---------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------


def symmetric_noise(
    labels: npt.ArrayLike,
    rate: RealLike,
    num_classes: IntLike | None = None,
    *,
    seed: SeedLike = None,
) -> NoisyLabels:
    """Symmetric label noise as defined in the paper (flip to a *different* class).

    Independently for every label ``y``: with probability ``r`` it is replaced by one
    of the other ``K - 1`` classes chosen uniformly, otherwise it is kept. In terms of
    the transition matrix::

        T[i, i] = 1 - r,    T[i, j] = r / (K - 1)   (j != i)

    so every flipped label differs from the clean one and the expected realised rate
    is exactly ``r`` (``rate=1`` changes every label).

    This is **not** the "resample over all classes" convention also found in the
    literature, whose realised rate is only ``r (K - 1) / K`` (see DivideMix issue
    #29). To get that one, use
    ``transition_noise(labels, symmetric_transition_matrix(K, r,
    include_true_class=True))``.

    Args:
        labels: clean class indices in ``[0, K)``, any shape.
        rate: Noise rate ``r`` in ``[0, 1]``.
        num_classes: ``K >= 2``; defaults to ``labels.max() + 1``.
        seed: Randomness; an ``int`` makes the result reproducible.

    Returns:
        ``labels`` (``int64``, input shape), ``flipped`` mask, ``realised_rate``.

    Example:
        >>> import numpy as np
        >>> clean = np.arange(10) % 5
        >>> out = symmetric_noise(clean, 0.4, seed=0)
        >>> out.labels.shape, out.labels.dtype
        ((10,), dtype('int64'))
        >>> bool(np.all(out.flipped == (out.labels != clean)))
        True
        >>> symmetric_noise(clean, 1.0, seed=0).realised_rate
        1.0
    """
    r = _check_rate(rate)
    clean, k = _check_labels(labels, num_classes)
    rng = _make_rng(seed)
    if k is None:  # empty labels, nothing to flip
        return _result(clean, clean.copy())
    flip = rng.random(clean.shape) < r
    offset = rng.integers(1, k, size=clean.shape, dtype=np.int64)
    noisy = np.where(flip, (clean + offset) % k, clean).astype(np.int64)
    return _result(clean, noisy)


def pair_noise(
    labels: npt.ArrayLike,
    rate: RealLike,
    num_classes: IntLike | None = None,
    *,
    seed: SeedLike = None,
) -> NoisyLabels:
    """Pair-flip (asymmetric) label noise: class ``k`` becomes ``(k + 1) mod K``.

    Independently for every label ``y``: with probability ``r`` it becomes
    ``(y + 1) mod K``, otherwise it is kept::

        T[i, i] = 1 - r,   T[i, (i + 1) mod K] = r

    The expected realised rate is ``r``. For ``r >= 0.5`` the flipped class is the
    majority label of every class, which no method can undo without knowing the
    permutation; experiments normally use ``r < 0.5``.

    Args:
        labels: clean class indices in ``[0, K)``, any shape.
        rate: Noise rate ``r`` in ``[0, 1]``.
        num_classes: ``K >= 2``; defaults to ``labels.max() + 1``.
        seed: Randomness; an ``int`` makes the result reproducible.

    Returns:
        ``labels`` (``int64``, input shape), ``flipped`` mask, ``realised_rate``.

    Example:
        >>> pair_noise([0, 1, 2], 1.0).labels
        array([1, 2, 0])
        >>> pair_noise([0, 1, 2], 0.0).flipped
        array([False, False, False])
    """
    r = _check_rate(rate)
    clean, k = _check_labels(labels, num_classes)
    rng = _make_rng(seed)
    if k is None:
        return _result(clean, clean.copy())
    flip = rng.random(clean.shape) < r
    noisy = np.where(flip, (clean + 1) % k, clean).astype(np.int64)
    return _result(clean, noisy)


def transition_noise(
    labels: npt.ArrayLike, matrix: npt.ArrayLike, *, seed: SeedLike = None
) -> NoisyLabels:
    """Label noise drawn from an arbitrary transition matrix.

    Each label ``y`` is replaced independently by ``j`` drawn from row ``y`` of
    ``T``::

        P(noisy = j | clean = i) = T[i, j]

    The expected realised rate is ``mean_n (1 - T[y_n, y_n])``.

    Args:
        labels: clean class indices in ``[0, K)``, any shape.
        matrix: (K, K) row-stochastic matrix: finite, non-negative, each row summing to 1
            within ``1e-6`` (rows are renormalised exactly before sampling). ``K >= 2``.
        seed: Randomness; an ``int`` makes the result reproducible.

    Returns:
        ``labels`` (``int64``, input shape), ``flipped`` mask, ``realised_rate``.

    Example:
        >>> import numpy as np
        >>> transition_noise([0, 1, 2, 2], np.eye(3), seed=0).realised_rate
        0.0
        >>> swap = np.array([[0.0, 1.0], [1.0, 0.0]])
        >>> transition_noise([0, 0, 1], swap, seed=0).labels
        array([1, 1, 0])
    """
    t = _check_matrix(matrix)
    k = t.shape[0]
    clean, _ = _check_labels(labels, k)
    rng = _make_rng(seed)
    u = rng.random(clean.shape).ravel()
    flat = clean.ravel()
    noisy = np.empty_like(flat)

    # Inverse-CDF sampling per class. The CDF is set to exactly 1 from the last
    # positive entry of each row on, so u < 1 never selects a zero-probability class.
    t = t / t.sum(axis=1, keepdims=True)
    cdf = np.cumsum(t, axis=1)
    last = k - 1 - np.argmax(t[:, ::-1] > 0, axis=1)
    cdf[np.arange(k)[None, :] >= last[:, None]] = 1.0

    order = np.argsort(flat, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(flat, minlength=k))))
    for c in range(k):
        idx = order[bounds[c] : bounds[c + 1]]
        if idx.size:
            noisy[idx] = np.searchsorted(cdf[c], u[idx], side="right")
    noisy = noisy.reshape(clean.shape)
    return _result(clean, noisy)


def empirical_transition_matrix(
    clean: npt.ArrayLike, noisy: npt.ArrayLike, num_classes: IntLike | None = None
) -> np.ndarray:
    """Estimate the transition matrix from paired clean and noisy labels.

    ::

        T_hat[i, j] = #{n : clean_n = i, noisy_n = j} / #{n : clean_n = i}

    Rows of classes that never occur in ``clean`` are NaN.

    Args:
        clean: clean class indices in ``[0, K)``.
        noisy: noisy class indices in ``[0, K)``, the shape of ``clean``.
        num_classes: ``K >= 2``; defaults to ``max(clean.max(), noisy.max()) + 1``.

    Returns:
        ``float64`` array of shape ``(K, K)``.

    Example:
        >>> empirical_transition_matrix([0, 0, 1, 1], [0, 1, 1, 1])
        array([[0.5, 0.5],
               [0. , 1. ]])
    """
    c = _as_label_array(clean, "clean")
    n = _as_label_array(noisy, "noisy")
    if c.shape != n.shape:
        raise ValueError(f"clean and noisy must have the same shape, got {c.shape} and {n.shape}")
    if num_classes is None:
        if c.size == 0:
            raise ValueError("num_classes must be given when clean and noisy are empty")
        k = max(int(c.max()), int(n.max())) + 1
        if k < 2:
            raise ValueError(f"num_classes must be >= 2; inferred {k}, pass num_classes explicitly")
    else:
        k = _check_num_classes(num_classes)
        for name, arr in (("clean", c), ("noisy", n)):
            if arr.size and int(arr.max()) >= k:
                raise ValueError(
                    f"{name} must be class indices in [0, {k - 1}] for "
                    f"num_classes={k}, got {int(arr.max())}"
                )
    counts = np.bincount(c.ravel() * k + n.ravel(), minlength=k * k).reshape(k, k)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)
