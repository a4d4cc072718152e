"""``nn.Module`` losses, used like ``nn.CrossEntropyLoss``; they only store configuration.

Each Module stores the keyword arguments of its function in
:mod:`emphasis_torch.functional` and calls it once per forward. The class
``weight`` is a registered buffer (it follows ``.to(device)`` and is saved in the
``state_dict``), as are hyperparameters given as tensors: a schedule can then
update them in place (``loss_fn.beta.fill_(12.0)``) without recompiling a
``torch.compile``'d training step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

import emphasis
from emphasis._validation import (
    check_global_normalisation,
    check_ignore_index,
    check_reduction,
)
from emphasis_torch import functional as F

__all__ = ["CCELoss", "GCELoss", "GRLoss", "MAELoss"]


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
        **options: Any,
    ) -> None:
        super().__init__()
        if weight is not None:
            if not isinstance(weight, torch.Tensor) or weight.ndim != 1:
                raise ValueError(f"weight must be a 1-d tensor (one per class), got {weight!r}")
            if not weight.dtype.is_floating_point:
                raise TypeError(f"weight must be a floating-point tensor, got dtype {weight.dtype}")
            if not bool(torch.all(torch.isfinite(weight) & (weight >= 0))):
                raise ValueError("weight must be finite and non-negative")
        self.register_buffer("weight", weight)
        self.ignore_index = check_ignore_index(ignore_index)
        self.reduction = check_reduction(reduction)
        self.validate = bool(validate)
        self.track_stats = bool(track_stats)
        self.last_stats = None
        fields = {k: v for k, v in options.items() if k in self._scheme_fields()}
        self._scheme_class(**fields)  # the core's checks of the scheme's settings
        self._options = tuple(options)
        for name, value in options.items():
            if isinstance(value, torch.Tensor):  # a hyperparameter a schedule may update
                F.check_hyper_tensor_now(name, value)
                self.register_buffer(name, value.detach().clone())
            else:
                setattr(self, name, value)

    @classmethod
    def _scheme_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls._scheme_class))  # type: ignore[arg-type]

    @property
    def scheme(self) -> emphasis.Scheme:
        """The core scheme with this Module's hyperparameters."""
        return self._scheme_class(**{k: getattr(self, k) for k in self._scheme_fields()})

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
        )
        if not self.track_stats:
            return result
        loss, self.last_stats = result
        return loss

    def extra_repr(self) -> str:
        parts = [f"{k}={_show(getattr(self, k))}" for k in self._options if k != "process_group"]
        parts = [p for p in parts if p != "global_batch=False"]
        parts += [f"reduction={self.reduction!r}", f"ignore_index={self.ignore_index}"]
        if self.weight is not None:
            parts.append(f"weight=<{tuple(self.weight.shape)}>")
        if self.track_stats:
            parts.append("track_stats=True")
        if not self.validate:
            parts.append("validate=False")
        return ", ".join(parts)


class GRLoss(_EmphasisLoss):
    r"""Gradient rescaling loss: a drop-in replacement for ``nn.CrossEntropyLoss``.

    Each example's CCE logit gradient is rescaled to L1 norm
    ``w(p) = exp(beta p^lam (1 - p))``, p = softmax(z)[y]; the weights are
    normalised to mean 1 over the batch (``normalize=True``) and faded near p = 1 by
    ``eps``. The value returned is ``reported_loss`` (CCE by default); only the
    gradient is GR's. See :func:`emphasis_torch.gr_loss` for the formula and every
    argument.

    Args:
        beta, lam, transform, normalize, eps, reported_loss, weight, ignore_index,
        reduction, global_batch, process_group, validate: as in
        :func:`emphasis_torch.gr_loss` (keyword-only). Tensor ``beta``/``lam``/``eps``
        become buffers.
        track_stats: store the :class:`~emphasis_torch.BatchStats` of the last batch
            in ``last_stats`` (detached tensors; works under torch.compile).

    Shape:
        - Input: (C), (N, C) or (N, C, d1, ..., dk) logits
        - Target: (), (N) or (N, d1, ..., dk) class indices, or one-hot like Input
        - Output: scalar; for ``reduction="none"`` the shape of the indices.

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
        global_batch: bool = False,
        process_group: Any = None,
        validate: bool = True,
        track_stats: bool = False,
    ) -> None:
        check_global_normalisation("global_batch=True", global_batch, normalize)
        super().__init__(
            beta=beta,
            lam=lam,
            transform=transform,
            normalize=normalize,
            eps=eps,
            reported_loss=reported_loss,
            global_batch=bool(global_batch),
            process_group=process_group,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            validate=validate,
            track_stats=track_stats,
        )


class CCELoss(_EmphasisLoss):
    r"""Categorical cross entropy with the core's gradient (w(p) = 2 (1 - p)).

    Same value and gradient as ``nn.CrossEntropyLoss`` (no label smoothing); a
    baseline that shares GR's code path and statistics. See
    :func:`emphasis_torch.cce_loss`.

    Shape:
        As :class:`GRLoss`.

    Example::

        >>> import torch, emphasis_torch
        >>> emphasis_torch.CCELoss()(torch.zeros(2, 4), torch.tensor([0, 3])).round(decimals=4)
        tensor(1.3863)
    """

    _function = staticmethod(F.cce_loss)
    _scheme_class = emphasis.CCE
    # __init__: _EmphasisLoss's (weight, ignore_index, reduction, validate, track_stats)


class MAELoss(_EmphasisLoss):
    r"""Mean absolute error ``2 (1 - p)`` with w(p) = 4 p (1 - p). See :func:`emphasis_torch.mae_loss`.

    Shape:
        As :class:`GRLoss`.

    Example::

        >>> import torch, emphasis_torch
        >>> emphasis_torch.MAELoss()(torch.zeros(2, 4), torch.tensor([0, 3]))
        tensor(1.5000)
    """

    _function = staticmethod(F.mae_loss)
    _scheme_class = emphasis.MAE
    # __init__: _EmphasisLoss's (weight, ignore_index, reduction, validate, track_stats)


class GCELoss(_EmphasisLoss):
    r"""Generalised cross entropy ``(1 - p^q) / q``, w(p) = 2 p^q (1 - p). See :func:`emphasis_torch.gce_loss`.

    Args:
        q: exponent in [0, 1], a float or a 0-d tensor (then a buffer).

    Shape:
        As :class:`GRLoss`.

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
    ) -> None:
        super().__init__(
            q=q,
            weight=weight,
            ignore_index=ignore_index,
            reduction=reduction,
            validate=validate,
            track_stats=track_stats,
        )


def _show(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor({value.item():g})"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)
