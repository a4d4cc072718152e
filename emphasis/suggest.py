"""GR's ``beta`` and ``lam`` from the paper's CIFAR experiments: starting values and grids.

:func:`suggest` looks up the paper's best setting for a noise rate; :func:`candidate_settings`
lists the paper's grid to choose from on a noisy validation split
(:func:`emphasis.select_setting`).

All values are for the paper's transform ``g = exp`` (``GR(beta, lam)`` with the
default ``transform="exp"``), i.e. the per-example weight
``w(p) = exp(beta * p**lam * (1 - p))``. The paper chose ``g = exp`` for all its
experiments (Sec. 3.2), including the clean-data runs of Table 2.

Clean data (noise rate 0): Table 2 reports "GR (lambda = 0)" with beta fixed to 2.
That is ``g = exp``, **not** the identity special case of Eq. (7) that equals CCE
(``beta=2, lam=0, g=identity``): Table 3 lists CCE and "GR (lambda=0, beta=2)" as
different models with different results (e.g. 20% noise: fits 95.7% vs 85.3% of the
corrupted training set), its ``lam=0`` rows sweep beta (0.5, 1, 2, 4) which under the
identity would only rescale CCE, and "GR (beta=0) treats all examples equally" only
holds for ``exp(0) = 1``. So the clean-data suggestion ``(beta, lam) = (2, 0)`` means
``GR(2.0, 0.0)`` with the default transform, ``w(p) = exp(2 (1 - p))``: the same
emphasis focus as CCE (the hardest examples) with a milder spread. Table 2 reports it
on par with CCE (CIFAR-10 ResNet-20 91.8 vs 91.8, ResNet-56 92.5 vs 92.4; CIFAR-100
ResNet-44 68.4 vs 68.1); plain CCE is an equally good choice on clean data.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "CIFAR10_SETTINGS",
    "CIFAR100_SETTINGS",
    "FEW_CLASSES_GRID",
    "MANY_CLASSES_GRID",
    "MANY_CLASSES_THRESHOLD",
    "candidate_settings",
    "suggest",
]

#: ``num_classes >= MANY_CLASSES_THRESHOLD`` uses the CIFAR-100 table, fewer classes
#: use the CIFAR-10 table. 50 lies between the two datasets (10 and 100 classes); the
#: paper itself applies the CIFAR-10 values to Clothing1M (14 classes, Sec. 4.3).
MANY_CLASSES_THRESHOLD = 50

#: noise rate -> (beta, lam) for few classes, from CIFAR-10 (ResNet-56).
#: 0.0 from Table 2 (GR with lambda = 0, beta fixed to 2); 0.2 ... 0.8 from Table 3,
#: the setting with the best *final* test accuracy at each rate:
#: 0.2 -> 87.8%, 0.4 -> 83.3%, 0.6 -> 72.5%, 0.8 -> 32.8% (CCE: 76.8, 60.9, 37.2, 16.1).
CIFAR10_SETTINGS: Mapping[float, tuple[float, float]] = MappingProxyType(
    {
        0.0: (2.0, 0.0),
        0.2: (12.0, 0.5),
        0.4: (16.0, 1.0),
        0.6: (12.0, 2.0),
        0.8: (12.0, 2.0),
    }
)

#: noise rate -> (beta, lam) for many classes, from CIFAR-100 (ResNet-44).
#: 0.0 from Table 2 (GR with lambda = 0, beta fixed to 2); 0.2 ... 0.6 from the last
#: column of Table 5 (tuned, mean of 5 runs; details in Table 10):
#: 0.2 -> 64.1%, 0.4 -> 60.0%, 0.6 -> 49.9% (CCE: 52.9, 42.9, 30.1). The paper's
#: untuned fixed setting (8, 0.5) reaches 62.6, 59.3, 49.9.
CIFAR100_SETTINGS: Mapping[float, tuple[float, float]] = MappingProxyType(
    {
        0.0: (2.0, 0.0),
        0.2: (6.0, 0.3),
        0.4: (6.0, 0.4),
        0.6: (8.0, 0.5),
    }
)


#: lam -> the betas of the paper's CIFAR-10 sweeps (Figures 7-10): the grid of
#: :func:`candidate_settings` for ``num_classes < MANY_CLASSES_THRESHOLD``.
FEW_CLASSES_GRID: Mapping[float, tuple[float, ...]] = MappingProxyType(
    {
        0.0: (0.5, 1.0, 2.0, 4.0),
        0.5: (4.0, 8.0, 12.0, 16.0),
        1.0: (8.0, 12.0, 16.0, 20.0),
        2.0: (12.0, 16.0, 20.0, 24.0),
    }
)

#: lam -> the betas of the paper's CIFAR-100 sweep (Table 10): the grid of
#: :func:`candidate_settings` for ``num_classes >= MANY_CLASSES_THRESHOLD``.
MANY_CLASSES_GRID: Mapping[float, tuple[float, ...]] = MappingProxyType(
    {lam: (2.0, 4.0, 6.0, 8.0, 10.0) for lam in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)}
)


def _nearest_rate(rate: float, rates: list[float]) -> float:
    # Distances are rounded so that float noise (0.3 - 0.2 vs 0.4 - 0.3) counts as a
    # tie; ties go to the higher noise rate.
    return min(rates, key=lambda t: (round(abs(rate - t), 9), -t))


def suggest(
    noise_rate: float | np.floating[Any] | np.integer[Any], num_classes: int | np.integer[Any]
) -> tuple[float, float]:
    """Suggest ``(beta, lam)`` for ``GR(beta, lam)`` with ``g = exp``.

    The values are the paper's best settings, looked up by number of classes and
    noise rate:

    ================  =======  ===========  ===========  ===========  ===========
    classes           r = 0    r = 0.2      r = 0.4      r = 0.6      r = 0.8
    ================  =======  ===========  ===========  ===========  ===========
    ``K < 50``        (2, 0)   (12, 0.5)    (16, 1)      (12, 2)      (12, 2)
    ``K >= 50``       (2, 0)   (6, 0.3)     (6, 0.4)     (8, 0.5)     --
    ================  =======  ===========  ===========  ===========  ===========

    * ``K < 50``: CIFAR-10 with ResNet-56, Table 3 (r = 0.2 ... 0.8: the setting with
      the best final test accuracy) and Table 2 (r = 0).
    * ``K >= 50``: CIFAR-100 with ResNet-44, Table 5, last column (tuned settings;
      the paper's fixed setting (8, 0.5) is within 1.5 points of them) and Table 2
      (r = 0). There is no 80% entry: r >= 0.6 uses the 60% setting.
    * r = 0 (clean): Table 2's "GR (lambda = 0)" with beta fixed to 2, which is
      ``g = exp``, i.e. ``w(p) = exp(2 (1 - p))``; it matches CCE on clean data.
      See the module docstring for why it is not the identity case that equals CCE.

    A rate that is not tabulated is mapped to the **nearest tabulated rate**; a rate
    exactly half-way between two tabulated rates (e.g. 0.1, 0.3, 0.5) takes the
    higher one. Neither direction is safe in general: in Table 3 the 40% setting
    (16, 1) still gives 86.7% at 20% noise, but the 60% setting's ``lam = 2``
    reaches at best 52.7% at 40% noise (best beta of 12 ... 24), so check a
    suggestion on a validation set when the rate is uncertain.

    The values were tuned on CIFAR images with ResNets, synthetic symmetric noise,
    and the paper's optimiser settings. They are a starting point, not a guarantee:
    for other data, architectures, noise types or training schedules, tune ``beta``
    and ``lam`` on a validation set (the paper shows accuracy on the intact training
    labels tracks the test accuracy). The trend to keep: more noise -> larger
    ``lam`` (emphasis moves to easier examples) and, with it, larger ``beta``.

    Parameters
    ----------
    noise_rate : float
        Estimated fraction of wrong labels, in ``[0, 1)``.
    num_classes : int
        Number of classes ``K >= 2``.

    Returns
    -------
    tuple of float
        ``(beta, lam)``, to pass as ``GR(beta, lam)`` (``transform="exp"``).

    Examples
    --------
    >>> suggest(0.4, 10)
    (16.0, 1.0)
    >>> suggest(0.4, 100)
    (6.0, 0.4)
    >>> suggest(0.38, 14)  # Clothing1M: the paper uses the 40% setting
    (16.0, 1.0)
    >>> suggest(0.0, 10)  # clean data: GR(2, 0) with g = exp
    (2.0, 0.0)
    """
    rate = _check_noise_rate(noise_rate)
    k = _check_num_classes(num_classes)
    table = CIFAR100_SETTINGS if k >= MANY_CLASSES_THRESHOLD else CIFAR10_SETTINGS
    beta, lam = table[_nearest_rate(rate, list(table))]
    return (beta, lam)


def _check_noise_rate(noise_rate: Any) -> float:
    if isinstance(noise_rate, bool) or not isinstance(noise_rate, numbers.Real):
        raise TypeError(f"noise_rate must be a real number in [0, 1), got {noise_rate!r}")
    rate = float(noise_rate)
    if not np.isfinite(rate) or not 0.0 <= rate < 1.0:
        raise ValueError(f"noise_rate must be in [0, 1), got {rate!r}")
    return rate


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    k = int(num_classes)
    if k < 2:
        raise ValueError(f"num_classes must be >= 2, got {k}")
    return k


def candidate_settings(
    num_classes: int | np.integer[Any],
    noise_rate: float | np.floating[Any] | np.integer[Any] | None = None,
) -> list[tuple[float, float]]:
    """The paper's grid of ``(beta, lam)`` to choose from on a noisy validation split.

    The paper chooses beta and lam on a validation set (Sec. 4.2.1). These are its grids,
    as ``(beta, lam)`` pairs for ``GR(beta, lam)`` with ``g = exp``:

    * ``K < 50`` (CIFAR-10, Figures 7-10; :data:`FEW_CLASSES_GRID`), 16 settings:
      lam = 0: beta in {0.5, 1, 2, 4}; lam = 0.5: {4, 8, 12, 16}; lam = 1: {8, 12, 16, 20};
      lam = 2: {12, 16, 20, 24}.
    * ``K >= 50`` (CIFAR-100, Table 10; :data:`MANY_CLASSES_GRID`), 30 settings:
      lam in {0.1, 0.2, ..., 0.6}, beta in {2, 4, 6, 8, 10}.

    **Order.** Without ``noise_rate`` the grid is listed row by row (lam, then beta,
    ascending). With it, :func:`suggest`'s setting for that rate comes first (added if the
    grid lacks it: ``(2, 0)`` at r = 0 for many classes), then the others by their
    distance to it in grid steps (one step = the next lam row, or the next beta within a
    row), nearer lam rows first, then ascending (lam, beta). The order is the
    tie-break of :func:`emphasis.select_setting`: among settings that validate equally
    well, the one closest to the paper's suggestion wins.

    Parameters
    ----------
    num_classes : int
        Number of classes ``K >= 2``.
    noise_rate : float, optional
        Estimated fraction of wrong labels in ``[0, 1)`` (e.g. from
        :func:`emphasis.estimate_noise_rate`), to order the grid around ``suggest``.

    Returns
    -------
    list of (float, float)
        ``(beta, lam)`` pairs, each listed once.

    Examples
    --------
    >>> grid = candidate_settings(10, noise_rate=0.4)
    >>> len(grid), grid[:3]
    (16, [(16.0, 1.0), (12.0, 1.0), (20.0, 1.0)])
    >>> candidate_settings(10)[:2]  # no rate: row by row
    [(0.5, 0.0), (1.0, 0.0)]
    >>> len(candidate_settings(100)), candidate_settings(100, noise_rate=0.0)[0]
    (30, (2.0, 0.0))
    """
    k = _check_num_classes(num_classes)
    grid = MANY_CLASSES_GRID if k >= MANY_CLASSES_THRESHOLD else FEW_CLASSES_GRID
    rows = sorted(grid)
    settings = [(beta, lam) for lam in rows for beta in grid[lam]]
    if noise_rate is None:
        return settings
    start = suggest(noise_rate, k)

    def steps(setting: tuple[float, float]) -> tuple[int, int]:
        # Grid coordinates of a setting; the suggestion's are those of the nearest point.
        beta, lam = setting
        row = min(range(len(rows)), key=lambda i: abs(rows[i] - lam))
        betas = grid[rows[row]]
        return row, min(range(len(betas)), key=lambda j: abs(betas[j] - beta))

    row0, col0 = steps(start)

    def distance(setting: tuple[float, float]) -> tuple[int, int, float, float]:
        row, col = steps(setting)
        return (abs(row - row0) + abs(col - col0), abs(row - row0), setting[1], setting[0])

    return [start, *sorted((s for s in settings if s != start), key=distance)]
