"""PyTorch adapter for :mod:`emphasis`: gradient rescaling as a drop-in for cross entropy.

Replace ``nn.CrossEntropyLoss()`` by ``emphasis_torch.GRLoss(beta=8.0, lam=0.5)``
and train as before. Functional forms (``gr_loss``, ``cce_loss``, ``mae_loss``,
``gce_loss``) follow ``torch.nn.functional.cross_entropy``; the Modules
(``GRLoss``, ``CCELoss``, ``MAELoss``, ``GCELoss``) only store configuration.
The logit gradient is the core's (:mod:`emphasis.kernel`), registered as a
custom autograd function that runs on the device of the logits.

Importing this package imports PyTorch; importing :mod:`emphasis` alone never does.
"""

try:
    import torch  # noqa: F401
except ImportError as err:
    raise ImportError('emphasis_torch needs PyTorch: pip install "emphasis[torch]"') from err

from emphasis_torch.dynamics import TrainingDynamics
from emphasis_torch.functional import BatchStats, cce_loss, gce_loss, gr_loss, mae_loss
from emphasis_torch.modules import CCELoss, GCELoss, GRLoss, MAELoss

__all__ = [
    "BatchStats",
    "CCELoss",
    "GCELoss",
    "GRLoss",
    "MAELoss",
    "TrainingDynamics",
    "cce_loss",
    "gce_loss",
    "gr_loss",
    "mae_loss",
]
