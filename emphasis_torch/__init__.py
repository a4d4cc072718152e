"""PyTorch adapter for :mod:`emphasis` (being written).

It will expose ``GRLoss`` (an ``nn.Module`` used like ``nn.CrossEntropyLoss``) and a functional form,
registering the core's stable logit gradient as a custom autograd function. Importing this package
imports PyTorch; importing :mod:`emphasis` alone never does.
"""

try:
    import torch  # noqa: F401
except ImportError as err:
    raise ImportError('emphasis_torch needs PyTorch: pip install "emphasis[torch]"') from err

__all__: list[str] = []
