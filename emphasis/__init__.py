"""emphasis: gradient rescaling (GR) for training classifiers on noisy labels.

The NumPy core: weighting schemes (:class:`CCE`, :class:`MAE`, :class:`GCE`,
:class:`GR`), the exact and stable logit gradient (:func:`logit_grad`), loss
values, batch statistics, label noise, the paper's suggested settings and grids, and
the choice of a setting on noisy validation labels.
Importing it imports no deep-learning framework; the adapters are
``emphasis_torch``, ``emphasis_tf`` and ``emphasis_jax``.
"""

from emphasis.dynamics import (
    NoiseRateEstimate,
    TrainingDynamics,
    estimate_noise_rate,
    find_label_issues,
)
from emphasis.functional import logit_grad, loss, loss_and_grad
from emphasis.noise import (
    NoisyLabels,
    pair_noise,
    pair_transition_matrix,
    symmetric_noise,
    symmetric_transition_matrix,
    transition_noise,
)
from emphasis.schemes import CCE, GCE, GR, MAE, Scheme
from emphasis.selection import Selection, estimate_clean_accuracy, select_setting
from emphasis.stats import BatchStats, batch_stats, effective_sample_size, emphasis_spread
from emphasis.suggest import candidate_settings, suggest

__version__ = "0.1.0"

__all__ = [
    "CCE",
    "GCE",
    "GR",
    "MAE",
    "BatchStats",
    "NoiseRateEstimate",
    "NoisyLabels",
    "Scheme",
    "Selection",
    "TrainingDynamics",
    "__version__",
    "batch_stats",
    "candidate_settings",
    "effective_sample_size",
    "emphasis_spread",
    "estimate_clean_accuracy",
    "estimate_noise_rate",
    "find_label_issues",
    "logit_grad",
    "loss",
    "loss_and_grad",
    "pair_noise",
    "pair_transition_matrix",
    "select_setting",
    "suggest",
    "symmetric_noise",
    "symmetric_transition_matrix",
    "transition_noise",
]
