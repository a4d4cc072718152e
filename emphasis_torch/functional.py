"""Functional losses in the style of ``torch.nn.functional.cross_entropy``.

``gr_loss``, ``cce_loss``, ``mae_loss`` and ``gce_loss`` take logits ``input`` of
shape (C,), (N, C) or (N, C, d1, ..., dk) and class indices ``target`` of shape
(), (N,) or (N, d1, ..., dk) (or one-hot rows shaped like ``input``), and return
the reduced loss. The logit gradient is the core's (:mod:`emphasis.kernel`): the
CCE gradient of each example rescaled to L1 norm w(p), p = softmax(z)[y]. For
CCE, MAE and GCE it is the gradient of the value returned; for GR the value is
the ``reported_loss`` (CCE by default) and only the gradient is GR's.

Checks on values (NaN or +inf logits, labels out of range, non one-hot rows,
negative class weights, tensor hyperparameters out of range) run when
``validate=True``: in eager mode they read one flag back from the device (one
host synchronisation per call) and raise a ValueError that names the argument;
under ``torch.compile`` they become in-graph ``torch._assert_async`` checks (no
graph break, no host synchronisation); under ``torch.func.vmap`` they are
skipped. ``validate=False`` skips them everywhere.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

import emphasis
from emphasis import kernel
from emphasis._layout import to_rows
from emphasis._validation import (
    check_global_normalisation,
    check_ignore_index,
    check_reduction,
    expected_range,
    hyperparameter_out_of_range,
    range_message,
)
from emphasis._value_checks import Names, logits_message
from emphasis_torch._autograd import compute_dtype, emphasis_rows
from emphasis_torch._namespace import TorchNamespace

__all__ = ["BatchStats", "cce_loss", "gce_loss", "gr_loss", "mae_loss"]

Hyperparameter = float | torch.Tensor
_NAMES = Names(logits="input", labels="target")


class BatchStats(NamedTuple):
    """Statistics of one batch, as detached tensors (no host synchronisation).

    The fields of :class:`emphasis.BatchStats`; per-example fields have the shape
    of the labels. Computed in float32 (float64 for float64 input).
    """

    p: torch.Tensor  #: relevance score softmax(z)[y] (NaN where ignored)
    raw_weights: torch.Tensor  #: w(p) (0 where ignored)
    weights: torch.Tensor  #: the weights applied: w / mean(w) when the scheme normalises
    focus: float | torch.Tensor  #: emphasis focus lam / (1 + lam) (a tensor when lam is)
    spread: torch.Tensor  #: () variance of the raw weights over the valid examples (NaN if none)
    effective_sample_size: torch.Tensor  #: () (sum w)^2 / sum w^2 of the applied weights


# -- checks ------------------------------------------------------------------------------


def _is_vmapped(tensor: torch.Tensor) -> bool:
    """True inside torch.func.vmap, where value checks cannot read a flag back."""
    functorch = getattr(torch._C, "_functorch", None)
    if (
        functorch is None or torch.compiler.is_compiling()
    ):  # pragma: no cover - every supported torch has it
        return False
    while functorch.is_functorch_wrapped_tensor(tensor):
        if functorch.is_batchedtensor(tensor):
            return True
        tensor = functorch.get_unwrapped(tensor)
    return False


def _check_tensor(name: str, value: Any) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")


def _check_hyper_tensor(name: str, value: torch.Tensor) -> None:
    if value.ndim != 0:
        raise ValueError(f"{name} must be a number or a 0-d tensor, got shape {tuple(value.shape)}")
    if not value.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")


def check_hyper_tensor_now(name: str, value: torch.Tensor) -> None:
    """Eager check of a tensor hyperparameter (shape, dtype, range): raise on a bad one."""
    _check_hyper_tensor(name, value)
    if bool(hyperparameter_out_of_range(name, value)):
        raise ValueError(range_message(name, value))


class _Check(NamedTuple):
    failed: torch.Tensor  #: () bool
    message: str  #: message used under torch.compile
    explain: Any  #: () -> str, the eager message (may read values back)


def _run_checks(checks: list[_Check]) -> None:
    if not checks:
        return
    if torch.compiler.is_compiling():
        for check in checks:
            torch._assert_async(~check.failed, check.message)
        return
    failed = torch.stack([check.failed for check in checks]).tolist()  # the one host sync
    for check, bad in zip(checks, failed, strict=True):
        if bad:
            raise ValueError(check.explain())


def _first(mask: torch.Tensor) -> int:
    return int(torch.nonzero(mask.reshape(-1))[0, 0])


# -- the shared implementation -------------------------------------------------------------


def _rows_of(
    input: torch.Tensor, target: torch.Tensor, checks: list[_Check] | None
) -> tuple[Any, torch.Tensor | None]:
    """Rows of logits and labels; one-hot targets become indices (checked)."""
    xp = TorchNamespace(input.device)
    one_hot = None
    if input.ndim >= 1 and target.shape == input.shape:
        class_dim = 0 if input.ndim == 1 else 1
        one_hot = target
        labels = torch.argmax(target, dim=class_dim)
        if checks is not None:
            is_binary = (target == 0) | (target == 1)
            row_sum = torch.sum(target, dim=class_dim)
            bad_rows = (row_sum != 1) | ~torch.all(is_binary, dim=class_dim)

            def explain() -> str:
                i = _first(bad_rows)
                return (
                    "target has the shape of input, so its rows are read as one-hot labels along "
                    f"the class dimension; example {i} is not one-hot (soft or probability "
                    "targets are not supported: the weights w(p) need one label per example)"
                )

            checks.append(_Check(torch.any(bad_rows), "target: a row is not one-hot", explain))
    else:
        if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
            raise TypeError(
                "target must hold integer class indices (shape of input without the class "
                "dimension) or one-hot rows shaped like input; got dtype "
                f"{target.dtype} and shape {tuple(target.shape)} for input of shape "
                f"{tuple(input.shape)}"
            )
        labels = target
    return to_rows(input, labels, 1, xp, ("input", "target")), one_hot


def _emphasis_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    scheme: emphasis.Scheme,
    *,
    weight: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    global_batch: bool = False,
    process_group: Any = None,
    validate: bool = True,
    return_stats: bool = False,
) -> Any:
    _check_tensor("input", input)
    _check_tensor("target", target)
    if not input.dtype.is_floating_point:
        raise TypeError(f"input must be a floating-point tensor of logits, got dtype {input.dtype}")
    reduction = check_reduction(reduction)
    check_ignore_index(ignore_index)
    check_values = validate and not _is_vmapped(input)
    checks: list[_Check] | None = [] if check_values else None
    key, hyper = scheme.split()

    for name, value in hyper.items():
        if isinstance(value, torch.Tensor):
            _check_hyper_tensor(name, value)
            if checks is not None:
                checks.append(
                    _Check(
                        hyperparameter_out_of_range(name, value),
                        f"{name} must be {expected_range(name)}",
                        lambda name=name, value=value: range_message(name, value),
                    )
                )

    rows, _ = _rows_of(input, target, checks)
    logits, labels = rows.logits, rows.labels
    num_classes = int(logits.shape[-1])
    dtype = compute_dtype(input.dtype)
    xp = TorchNamespace(input.device)
    safe, valid = kernel.safe_labels(labels, ignore_index, xp)
    in_range = (safe >= 0) & (safe < num_classes)
    # Out-of-range labels are reported by the checks; clamping keeps indexing in bounds
    # before they run (and when they are off).
    safe = torch.where(in_range, safe, torch.zeros_like(safe))

    class_weight = None
    example_weight = None
    if weight is not None:
        _check_tensor("weight", weight)
        if weight.shape != (num_classes,):
            raise ValueError(
                f"weight must have shape ({num_classes},) (one per class), got {tuple(weight.shape)}"
            )
        if not weight.dtype.is_floating_point:
            raise TypeError(f"weight must be a floating-point tensor, got dtype {weight.dtype}")
        class_weight = weight.detach().to(device=input.device, dtype=dtype)
        example_weight = torch.where(valid, class_weight[safe], torch.zeros_like(safe, dtype=dtype))
        if checks is not None:
            bad_weight = torch.any(~torch.isfinite(class_weight) | (class_weight < 0))
            checks.append(
                _Check(
                    bad_weight,
                    "weight must be finite and non-negative",
                    lambda: "weight must be finite and non-negative",
                )
            )

    all_reduce = None
    if global_batch:
        check_global_normalisation("global_batch=True", global_batch, scheme.normalize)
        all_reduce = _all_reduce(process_group)

    out = emphasis_rows(
        logits,
        safe,
        valid,
        example_weight,
        key,
        tuple(hyper.values()),
        all_reduce,
    )

    if checks is not None:
        _append_value_checks(checks, logits, labels, safe, valid, in_range, out, ignore_index)
        _run_checks(checks)

    if example_weight is None:
        losses, example_weight = out.loss, valid.to(dtype)
    else:
        losses = out.loss * example_weight
    value = kernel.reduce_losses(losses, example_weight, reduction, xp)
    if reduction == "none":
        value = torch.reshape(value, rows.label_shape)
    value = value.to(_output_dtype(input))
    if not return_stats:
        return value
    return value, _batch_stats(out, valid, rows.label_shape, key, hyper)


def _append_value_checks(
    checks: list[_Check],
    logits: torch.Tensor,
    labels: torch.Tensor,
    safe: torch.Tensor,
    valid: torch.Tensor,
    in_range: torch.Tensor,
    out: Any,
    ignore_index: int,
) -> None:
    """Label range, NaN and +inf logits, rows of only -inf; all O(M) given the forward."""
    num_classes = int(logits.shape[-1])
    bad_labels = valid & ~in_range

    def explain_labels() -> str:
        value = int(labels.reshape(-1)[_first(bad_labels)])
        return (
            f"target must hold class indices in [0, {num_classes - 1}] or ignore_index="
            f"{ignore_index}, got {value}"
        )

    checks.append(_Check(torch.any(bad_labels), "target: class index out of range", explain_labels))

    # NaN anywhere in a row, or +inf off the label, makes log p NaN; +inf at the label does
    # not, so it is read directly. A row of only -inf also gives NaN: an error when the row
    # counts, allowed when it is ignored (as in the core).
    z_label = torch.gather(logits, 1, safe[:, None])[:, 0]
    no_softmax = torch.isnan(out.log_p)
    ignored_dead = ~valid & torch.isneginf(z_label) & (out.rest_sum == 0)
    bad_values = torch.isposinf(z_label) | (no_softmax & ~ignored_dead)

    def explain_values() -> str:
        for problem, rows in (("nan", torch.isnan(logits)), ("posinf", torch.isposinf(logits))):
            rows = torch.any(rows, dim=-1)
            if bool(torch.any(rows)):
                return logits_message(problem, _NAMES, _first(rows))
        return logits_message("dead", _NAMES, _first(bad_values))

    checks.append(_Check(torch.any(bad_values), "input: NaN or +inf logits", explain_values))


def _output_dtype(input: torch.Tensor) -> torch.dtype:
    # Under autocast the loss is float32, as F.cross_entropy (on autocast's float32 list)
    # returns it; otherwise it has the dtype of the input.
    device_type = input.device.type
    if (
        input.dtype != torch.float64
        and torch.amp.is_autocast_available(device_type)
        and torch.is_autocast_enabled(device_type)
    ):
        return torch.float32
    return input.dtype


def _all_reduce(process_group: Any) -> kernel.AllReduce:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "global_batch=True all-reduces GR's weight sum over the data-parallel job; call "
            "torch.distributed.init_process_group first"
        )
    ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}

    def all_reduce(value: torch.Tensor, op: str) -> torch.Tensor:
        reduced = value.clone()  # the collective works in place
        dist.all_reduce(reduced, op=ops[op], group=process_group)
        return reduced

    return all_reduce


def _batch_stats(
    out: Any,
    valid: torch.Tensor,
    label_shape: tuple[int, ...],
    key: Any,
    hyper: dict[str, Hyperparameter],
) -> BatchStats:
    detached = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in hyper.items()}
    stats = emphasis.stats.batch_statistics(
        out.log_p.detach(),
        out.log_weight.detach(),
        out.log_mean_weight.detach(),
        valid,
        TorchNamespace(valid.device),
    )
    return BatchStats(
        p=stats.p.reshape(label_shape),
        raw_weights=stats.raw_weights.reshape(label_shape),
        weights=stats.weights.reshape(label_shape),
        # The core's Scheme.focus keeps a tensor lam a tensor (no host sync).
        focus=emphasis.Scheme.rebuild(key, detached).focus,
        spread=stats.spread,
        effective_sample_size=stats.effective_sample_size,
    )


# -- public functions ----------------------------------------------------------------------


def gr_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    beta: Hyperparameter = 8.0,
    lam: Hyperparameter = 0.5,
    transform: str = "exp",
    normalize: bool = True,
    eps: Hyperparameter = 1e-6,
    reported_loss: Any = "cce",
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    global_batch: bool = False,
    process_group: Any = None,
    validate: bool = True,
    return_stats: bool = False,
) -> Any:
    r"""Gradient rescaling (GR): the CCE logit gradient of each example rescaled to norm w(p).

    With ``p = softmax(z)[y]`` the weight is ``w(p) = exp(beta * p**lam * (1 - p))``
    (``transform="exp"``) or ``beta * p**lam * (1 - p)`` (``"identity"``), and the
    gradient of example i is

    .. math::
        \frac{\partial L}{\partial z_i} = \frac{w_i}{2}\, d_i\,
        \frac{1 - p_i}{(1 - p_i) + \epsilon/2},\qquad
        d_{ij} = \mathrm{softmax}(z_{i,\neg y})_j\ (j \ne y_i),\quad d_{iy} = -1,

    times the reduction's factor, with the weights divided by their mean over the
    valid examples when ``normalize=True`` (weights treated as constants). GR has
    no elementary loss: the value returned is ``reported_loss`` (CCE by default),
    whose own gradient is not GR's.

    Args:
        input: logits, (C,), (N, C) or (N, C, d1, ..., dk); float16, bfloat16,
            float32 or float64 (16-bit inputs compute in float32).
        target: class indices, (), (N,) or (N, d1, ..., dk), integer; or one-hot rows
            shaped like ``input`` (soft targets raise ValueError).
        beta: emphasis spread, >= 0 (a float, or a 0-d tensor for a schedule that
            should not recompile under torch.compile).
        lam: emphasis focus exponent, >= 0; the focus is ``lam / (1 + lam)``.
        transform: ``"exp"`` (the paper's g) or ``"identity"``.
        normalize: divide the weights by their mean over the valid examples of the
            batch (the authors' code does; keeps large beta usable).
        eps: the authors' stabiliser (>= 0; 0 is exact Eq. (6)); float or 0-d tensor.
        reported_loss: ``"cce"``, ``"mae"``, ``"gce"`` or ``emphasis.CCE()``,
            ``emphasis.MAE()``, ``emphasis.GCE(q)``: the value returned.
        weight: optional (C,) class weights; each example's loss and gradient are
            multiplied by the weight of its label, and "mean" divides by their sum
            (as ``F.cross_entropy``). They also weight GR's normalising mean.
        ignore_index: label whose examples get zero loss and gradient and count
            neither in the mean nor in the normaliser.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        global_batch: under data parallelism, normalise over the global batch (the
            weight sum and count are all-reduced over ``process_group``), so that R
            ranks x B/R examples give the gradient of 1 process x B.
        process_group: the ``torch.distributed`` group (default group when None).
        validate: run the value checks (module docstring).
        return_stats: also return a :class:`BatchStats`.

    Returns:
        The loss: a scalar, or shaped like ``target`` for ``"none"``; the dtype of
        ``input`` (float32 under autocast, as ``F.cross_entropy``). With
        ``return_stats=True``, ``(loss, stats)``.

    Shape:
        - input: (C), (N, C) or (N, C, d1, ..., dk)
        - target: (), (N) or (N, d1, ..., dk) class indices, or one-hot like input
        - output: scalar; for ``reduction="none"``, the shape of the indices.

    References:
        Wang, Hua, Kodirov, Robertson, "Robust discriminative representation learning
        via gradient rescaling: an emphasis regularisation perspective" (2019);
        "Derivative Manipulation for General Example Weighting", arXiv:1905.11233.

    Example::

        >>> import torch, emphasis_torch
        >>> logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]], requires_grad=True)
        >>> loss = emphasis_torch.gr_loss(logits, torch.tensor([0, 2]), beta=8.0, lam=0.5)
        >>> loss.backward()
        >>> # Row i has L1 norm (w_i / mean w) / N: normalised weights, so the norms sum to 1.
        >>> logits.grad.abs().sum().round(decimals=4)
        tensor(1.)
    """
    scheme = emphasis.GR(  # tensor hyperparameters pass through; _emphasis_loss checks them
        beta=beta,
        lam=lam,
        transform=transform,
        normalize=normalize,
        eps=eps,
        reported_loss=reported_loss,
    )
    return _emphasis_loss(
        input,
        target,
        scheme,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        global_batch=global_batch,
        process_group=process_group,
        validate=validate,
        return_stats=return_stats,
    )


def cce_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
    return_stats: bool = False,
) -> Any:
    r"""Categorical cross entropy ``-log p`` with the core's gradient (w(p) = 2(1 - p)).

    The value and gradient of ``F.cross_entropy`` (without label smoothing); the
    gradient is computed by the core's kernel, as for the other schemes.

    Args and returns are those of :func:`gr_loss` (no GR hyperparameters).

    Shape:
        As :func:`gr_loss`.

    References:
        Wang et al., "Derivative Manipulation for General Example Weighting",
        arXiv:1905.11233, Eq. (4).

    Example::

        >>> import torch, emphasis_torch
        >>> logits = torch.tensor([[0.0, 0.0]])
        >>> emphasis_torch.cce_loss(logits, torch.tensor([1])).round(decimals=4)
        tensor(0.6931)
    """
    return _emphasis_loss(
        input,
        target,
        emphasis.CCE(),
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        validate=validate,
        return_stats=return_stats,
    )


def mae_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
    return_stats: bool = False,
) -> Any:
    r"""Mean absolute error ``||onehot(y) - softmax(z)||_1 = 2 (1 - p)``; w(p) = 4 p (1 - p).

    Args and returns are those of :func:`gr_loss` (no GR hyperparameters).

    Shape:
        As :func:`gr_loss`.

    References:
        Ghosh, Kumar, Sastry, "Robust loss functions under label noise for deep neural
        networks", AAAI 2017; Wang et al., arXiv:1905.11233, Eq. (4).

    Example::

        >>> import torch, emphasis_torch
        >>> emphasis_torch.mae_loss(torch.zeros(1, 4), torch.tensor([0]))
        tensor(1.5000)
    """
    return _emphasis_loss(
        input,
        target,
        emphasis.MAE(),
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        validate=validate,
        return_stats=return_stats,
    )


def gce_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    q: Hyperparameter = 0.7,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
    return_stats: bool = False,
) -> Any:
    r"""Generalised cross entropy ``(1 - p**q) / q`` (Zhang & Sabuncu); w(p) = 2 p^q (1 - p).

    Args:
        q: exponent in [0, 1] (q = 0 is CCE, q = 1 half of MAE); float or 0-d tensor.

    Other args and the return value are those of :func:`gr_loss`.

    Shape:
        As :func:`gr_loss`.

    References:
        Zhang & Sabuncu, "Generalized cross entropy loss for training deep neural
        networks with noisy labels", NeurIPS 2018.

    Example::

        >>> import torch, emphasis_torch
        >>> emphasis_torch.gce_loss(torch.zeros(1, 4), torch.tensor([0]), q=1.0)
        tensor(0.7500)
    """
    return _emphasis_loss(
        input,
        target,
        emphasis.GCE(q=q),
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        validate=validate,
        return_stats=return_stats,
    )
