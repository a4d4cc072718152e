"""Per-example training dynamics accumulated on the device, without host synchronisation.

:class:`TrainingDynamics` keeps the totals of :class:`emphasis.TrainingDynamics` as
tensors on the device of the logits; :meth:`TrainingDynamics.update` is torch ops only
(its value checks become device flags: a bad update is left out of the totals and
reported, naming the argument, by :meth:`TrainingDynamics.check` or
:meth:`TrainingDynamics.numpy`), so a training step that calls it never waits for the
device, and ``torch.compile(fullgraph=True)`` traces it without a graph break.
:meth:`TrainingDynamics.numpy` hands the totals to the core (one copy, when you want the
scores), where the scores, the noise-rate estimate and the label issues are computed.
"""

from __future__ import annotations

from typing import Any

import torch

import emphasis
from emphasis.dynamics import Totals, observations
from emphasis_torch._namespace import TorchNamespace

__all__ = ["TrainingDynamics"]

_PROBLEMS = (
    "indices must be in [0, {n}) (num_examples={n})",
    "indices must not repeat within one update",
    "labels must be class indices in [0, {c})",
    "logits must be finite or -inf (got NaN or +inf)",
    "labels: an example was seen before with another label; start a new TrainingDynamics "
    "after relabelling",
)
_BITS = torch.tensor([1 << i for i in range(len(_PROBLEMS))])


class TrainingDynamics:
    """Running per-example means of p, the margin and prediction disagreements, on a device.

    Args:
        num_examples: N, the size of the training set (examples are named by index).
        num_classes: C >= 2.
        device: where the totals live (that of the logits passed to :meth:`update`).

    Example::

        >>> import torch, emphasis, emphasis_torch
        >>> dynamics = emphasis_torch.TrainingDynamics(3, 2)
        >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
        >>> dynamics.update(torch.tensor([0, 1, 2]), logits, torch.tensor([0, 1, 1]))
        >>> emphasis.find_label_issues(dynamics.numpy(), rate=1 / 3)
        array([2])
    """

    def __init__(self, num_examples: int, num_classes: int, *, device: Any = None) -> None:
        core = emphasis.TrainingDynamics(num_examples, num_classes)  # checks the sizes
        self.num_examples, self.num_classes = core.num_examples, core.num_classes
        n = self.num_examples

        def full(value: float, dtype: torch.dtype) -> torch.Tensor:
            return torch.full((n,), value, dtype=dtype, device=device)

        self.updates = full(0, torch.int64)
        self.sum_p = full(0.0, torch.float64)
        self.sum_margin = full(0.0, torch.float64)
        self.disagreements = full(0, torch.int64)
        self.labels = full(-1, torch.int64)
        self.last_prediction = full(-1, torch.int64)
        self._updates_made = torch.zeros((), dtype=torch.int64, device=device)
        self._problem = torch.zeros((), dtype=torch.int64, device=device)  # bits of _PROBLEMS
        self._problem_update = torch.zeros((), dtype=torch.int64, device=device)

    @torch.no_grad()
    def update(self, indices: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Add one observation per row of ``logits`` (M, C), for the examples ``indices``
        (M,) with their training ``labels`` (M,). Pass the logits the loss saw (detached
        or not); nothing is read back to the host: a bad value (an index out of range or
        repeated, a label out of range or changed, NaN or +inf logits) makes the whole
        update a no-op, reported by :meth:`check`."""
        for name, value in (("indices", indices), ("logits", logits), ("labels", labels)):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if not logits.dtype.is_floating_point:
            raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits must have shape (M, {self.num_classes}), got {tuple(logits.shape)}"
            )
        m = logits.shape[0]
        for name, value in (("indices", indices), ("labels", labels)):
            if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
                raise TypeError(f"{name} must hold integers, got dtype {value.dtype}")
            if tuple(value.shape) != (m,):
                raise ValueError(
                    f"{name} must have shape ({m},) (one per row of logits), got "
                    f"{tuple(value.shape)}"
                )
        device = self.updates.device
        n, c = self.num_examples, self.num_classes
        index = indices.to(device=device, dtype=torch.int64)
        label = labels.to(device=device, dtype=torch.int64)
        z = logits.detach().to(device=device, dtype=torch.float64)

        # The value checks, as device flags: a bad update is applied as a no-op and
        # reported by numpy() (or check()), so that nothing here waits for the device.
        in_range = (index >= 0) & (index < n)
        safe = torch.where(in_range, index, torch.zeros_like(index))
        ordered = torch.sort(index).values
        seen = self.labels[safe]
        flags = torch.stack(
            [
                ~torch.all(in_range),
                torch.any(ordered[1:] == ordered[:-1]),
                ~torch.all((label >= 0) & (label < c)),
                torch.any(torch.isnan(z) | torch.isposinf(z)),
                ~torch.all((seen < 0) | (seen == label)),
            ]
        )
        code = torch.sum(flags.to(torch.int64) * _BITS.to(device))
        self._updates_made += 1
        first = (self._problem == 0) & (code != 0)
        self._problem_update.copy_(torch.where(first, self._updates_made, self._problem_update))
        self._problem.copy_(torch.where(first, code, self._problem))
        ok = code == 0

        label = torch.where(ok, label, seen.clamp(min=0))  # in range either way
        z = torch.where(ok, z, torch.zeros_like(z))  # NaN must not reach the totals
        p, margin = observations(z, label, TorchNamespace(device))
        predicted = torch.argmax(z, dim=1)
        weight = ok.to(torch.int64)
        self.updates.index_add_(0, safe, weight.expand_as(safe))
        self.sum_p.index_add_(0, safe, p * weight)
        self.sum_margin.index_add_(0, safe, margin * weight)
        self.disagreements.index_add_(0, safe, (predicted != label).to(torch.int64) * weight)
        self.labels.index_copy_(0, safe, torch.where(ok, label, seen))
        kept = self.last_prediction[safe]
        self.last_prediction.index_copy_(0, safe, torch.where(ok, predicted, kept))

    def check(self) -> None:
        """Raise a ValueError naming the argument of the first refused update (reads one
        number from the device)."""
        code = int(self._problem)
        if code == 0:
            return
        problems = [text for bit, text in zip(_BITS.tolist(), _PROBLEMS, strict=True) if code & bit]
        raise ValueError(
            f"update {int(self._problem_update)} was refused and left out of the totals: "
            + "; ".join(problems).format(n=self.num_examples, c=self.num_classes)
        )

    def numpy(self) -> emphasis.TrainingDynamics:
        """The core's :class:`emphasis.TrainingDynamics` of the totals so far (one copy to
        the host): its ``scores()``, ``suggested_labels()``, and
        :func:`emphasis.estimate_noise_rate` / :func:`emphasis.find_label_issues`."""
        arrays = (
            self.updates,
            self.sum_p,
            self.sum_margin,
            self.disagreements,
            self.labels,
            self.last_prediction,
        )
        self.check()
        return emphasis.TrainingDynamics.from_totals(
            self.num_classes, Totals(*(a.cpu().numpy() for a in arrays))
        )
