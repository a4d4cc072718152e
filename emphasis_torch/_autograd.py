"""The custom autograd op: logits (M, C) -> per-example losses (M,), with the core's gradient.

Forward and backward call :mod:`emphasis.kernel` through :class:`TorchNamespace`, on
the device of the logits, without NumPy or a host round trip; the one pass over the
(M, C) logits, :func:`emphasis.kernel.row_statistics`, is computed here in torch's
in-place operations (:func:`_exp_rest`) or by the Triton kernels.

What is saved for backward. For float32 and float64 logits on the torch ops: the
buffer ``exp(z_j - rest_max)`` of the non-target logits (0 at the target) that the
forward computed anyway, the labels and the (M,) vectors ``coef`` and ``rest_sum``; the
backward is then one multiplication and a scatter, the gradient rows of
:func:`emphasis.kernel.grad_rows` bit for bit, and never a second exp over (M, C). That
is one (M, C) tensor, as ``F.cross_entropy`` saves one (its log-softmax). For 16-bit
logits (whose compute dtype, float32, would double it) and on the Triton path: the
logits themselves (no copy) and ``rest_max``, and the backward recomputes the exp.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any, NamedTuple

import torch

import emphasis
from emphasis import kernel
from emphasis_torch._namespace import TorchNamespace

__all__ = ["compute_dtype", "emphasis_rows", "scheme_of"]


def scheme_of(key: Hashable, hyper: tuple[Any, ...]) -> emphasis.Scheme:
    """The core scheme of a static key (:meth:`emphasis.Scheme.split`) and its hyperparameters."""
    return emphasis.Scheme.rebuild(key, dict(zip(key[0].HYPERPARAMETERS, hyper, strict=True)))  # type: ignore[index]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The core's policy (:func:`emphasis.kernel.compute_dtype_name`) as a torch dtype."""
    return getattr(torch, kernel.compute_dtype_name(str(dtype).removeprefix("torch.")))


def _triton() -> Any:
    """The Triton kernels, imported on first use (Triton is optional)."""
    from emphasis_torch import _triton as triton_kernels

    return triton_kernels


