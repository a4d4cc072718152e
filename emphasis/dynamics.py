"""Per-example training dynamics: which labels look wrong, and how many.

A training run already computes, for every example it sees, the relevance score
``p = softmax(z)[y]``, the margin ``z_y - max_{j != y} z_j`` between the labelled logit
and the best other one, and the predicted class. :class:`TrainingDynamics` keeps their
running means per example in O(N) memory, updated at any cadence (per batch or per
epoch). From them:

- :meth:`TrainingDynamics.scores`: minus the area under the margin (AUM, Pleiss et
  al. 2020): examples whose label the model keeps disagreeing with have a negative
  mean margin, so a higher score means more likely mislabelled;
- :func:`estimate_noise_rate`: the fraction of mislabelled examples, from a
  two-component Gaussian mixture fitted to the scores by EM where the fitted density
  has two modes, else the fraction of examples with a negative mean margin;
- :func:`find_label_issues`: the indices of the likely mislabelled examples, most
  likely first, and :meth:`TrainingDynamics.suggested_labels` to relabel them.

Everything here is NumPy; the adapters feed :meth:`TrainingDynamics.update_per_example`
with the quantities their losses computed anyway.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from emphasis import kernel
from emphasis._validation import check_logits_values
from emphasis._value_checks import label_message

__all__ = [
    "NoiseRateEstimate",
    "Totals",
    "TrainingDynamics",
    "estimate_noise_rate",
    "find_label_issues",
    "observations",
]

#: Margins are clipped to this magnitude: a row whose other logits are all -inf has an
#: infinite margin, which would make every mean infinite.
MAX_MARGIN = 1e6


def is_bimodal(weight: float, separation: float) -> bool:
    """Whether ``weight * N(0, 1) + (1 - weight) * N(separation, 1)`` has two modes.

    The exact condition for two Gaussians of one variance (Robertson and Fryer 1969;
    Schilling, Watkins and Watkins 2002, "Is human height bimodal?"): with
    ``d = separation / 2``, unimodal when ``d <= 1``, else bimodal if and only if
    ``|log(1 - weight) - log(weight)| < 2 log(d - sqrt(d^2 - 1)) + 2 d sqrt(d^2 - 1)``.

    >>> is_bimodal(0.5, 2.5), is_bimodal(0.5, 1.9), is_bimodal(0.01, 2.6)
    (True, False, False)
    """
    d = abs(separation) / 2.0
    if not 0.0 < weight < 1.0 or not d > 1.0:
        return False
    root = math.sqrt(d * d - 1.0)
    bound = 2.0 * math.log(d - root) + 2.0 * d * root
    return abs(math.log1p(-weight) - math.log(weight)) < bound


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _integers(name: str, value: npt.ArrayLike) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-d (one entry per example), got shape {array.shape}")
    return array.astype(np.int64)


def observations(logits: Any, labels: Any, xp: Any = np) -> tuple[Any, Any]:
    """(p, margin) of rows of logits (M, C) with labels (M,), in any array namespace.

    ``p = softmax(z)[y]``; the margin ``z_y - max_{j != y} z_j`` is clipped to
    ``[-MAX_MARGIN, MAX_MARGIN]`` (a row with no other class left has margin +inf).
    Written once for the core and the adapters that accumulate on their device.
    """
    rel = kernel.relevance(logits, labels, xp)
    z_y = xp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
    margin = xp.where(rel.rest_sum > 0, z_y - rel.rest_max, xp.full_like(z_y, MAX_MARGIN))
    margin = xp.where(margin > MAX_MARGIN, xp.full_like(margin, MAX_MARGIN), margin)
    margin = xp.where(margin < -MAX_MARGIN, xp.full_like(margin, -MAX_MARGIN), margin)
    return xp.exp(rel.log_p), margin


class Totals(NamedTuple):
    """What :class:`TrainingDynamics` accumulates, one entry per example (an adapter that
    accumulates on its device hands these over with :meth:`TrainingDynamics.from_totals`)."""

    updates: np.ndarray  #: int64 number of updates
    sum_p: np.ndarray  #: float64 sum of p
    sum_margin: np.ndarray  #: float64 sum of the margins (each clipped to MAX_MARGIN)
    disagreements: np.ndarray  #: int64 number of updates whose prediction was not the label
    labels: np.ndarray  #: int64 the label seen (-1: never seen)
    last_prediction: np.ndarray  #: int64 the last predicted class (-1: never seen)


class TrainingDynamics:
    """Running per-example means of p, the margin and prediction disagreements.

    Args:
        num_examples: N, the size of the training set; examples are named by their
            index in ``[0, N)``, which every update passes.
        num_classes: C >= 2.

    Example:
        >>> import numpy as np, emphasis
        >>> dynamics = emphasis.TrainingDynamics(3, 2)
        >>> logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
        >>> dynamics.update([0, 1, 2], logits, [0, 1, 1])  # example 2 looks mislabelled
        >>> dynamics.scores()
        array([-2., -1.,  3.])
        >>> dynamics.suggested_labels()
        array([0, 1, 0])
    """

    def __init__(self, num_examples: int, num_classes: int) -> None:
        self.num_examples = _count("num_examples", num_examples, 1)
        self.num_classes = _count("num_classes", num_classes, 2)
        n = self.num_examples
        self.count = np.zeros(n, np.int64)  #: updates seen per example
        self._sum_p = np.zeros(n)
        self._sum_margin = np.zeros(n)
        self._disagreements = np.zeros(n, np.int64)
        self.labels = np.full(n, -1, np.int64)  #: the label each example was seen with
        self.last_prediction = np.full(n, -1, np.int64)  #: -1: never seen

    def totals(self) -> Totals:
        """Copies of the accumulated totals."""
        return Totals(
            self.count.copy(),
            self._sum_p.copy(),
            self._sum_margin.copy(),
            self._disagreements.copy(),
            self.labels.copy(),
            self.last_prediction.copy(),
        )

    @classmethod
    def from_totals(cls, num_classes: int, totals: Totals) -> TrainingDynamics:
        """The dynamics of accumulated ``totals`` (checked for consistency)."""
        arrays = [np.asarray(a) for a in totals]
        n = arrays[0].shape[0] if arrays[0].ndim == 1 else 0
        dynamics = cls(n, num_classes)
        for name, array in zip(Totals._fields, arrays, strict=True):
            if array.shape != (n,):
                raise ValueError(f"totals.{name} must have shape ({n},), got {array.shape}")
        count, sum_p, sum_margin, disagreements, labels, last = arrays
        seen = count > 0
        problems = {
            "updates": count < 0,
            "sum_p": ~((sum_p >= 0) & (sum_p <= count)),
            "sum_margin": ~(np.abs(sum_margin) <= MAX_MARGIN * count),
            "disagreements": (disagreements < 0) | (disagreements > count),
            "labels": np.where(seen, (labels < 0) | (labels >= num_classes), labels != -1),
            "last_prediction": np.where(seen, (last < 0) | (last >= num_classes), last != -1),
        }
        for name, bad in problems.items():
            if bad.any():
                raise ValueError(f"totals.{name} is inconsistent at example {int(np.argmax(bad))}")
        dynamics.count = count.astype(np.int64)
        dynamics._sum_p = sum_p.astype(np.float64)
        dynamics._sum_margin = sum_margin.astype(np.float64)
        dynamics._disagreements = disagreements.astype(np.int64)
        dynamics.labels = labels.astype(np.int64)
        dynamics.last_prediction = last.astype(np.int64)
        return dynamics

    def update(self, indices: npt.ArrayLike, logits: npt.ArrayLike, labels: npt.ArrayLike) -> None:
        """Add one observation per row: ``logits`` (M, C) of examples ``indices`` (M,)
        with their (noisy) training ``labels`` (M,)."""
        logits = np.asarray(logits)
        if logits.dtype.kind != "f":
            raise TypeError(f"logits must be a floating-point array, got dtype {logits.dtype}")
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits must have shape (M, {self.num_classes}), got {logits.shape}")
        logits = logits.astype(np.float64)
        check_logits_values(logits)
        labels = self._labels(labels, logits.shape[0])
        with np.errstate(divide="ignore"):  # log 0 for a row with no other class left
            p, margin = observations(logits, labels, np)
        predicted = np.argmax(logits, axis=1)
        self.update_per_example(indices, labels, p, margin, predicted)

    def update_per_example(
        self,
        indices: npt.ArrayLike,
        labels: npt.ArrayLike,
        p: npt.ArrayLike,
        margin: npt.ArrayLike,
        predicted: npt.ArrayLike,
    ) -> None:
        """Add observations computed elsewhere (an adapter's batch statistics): each
        argument has one entry per example of ``indices``."""
        index = self._indices(indices)
        m = index.shape[0]
        labels = self._labels(labels, m)
        predicted = self._labels(predicted, m, "predicted")
        p = self._floats("p", p, m)
        if ((p < 0) | (p > 1)).any():
            raise ValueError("p must hold probabilities in [0, 1]")
        margin = np.clip(self._floats("margin", margin, m, allow_inf=True), -MAX_MARGIN, MAX_MARGIN)
        seen = self.labels[index]
        changed = (seen >= 0) & (seen != labels)
        if changed.any():
            i = int(np.argmax(changed))
            raise ValueError(
                f"labels: example {int(index[i])} was seen with label {int(seen[i])} and now "
                f"with {int(labels[i])}; start a new TrainingDynamics after relabelling"
            )
        self.labels[index] = labels
        self.count[index] += 1
        self._sum_p[index] += p
        self._sum_margin[index] += margin
        self._disagreements[index] += predicted != labels
        self.last_prediction[index] = predicted

    # -- derived ---------------------------------------------------------------------------

    @property
    def seen(self) -> np.ndarray:
        """(N,) bool: examples with at least one update."""
        return self.count > 0

    def _mean(self, total: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.seen, total / self.count, np.nan)

    @property
    def mean_p(self) -> np.ndarray:
        """(N,) the mean relevance score p over the updates (NaN: never seen)."""
        return self._mean(self._sum_p)

    @property
    def area_under_margin(self) -> np.ndarray:
        """(N,) the mean margin ``z_y - max_{j != y} z_j`` (AUM; NaN: never seen)."""
        return self._mean(self._sum_margin)

    @property
    def disagreement(self) -> np.ndarray:
        """(N,) the fraction of updates whose predicted class differed from the label."""
        return self._mean(self._disagreements.astype(np.float64))

    def scores(self) -> np.ndarray:
        """(N,) minus the area under the margin: higher means more likely mislabelled
        (NaN for examples never seen)."""
        return -self.area_under_margin

    def suggested_labels(self) -> np.ndarray:
        """(N,) the last predicted class of each example (-1: never seen)."""
        return self.last_prediction.copy()

    # -- input checks ----------------------------------------------------------------------

    def _indices(self, indices: npt.ArrayLike) -> np.ndarray:
        index = _integers("indices", indices)
        bad = (index < 0) | (index >= self.num_examples)
        if bad.any():
            raise ValueError(
                f"indices must be in [0, {self.num_examples - 1}] (num_examples="
                f"{self.num_examples}), got {int(index[bad][0])}"
            )
        unique, counts = np.unique(index, return_counts=True)
        if (counts > 1).any():
            raise ValueError(
                f"indices must not repeat within one update, got {int(unique[counts > 1][0])} "
                f"{int(counts.max())} times"
            )
        return index

    def _labels(self, labels: npt.ArrayLike, m: int, name: str = "labels") -> np.ndarray:
        array = _integers(name, labels)
        if array.shape[0] != m:
            raise ValueError(f"{name} must have one entry per example ({m}), got {array.shape[0]}")
        bad = (array < 0) | (array >= self.num_classes)
        if bad.any():
            i = int(np.argmax(bad))
            message = label_message(self.num_classes, None, int(array[i]), i)
            raise ValueError(message.replace("labels", name, 1))
        return array

    @staticmethod
    def _floats(name: str, value: npt.ArrayLike, m: int, allow_inf: bool = False) -> np.ndarray:
        array = np.asarray(value)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real array, got dtype {array.dtype}")
        array = array.astype(np.float64)
        if array.shape != (m,):
            raise ValueError(f"{name} must have shape ({m},) (one per example), got {array.shape}")
        if np.isnan(array).any() or (not allow_inf and np.isinf(array).any()):
            raise ValueError(f"{name} must be finite, got {array[~np.isfinite(array)][0]}")
        return array


class NoiseRateEstimate(NamedTuple):
    """The noise-rate estimate, with the two-component Gaussian mixture fitted to the
    mislabelled scores."""

    rate: float  #: estimated fraction of mislabelled examples (among those seen)
    #: (N,) P(mislabelled | score) ("mixture"), or 1.0 / 0.0 for a positive / other
    #: score ("negative margin"); NaN for examples never seen
    posterior: np.ndarray
    means: tuple[float, float]  #: (clean, mislabelled) component means of the score
    stds: tuple[float, float]  #: their standard deviations
    iterations: int  #: EM iterations run
    #: "mixture": the rate is the mislabelled component's weight; "negative margin": the
    #: fitted density has one mode (see :func:`is_bimodal`) and the rate is the fraction
    #: of positive scores
    method: str = "mixture"
    #: |mu_1 - mu_0| / sigma of the fit (Ashman's D; 0: no fit)
    separation: float = math.nan
    #: the mislabelled component's weight (the rate when ``method == "mixture"``; NaN: no
    #: fit)
    mixture_weight: float = math.nan


def _scores_of(dynamics: TrainingDynamics | npt.ArrayLike) -> np.ndarray:
    if isinstance(dynamics, TrainingDynamics):
        return dynamics.scores()
    scores = np.asarray(dynamics, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-d, got shape {scores.shape}")
    return scores


def estimate_noise_rate(
    dynamics: TrainingDynamics | npt.ArrayLike, *, max_iterations: int = 500, tol: float = 1e-10
) -> NoiseRateEstimate:
    """The fraction of mislabelled examples, with each example's posterior.

    Fits a two-component 1-d Gaussian mixture to the scores (:meth:`TrainingDynamics.
    scores`, i.e. minus mean margins, or any array of them; NaN entries are left out) by
    expectation maximisation, with one variance shared by both components; the component
    with the higher mean is the mislabelled one and its weight is the rate. Why this mixture:
    clean and mislabelled examples form two modes of the margin (Pleiss et al. 2020,
    Fig. 1), and a Gaussian mixture over per-example statistics is what DivideMix (Li
    et al. 2020) fits to losses; the margin is unbounded, so a Beta mixture (Arazo et
    al. 2019) does not apply. The variance is tied because the scores of a GR run are
    skewed: measured on digits (MLP, one seed, 20/40/60% symmetric noise), separate
    variances overestimated GR's 20% by 9 points (0.272 for 0.180), tied ones erred by
    at most 2 points (0.167, 0.400, 0.568 for 0.180, 0.401, 0.588).

    The mixture is what the two-mode picture asks for, so its weight is the rate only
    when the fitted density has two modes (:func:`is_bimodal`, the exact condition for two
    Gaussians of one variance). Otherwise (one mode, or a component of a few outliers in a
    tail) its weight does not identify the mislabelled share, and the rate is the fraction
    of positive scores (``method="negative margin"``): of examples whose label is, on
    average over the updates, not the model's preferred class, which is the mislabelled
    share for a model that predicts the true class and has not memorised the noise,
    whatever the shape of the scores. Where it matters: *pair* (class-conditional) noise,
    where every flipped label of a class goes to the same other class, so the model learns
    the confusion and the margins of clean and flipped examples both lie near
    ``±log((1-r)/r)``: one overlapping cloud. Measured on digits (MLP, CCE, 20 epochs,
    seeds 0-4, pair 40% noise, realised 0.39-0.42): the mixture's weight missed by 1.5 to
    38 points (its densities had one mode), the fraction of negative margins by 1.4 to 5.9
    (low: the examples' own labels already pull their margins up); at symmetric 20/40/60%
    the fitted densities had two modes, and the mixture erred by at most 2.2 points.

    Pass the estimate to :func:`emphasis.suggest` (``suggest(estimate.rate, C)``) after
    a few warm-up epochs, then train with the suggested (beta, lam).

    Example:
        >>> import numpy as np, emphasis
        >>> rng = np.random.default_rng(0)
        >>> scores = np.concatenate([rng.normal(-3, 1, 800), rng.normal(2, 1, 200)])
        >>> round(emphasis.estimate_noise_rate(scores).rate, 2)
        0.2
    """
    scores = _scores_of(dynamics)
    finite = np.isfinite(scores)
    posterior = np.where(finite, 0.0, np.nan)
    x = scores[finite]
    fit = _two_gaussians(x, max_iterations, tol)
    if fit is None:
        if not x.size:
            return NoiseRateEstimate(0.0, posterior, (math.nan,) * 2, (math.nan,) * 2, 0)
        level, spread = float(np.mean(x)), float(np.std(x))
        posterior[finite] = (x > 0).astype(np.float64)
        return NoiseRateEstimate(
            float(np.mean(x > 0)),
            posterior,
            (level, level),
            (spread, spread),
            0,
            "negative margin",
            0.0,
        )
    means, stds, responsibility, iterations = fit
    noisy = int(np.argmax(means))
    order = (1 - noisy, noisy)
    separation = float(abs(means[1] - means[0]) / stds[0])  # tied: stds[0] == stds[1]
    weight = float(responsibility[:, noisy].mean())
    if is_bimodal(weight, separation):
        method = "mixture"
        posterior[finite] = responsibility[:, noisy]
        rate = weight
    else:
        method = "negative margin"
        posterior[finite] = (x > 0).astype(np.float64)
        rate = float(np.mean(x > 0))
    return NoiseRateEstimate(
        rate,
        posterior,
        (float(means[order[0]]), float(means[order[1]])),
        (float(stds[order[0]]), float(stds[order[1]])),
        iterations,
        method,
        separation,
        weight,
    )


def _two_gaussians(
    x: np.ndarray, max_iterations: int, tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int] | None:
    """EM for a 1-d mixture of two Gaussians: (means, stds, responsibilities, iterations),
    or None when ``x`` has a single mode (too few distinct values, or a component
    empties)."""
    spread = float(np.std(x)) if x.size >= 2 else 0.0
    if spread == 0.0:
        return None
    floor = (1e-3 * spread) ** 2  # keeps a component from collapsing onto one point
    means = np.quantile(x, [0.25, 0.9])
    variances = np.full(2, spread**2 / 4)
    weights = np.array([0.5, 0.5])
    previous = -math.inf
    iteration = 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 - returned below
        log_density = (
            np.log(weights)
            - 0.5 * np.log(2 * np.pi * variances)
            - 0.5 * (x[:, None] - means) ** 2 / variances
        )
        top = log_density.max(axis=1, keepdims=True)
        log_total = top[:, 0] + np.log(np.exp(log_density - top).sum(axis=1))
        responsibility = np.exp(log_density - log_total[:, None])
        mass = responsibility.sum(axis=0)
        if (mass < 1e-9 * x.size).any():
            return None
        log_likelihood = float(log_total.sum())
        if log_likelihood - previous <= tol * abs(log_likelihood):
            break
        previous = log_likelihood
        weights = mass / x.size
        means = (responsibility * x[:, None]).sum(axis=0) / mass
        # One variance for both components (tied): with a variance each, the wide
        # component of a skewed score distribution swallows the other's tail.
        pooled = float((responsibility * (x[:, None] - means) ** 2).sum()) / x.size
        variances = np.full(2, max(pooled, floor))
    return means, np.sqrt(variances), responsibility, iteration


def find_label_issues(dynamics: TrainingDynamics, *, rate: float | None = None) -> np.ndarray:
    """Indices of the likely mislabelled examples, most likely first.

    The ``round(rate * seen)`` examples with the highest scores, ``rate`` defaulting to
    :func:`estimate_noise_rate`'s estimate. Relabel them with
    :meth:`TrainingDynamics.suggested_labels` and retrain from scratch (the paper's
    supplementary Table 9 does so with the GR-trained model).

    Example:
        >>> import numpy as np, emphasis
        >>> dynamics = emphasis.TrainingDynamics(3, 2)
        >>> dynamics.update([0, 1, 2], np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]]), [0, 1, 1])
        >>> emphasis.find_label_issues(dynamics, rate=1 / 3)
        array([2])
    """
    if not isinstance(dynamics, TrainingDynamics):
        raise TypeError(f"dynamics must be a TrainingDynamics, got {type(dynamics).__name__}")
    scores = dynamics.scores()
    seen = np.flatnonzero(np.isfinite(scores))
    if rate is None:
        rate = estimate_noise_rate(dynamics).rate
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate <= 1:
        raise ValueError(f"rate must be a number in [0, 1], got {rate!r}")
    count = round(float(rate) * seen.size)
    order = seen[np.argsort(-scores[seen], kind="stable")]
    return order[:count]
