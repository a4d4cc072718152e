"""Choose a setting, and the epoch to stop at, from accuracy on a *noisy* validation split.

Clean labels are what a user with noisy data does not have. They are not needed: under
symmetric noise at rate ``r < (K - 1) / K`` the accuracy a model scores against noisy labels
is an increasing affine function of its accuracy on the true ones,

    acc_noisy = (1 - r) acc + r (1 - acc) / (K - 1),

so the setting (and the epoch) with the best accuracy on a held-out split with noisy labels
is, up to the sampling noise of that split, the one with the best clean accuracy. Not so
under *pair* (class-conditional) noise, where every wrong label of class k is k + 1:
there ``acc_noisy = (1 - r) acc + r P(prediction = y + 1)``, so a model that has learned
the confusion earns credit for its errors. Measured on digits at pair 40% noise (MLP, 5
seeds), choosing GR's setting this way ended 6.3 points below the best grid setting (10.8
when stopping early), while at symmetric 20-60% it was never more than 0.5 points below
it (2.2 when stopping early). Hold the split out of training, never relabel it, and draw it from the same
(noisy) data as the training set.

:func:`select_setting` takes the accuracies of any candidates (GR's ``(beta, lam)`` from
:func:`emphasis.candidate_settings`, GCE's ``q``, anything), measured in any framework, and
returns the pick; :func:`estimate_clean_accuracy` inverts the formula above. No training
happens here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from emphasis.suggest import _check_num_classes

__all__ = ["Selection", "estimate_clean_accuracy", "select_setting"]


@dataclass(frozen=True)
class Selection:
    """The result of :func:`select_setting`.

    Attributes
    ----------
    index : int
        Position of the pick in ``candidates``.
    candidate : object
        ``candidates[index]``.
    accuracy : float
        Its noisy-validation accuracy (at ``epoch_index`` when curves were given).
    epoch_index : int or None
        Curves: the 0-based position in the pick's curve of its best accuracy (the first
        if several epochs tie); with one value per epoch, entry ``i`` measured after epoch
        ``i + 1``, stop after epoch ``epoch_index + 1``. ``None`` for one accuracy per
        candidate.
    tied : tuple of int
        Positions of every candidate whose accuracy is within ``tolerance`` of the best,
        in ``candidates`` order; ``index`` is the first of them.
    """

    index: int
    candidate: Any
    accuracy: float
    epoch_index: int | None
    tied: tuple[int, ...]


def select_setting(
    candidates: Sequence[Any], accuracies: Sequence[Any], *, tolerance: float = 0.0
) -> Selection:
    """Pick the candidate with the best noisy-validation accuracy.

    ``accuracies[i]`` belongs to ``candidates[i]``; it is either one accuracy (at the end of
    training) or a curve, one accuracy per evaluation (after each epoch, say). Give all
    candidates the same kind; curves may differ in length (a run that stopped early).

    * **Early stopping.** With curves, each candidate scores the best accuracy on its curve,
      reached first at ``epoch_index``; the pick's weights from that epoch are the ones to
      keep (``keras.callbacks.EarlyStopping(monitor="val_accuracy",
      restore_best_weights=True)`` keeps the same epoch). The first of tied epochs is the
      one with less training, before any late memorisation of wrong labels.
    * **Ties.** Every candidate within ``tolerance`` of the best score counts as tied, and
      the first of them in ``candidates`` order is picked. :func:`emphasis.candidate_settings`
      lists the setting :func:`emphasis.suggest` would choose first and the others by their
      distance to it, so a tie goes to the setting closest to the paper's. A validation split
      of n examples measures accuracy to about ``sqrt(acc (1 - acc) / n)`` (0.02 at n = 500,
      acc = 0.8); a ``tolerance`` of that size prefers the suggestion unless a candidate is
      clearly better.

    Parameters
    ----------
    candidates : sequence
        The settings, in order of preference for ties (any objects).
    accuracies : sequence of float, or sequence of sequences of float
        Fractions in ``[0, 1]`` (not percentages), no NaN: one per candidate, or one curve
        per candidate.
    tolerance : float, keyword-only
        In ``[0, 1)``; default 0: only exact ties.

    Returns
    -------
    Selection
        ``index``, ``candidate``, ``accuracy``, ``epoch_index``, ``tied``.

    Examples
    --------
    >>> select_setting([(16.0, 1.0), (12.0, 1.0), (20.0, 1.0)], [0.71, 0.74, 0.74])
    Selection(index=1, candidate=(12.0, 1.0), accuracy=0.74, epoch_index=None, tied=(1, 2))
    >>> curves = [[0.60, 0.70, 0.65], [0.50, 0.72, 0.72, 0.69]]  # one entry per epoch
    >>> pick = select_setting(["gce q=0.7", "gr (16, 1)"], curves)
    >>> pick.candidate, pick.accuracy, pick.epoch_index  # stop after epoch 2
    ('gr (16, 1)', 0.72, 1)
    >>> select_setting(["a", "b"], [0.70, 0.71], tolerance=0.02).candidate
    'a'
    """
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
        raise TypeError(f"candidates must be a sequence (a list of settings), got {candidates!r}")
    if len(candidates) == 0:
        raise ValueError("candidates is empty: give at least one setting to choose from")
    scores, given_curves = _curves(accuracies, len(candidates))
    tolerance = _tolerance(tolerance)
    best = [max(curve) for curve in scores]
    top = max(best)
    tied = tuple(i for i, score in enumerate(best) if score >= top - tolerance)
    index = tied[0]
    curve = scores[index]
    epoch_index = curve.index(best[index]) if given_curves else None
    return Selection(index, candidates[index], best[index], epoch_index, tied)


def estimate_clean_accuracy(noisy_accuracy: float, *, noise_rate: float, num_classes: int) -> float:
    """The clean accuracy that a noisy-validation accuracy means under symmetric noise.

    Inverts ``acc_noisy = (1 - r) acc + r (1 - acc) / (K - 1)`` (the paper's symmetric
    noise: a wrong label is one of the other ``K - 1`` classes, uniformly):

        acc = (acc_noisy - r / (K - 1)) / (1 - r K / (K - 1)).

    Needs ``r < (K - 1) / K`` (beyond it noisy labels carry no signal). Sampling noise of the
    split is amplified by ``1 / (1 - r K / (K - 1))`` (1.8x at r = 0.4, K = 10), and the
    result is not clipped to [0, 1]. Under other noise (pair, class-conditional) the map
    is different, and this estimate does not apply.

    Examples
    --------
    >>> round(estimate_clean_accuracy(0.5, noise_rate=0.4, num_classes=10), 4)
    0.82
    >>> estimate_clean_accuracy(0.6, noise_rate=0.4, num_classes=10)  # a perfect model
    1.0
    """
    acc = _fraction("noisy_accuracy", noisy_accuracy)
    rate = _fraction("noise_rate", noise_rate)
    k = _check_num_classes(num_classes)
    if not rate < (k - 1) / k:
        raise ValueError(
            f"noise_rate must be below (K - 1) / K = {(k - 1) / k:g} for num_classes={k}, "
            f"got {rate:g}: at that rate noisy labels say nothing about the true class"
        )
    other = rate / (k - 1)
    return (acc - other) / (1.0 - rate - other)


def _is_number(value: Any) -> bool:
    """A real scalar: Python, NumPy, or a 0-d array/tensor of any framework (not bool)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real):
        return True
    if getattr(value, "shape", None) == () and hasattr(value, "dtype"):
        dtype = str(value.dtype)
        return "bool" not in dtype and "complex" not in dtype
    return False


