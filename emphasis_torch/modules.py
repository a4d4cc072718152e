"""``nn.Module`` losses, used like ``nn.CrossEntropyLoss``; they only store configuration.

Each Module calls its function in :mod:`emphasis_torch.functional` once per forward.
The class ``weight`` and hyperparameters given as tensors are registered buffers:
they follow ``.to(device)``, are saved in the ``state_dict``, and a schedule can update
them in place (``loss_fn.beta.fill_(12.0)``) without recompiling a ``torch.compile``'d
training step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import emphasis
from emphasis._docs import document
from emphasis._validation import check_global_normalisation, check_ignore_index, check_reduction
from emphasis_torch import functional as F

__all__ = ["CCELoss", "GCELoss", "GRLoss", "MAELoss"]

_DOCS = {
    **F.DOCS,
    "scalar": "a float or a 0-d tensor (then a buffer)",
    "STATS_ARG": """track_stats: store the :class:`~emphasis_torch.BatchStats` of the last batch
    in ``last_stats`` (detached tensors; works under torch.compile).""",
}


class _EmphasisLoss(nn.Module):
    """A functional loss and its keyword arguments (the configuration), called once per forward.

    Subclasses name the function and the scheme; their ``__init__`` only forwards
    their keyword arguments. Options (hyperparameters, ``transform``, ...) are
    attributes; tensor hyperparameters and the class ``weight`` are buffers.
    """

    _function: Any  #: the functional form, e.g. ``F.gr_loss``
    _scheme_class: type[emphasis.Scheme]
    weight: torch.Tensor | None
    last_stats: F.BatchStats | None

    def __init__(
        self,
        *,
        weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
        track_stats: bool = False,
        kernel: str = "auto",
        **options: Any,
    ) -> None:
        super().__init__()
        # A Module built with the deprecated name shows it in its repr, as before.
        alias = options.get("global_batch") is not None
        self._shown = {"global_normalize": "global_batch"} if alias else {}
        options = F.renamed(options)
        if weight is not None:
            if not isinstance(weight, torch.Tensor) or weight.ndim != 1:
                raise ValueError(f"weight must be a 1-d tensor (one per class), got {weight!r}")
            # Its values are checked with the input (validate=True): a weight of the wrong
            # length is reported as that, even when it also has a negative entry.
            F.check_tensor("weight", weight, "tensor")
        self.register_buffer("weight", weight)
        self.ignore_index = check_ignore_index(ignore_index)
        self.reduction = check_reduction(reduction)
        self.validate = bool(validate)
        self.kernel = F.check_kernel(kernel)
        self.track_stats = bool(track_stats)
        self.last_stats = None
        fields = F.SCHEME_FIELDS[self._scheme_class]
        scheme = self._scheme_class(**{k: options[k] for k in fields})  # the core's checks
        if "global_normalize" in options:
            options["global_normalize"] = bool(options["global_normalize"])
            check_global_normalisation(
                "global_normalize=True", options["global_normalize"], scheme.normalize
            )
        hyper = {k: options[k] for k in scheme.HYPERPARAMETERS}
        F.run_checks(F.hyperparameter_problems(scheme, hyper, torch.float64))  # their ranges
        self._options = tuple(options)
        for name, value in options.items():
            if isinstance(value, torch.Tensor):  # a hyperparameter a schedule may update
                self.register_buffer(name, value.detach().clone())
            else:
                setattr(self, name, value)

    @property
    def scheme(self) -> emphasis.Scheme:
        """The core scheme with this Module's hyperparameters."""
        fields = F.SCHEME_FIELDS[self._scheme_class]
        return self._scheme_class(**{k: getattr(self, k) for k in fields})

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        result = type(self)._function(
            input,
            target,
            **{name: getattr(self, name) for name in self._options},
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            validate=self.validate,
            return_stats=self.track_stats,
            kernel=self.kernel,
        )
        if not self.track_stats:
            return result
        loss, self.last_stats = result
        return loss

    def extra_repr(self) -> str:
        parts = [
            f"{self._shown.get(k, k)}={_show(getattr(self, k))}"
            for k in self._options
            if k != "process_group" and not (k == "global_normalize" and not self.global_normalize)
        ]
        parts += [f"reduction={self.reduction!r}", f"ignore_index={self.ignore_index}"]
        if self.weight is not None:
            parts.append(f"weight=<{tuple(self.weight.shape)}>")
        if self.track_stats:
            parts.append("track_stats=True")
        if not self.validate:
            parts.append("validate=False")
        if self.kernel != "auto":
            parts.append(f"kernel={self.kernel!r}")
        return ", ".join(parts)