def _hyper(value: Any, dtype: torch.dtype, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to(device=device, dtype=dtype)
    return value


def _put_at_labels(rows: torch.Tensor, labels: torch.Tensor, value: Any) -> torch.Tensor:
    """``rows[i, labels[i]] = value`` (or ``value[i]``), in place. Indexed assignment, not
    ``scatter_``: torch.func.vmap has a batching rule for it and none for in-place scatter
    (which falls back to a loop with a performance warning)."""
    rows[torch.arange(rows.shape[0], device=rows.device), labels] = value
    return rows


def _exp_rest(
    logits: torch.Tensor, labels: torch.Tensor, dtype: torch.dtype
) -> tuple[kernel.RowStatistics, torch.Tensor]:
    """:func:`emphasis.kernel.row_statistics` in torch's in-place operations, and the
    buffer ``exp(z_j - rest_max)`` (0 at the target) it sums.

    The same values as the core's, operation for operation (a masked copy, its max,
    the max made 0 where it is -inf, ``exp(z - max)``, the row sum); only the passes
    over (M, C) are fewer: one copy that the op owns and works on in place, instead of
    a one-hot mask, a ``where`` and two temporaries.
    """
    z_label = torch.gather(logits, 1, labels[:, None].to(torch.int64))[:, 0].to(dtype)
    rest = logits.to(dtype, copy=True)
    _put_at_labels(rest, labels, -math.inf)
    rest_max = torch.amax(rest, dim=1)
    shift = torch.where(rest_max > -math.inf, rest_max, torch.zeros_like(rest_max))
    rest.sub_(shift[:, None]).exp_()
    return kernel.RowStatistics(z_label, rest_max, torch.sum(rest, dim=1)), rest


def _saves_exp(logits: torch.Tensor, fused: bool) -> bool:
    """Whether the op saves ``exp_rest`` (torch ops, 32- or 64-bit) rather than the logits."""
    return not fused and compute_dtype(logits.dtype) == logits.dtype


def _grad_from_exp(
    exp_rest: torch.Tensor, labels: torch.Tensor, coef: torch.Tensor, rest_sum: torch.Tensor
) -> torch.Tensor:
    """:func:`emphasis.kernel.grad_rows` from the saved ``exp(z_j - rest_max)``: the same
    products ``exp(...) * (coef / rest_sum)`` and the target entry ``-coef``, in one pass.
    The saved buffer is left intact (a second backward under ``retain_graph=True``)."""
    scale = coef / torch.where(rest_sum > 0, rest_sum, torch.ones_like(rest_sum))
    return _put_at_labels(exp_rest * scale[:, None], labels, -coef)


class _EmphasisRows(torch.autograd.Function):
    """Per-example losses of rows of logits; the VJP is ``kernel.grad_rows``.

    Outputs: ``loss`` (M,) (differentiable), then the non-differentiable ``coef``,
    ``rest_max``, ``rest_sum``, ``log_p``, ``log_weight`` (M,) and ``log_mean_weight`` () that the
    backward and the batch statistics use, and last the buffer that backward reads (the
    saved ``exp(z_j - rest_max)``, or an empty placeholder when the logits are saved),
    differentiable only for the reason given in ``setup_context``. All in the compute dtype.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        logits: torch.Tensor,
        labels: torch.Tensor,
        valid: torch.Tensor,
        example_weight: torch.Tensor | None,
        key: Hashable,
        hyper: tuple[Any, ...],
        all_reduce: kernel.AllReduce | None,
        fused: bool,
    ) -> tuple[torch.Tensor, ...]:
        dtype = compute_dtype(logits.dtype)
        device = logits.device
        scheme = scheme_of(key, tuple(_hyper(value, dtype, device) for value in hyper))
        exp_rest = None
        if fused:  # one pass of the Triton kernel instead of the torch ops' passes over (M, C)
            stats = kernel.RowStatistics(*_triton().row_statistics_op(logits, labels))
        else:
            stats, exp_rest = _exp_rest(logits, labels, dtype)
        out = kernel.forward(
            logits,
            labels,
            scheme,
            TorchNamespace(device),
            valid=valid,
            example_weight=example_weight,
            all_reduce=all_reduce,
            stats=stats,
        )
        log_mean = out.log_mean_weight
        if not isinstance(log_mean, torch.Tensor):  # the scheme does not normalise
            log_mean = torch.zeros((), dtype=dtype, device=device)
        # What the backward reads besides the (M,) vectors (see the module docstring); when
        # it reads the logits (an input, saved in setup_context), an empty placeholder.
        saved = exp_rest if exp_rest is not None and _saves_exp(logits, fused) else None
        if saved is None:
            saved = torch.empty(0, dtype=dtype, device=device)
        return (
            out.loss,
            out.coef,
            out.rest_max,
            out.rest_sum,
            out.log_p,
            out.log_weight,
            log_mean,
            saved,
        )

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        logits, labels = inputs[0], inputs[1]
        _, coef, rest_max, rest_sum, *rest, saved = output
        ctx.fused = inputs[-1]
        ctx.saved_exp = _saves_exp(logits, ctx.fused)
        ctx.dtype = logits.dtype
        ctx.save_for_backward(saved if ctx.saved_exp else logits, labels, coef, rest_max, rest_sum)
        # The saved exp buffer stays a differentiable output (its incoming gradient is
        # ignored: it is never handed to the user), so that under create_graph=True the
        # gradient below is attached, through it, to the logits' graph and a second
        # backward reaches _NoDoubleBackward's error, as it did when the logits were saved.
        ctx.mark_non_differentiable(coef, rest_max, rest_sum, *rest)
        if not ctx.saved_exp:
            ctx.mark_non_differentiable(saved)
        ctx.set_materialize_grads(False)  # no (M, C) zeros for the buffer's unused gradient

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor | None, *_unused: Any) -> tuple[Any, ...]:
        saved, labels, coef, rest_max, rest_sum = ctx.saved_tensors
        if grad_loss is None:  # only the buffer was differentiated: nothing reaches the logits
            grad_loss = torch.zeros_like(coef)
        with torch.no_grad():
            if ctx.saved_exp:
                grad = _grad_from_exp(saved, labels, coef * grad_loss, rest_sum)
            elif ctx.fused:
                logits = saved
                grad = _triton().grad_rows_op(logits, labels, coef * grad_loss, rest_max, rest_sum)
            else:
                logits = saved
                grad = kernel.grad_rows(
                    logits.to(compute_dtype(logits.dtype)),
                    labels,
                    coef * grad_loss,
                    rest_max,
                    rest_sum,
                    TorchNamespace(logits.device),
                ).to(ctx.dtype)
        if torch.is_grad_enabled():
            # create_graph=True (or torch.func.grad): the result must not be differentiated
            # again, since this gradient is not a function torch can differentiate (for GR
            # it is no loss's gradient at all). Make any further differentiation raise.
            grad = _NoDoubleBackward.apply(grad, saved)
        return grad, None, None, None, None, None, None, None


class _NoDoubleBackward(torch.autograd.Function):
    """Identity on the gradient whose own backward raises a clear error.

    ``@once_differentiable`` is not enough here: it only guards when the incoming
    gradient requires grad, so ``torch.autograd.grad(loss, z, create_graph=True)``
    followed by a second backward would silently miss this op's second derivative,
    and ``torch.func.grad(torch.func.grad(f))`` would return zeros.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(grad: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return grad.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, _grad: torch.Tensor) -> tuple[Any, ...]:
        raise RuntimeError(
            "emphasis_torch losses support one backward pass only: their logit gradient is the "
            "core's closed form (for GR not the gradient of any loss value), and its own "
            "derivative is not implemented. Double backward, create_graph=True followed by a "
            "second backward, torch.func.hessian or nested torch.func.grad are not supported."
        )


class RowsOut(NamedTuple):
    loss: torch.Tensor  #: (M,) per-example loss (0 where ignored), compute dtype
    log_p: torch.Tensor  #: (M,)
    rest_sum: torch.Tensor  #: (M,) sum of exp(non-target logits - their max); 0 when none
    log_weight: torch.Tensor  #: (M,) log of the raw weight
    log_mean_weight: torch.Tensor  #: () GR's normaliser (0 when not normalising)


def emphasis_rows(
    logits: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    example_weight: torch.Tensor | None,
    key: Hashable,
    hyper: tuple[Any, ...],
    all_reduce: kernel.AllReduce | None = None,
    fused: bool = False,
) -> RowsOut:
    """Apply the op to rows: logits (M, C) in any float dtype, labels (M,) in [0, C)."""
    loss, _coef, _rest_max, rest_sum, log_p, log_weight, log_mean, _saved = _EmphasisRows.apply(
        logits, labels, valid, example_weight, key, hyper, all_reduce, fused
    )
    return RowsOut(loss, log_p, rest_sum, log_weight, log_mean)