def _is_curve(value: Any) -> bool:
    """A 1-d sequence or array (its entries are checked one by one)."""
    if isinstance(value, (str, bytes)) or getattr(value, "shape", None) == ():
        return False
    return hasattr(value, "__len__") and hasattr(value, "__iter__")


def _curves(accuracies: Any, count: int) -> tuple[list[list[float]], bool]:
    """Each candidate's accuracies as a list of floats (one entry for a single accuracy), and
    whether curves were given."""
    if isinstance(accuracies, (str, bytes)) or not hasattr(accuracies, "__len__"):
        raise TypeError(
            f"accuracies must be a sequence with one accuracy or one curve per candidate, "
            f"got {accuracies!r}"
        )
    if len(accuracies) != count:
        raise ValueError(
            f"accuracies has {len(accuracies)} entries for {count} candidates: "
            "give one accuracy (or one curve) per candidate, in the same order"
        )
    curves = not _is_number(accuracies[0])
    result = []
    for i, entry in enumerate(accuracies):
        if not (_is_number(entry) or _is_curve(entry)):
            raise TypeError(
                f"accuracies[{i}] must be an accuracy (a number in [0, 1]) or a curve (a "
                f"sequence of them), got {entry!r}"
            )
        if _is_number(entry) == curves:
            raise ValueError(
                f"accuracies[{i}] is {'a number' if curves else 'not a number'} while "
                f"accuracies[0] is {'a curve' if curves else 'a number'}: give every "
                "candidate one accuracy, or every candidate a curve"
            )
        values = list(entry) if curves else [entry]
        if not values:
            raise ValueError(f"accuracies[{i}] is an empty curve")
        result.append(
            [
                _fraction(f"accuracies[{i}][{j}]" if curves else f"accuracies[{i}]", v)
                for j, v in enumerate(values)
            ]
        )
    return result, curves


def _fraction(name: str, value: Any) -> float:
    if not _is_number(value):
        raise TypeError(f"{name} must be a real number in [0, 1], got {value!r}")
    number = float(value)
    if math.isnan(number):
        raise ValueError(f"{name} is NaN: every accuracy must be a number in [0, 1]")
    if not 0.0 <= number <= 1.0:
        hint = " (a percentage? divide by 100)" if 1.0 < number <= 100.0 else ""
        raise ValueError(f"{name} must be a fraction in [0, 1], got {number:g}{hint}")
    return number


def _tolerance(value: Any) -> float:
    if not _is_number(value):
        raise TypeError(f"tolerance must be a real number in [0, 1), got {value!r}")
    number = float(value)
    if not 0.0 <= number < 1.0:  # also refuses NaN
        raise ValueError(f"tolerance must be in [0, 1), got {number:g}")
    return number