@document(**_DOCS)
class GRLoss(_EmphasisLoss):
    """Gradient rescaling loss: a drop-in replacement for ``nn.CrossEntropyLoss``.

    The value is ``reported_loss`` (CCE by default); the logit gradient is GR's, as
    in :func:`emphasis_torch.gr_loss`, whose docstring gives the formula.

    Args:
        {GR_ARGS}
        {OPTIONS}
        {GLOBAL_ARGS}
        {STATS_ARG}
        {KERNEL_ARG}

    {SHAPE}

    Example::

        >>> import torch, emphasis_torch
        >>> loss_fn = emphasis_torch.GRLoss(beta=8.0, lam=0.5, track_stats=True)
        >>> logits = torch.zeros(4, 10, requires_grad=True)
        >>> loss = loss_fn(logits, torch.tensor([0, 1, 2, 3]))
        >>> loss.backward()
        >>> round(loss.item(), 4), loss_fn.last_stats.spread.item()
        (2.3026, 0.0)
    """

    _function = staticmethod(F.gr_loss)
    _scheme_class = emphasis.GR
    beta: float | torch.Tensor
    lam: float | torch.Tensor
    eps: float | torch.Tensor

    def __init__(
        self,
        *,
        beta: float | torch.Tensor = 8.0,
        lam: float | torch.Tensor = 0.5,
        transform: str = "exp",
        normalize: bool = True,
        eps: float | torch.Tensor = 1e-6,
        reported_loss: Any = "cce",
        weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        global_normalize: bool = False,
        process_group: Any = None,
        validate: bool = True,
        track_stats: bool = False,
        kernel: str = "auto",
        global_batch: bool | None = None,
    ) -> None:
        _EmphasisLoss.__init__(**locals())


@document(**_DOCS)
class CCELoss(_EmphasisLoss):
    """Categorical cross entropy with the core's gradient (w(p) = 2 (1 - p)).

    Same value and gradient as ``nn.CrossEntropyLoss`` (no label smoothing); a
    baseline that shares GR's code path and statistics (:func:`emphasis_torch.cce_loss`).

    Args:
        {OPTIONS}
        {STATS_ARG}
        {KERNEL_ARG}

    {SHAPE}

    Example::

        >>> import torch, emphasis_torch
        >>> emphasis_torch.CCELoss()(torch.zeros(2, 4), torch.tensor([0, 3])).round(decimals=4)
        tensor(1.3863)
    """

    _function = staticmethod(F.cce_loss)
    _scheme_class = emphasis.CCE


@document(**_DOCS)
class MAELoss(_EmphasisLoss):
    """Mean absolute error ``2 (1 - p)``, w(p) = 4 p (1 - p) (:func:`emphasis_torch.mae_loss`).

    Args:
        {OPTIONS}
        {STATS_ARG}
        {KERNEL_ARG}

    {SHAPE}

    Example::

        >>> import torch, emphasis_torch
        >>> emphasis_torch.MAELoss()(torch.zeros(2, 4), torch.tensor([0, 3]))
        tensor(1.5000)
    """

    _function = staticmethod(F.mae_loss)
    _scheme_class = emphasis.MAE


@document(**_DOCS)
class GCELoss(_EmphasisLoss):
    """Generalised cross entropy ``(1 - p^q) / q``, w(p) = 2 p^q (1 - p) (:func:`emphasis_torch.gce_loss`).

    Args:
        {Q_ARG}
        {OPTIONS}
        {STATS_ARG}
        {KERNEL_ARG}

    {SHAPE}

    Example::

        >>> import torch, emphasis_torch
        >>> emphasis_torch.GCELoss(q=1.0)(torch.zeros(2, 4), torch.tensor([0, 3]))
        tensor(0.7500)
    """

    _function = staticmethod(F.gce_loss)
    _scheme_class = emphasis.GCE
    q: float | torch.Tensor

    def __init__(
        self,
        *,
        q: float | torch.Tensor = 0.7,
        weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        validate: bool = True,
        track_stats: bool = False,
        kernel: str = "auto",
    ) -> None:
        _EmphasisLoss.__init__(**locals())


def _show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor({value.item():g})"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)
