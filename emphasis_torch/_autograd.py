"""The custom autograd op: logits (M, C) -> per-example losses (M,), with the core's gradient.

Forward and backward call :mod:`emphasis.kernel` through :class:`TorchNamespace`, on
the device of the logits, without NumPy or a host round trip. What is saved for
backward is the logits (the input itself, in its own dtype: no copy), the labels
and three (M,) vectors, ``coef``, ``rest_max`` and ``rest_sum``; ``F.cross_entropy`` saves one
(M, C) tensor too (its log-softmax).
"""

from __future__ import annotations

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


class _EmphasisRows(torch.autograd.Function):
    """Per-example losses of rows of logits; the VJP is ``kernel.grad_rows``.

    Outputs: ``loss`` (M,) (differentiable), then the non-differentiable ``coef``,
    ``rest_max``, ``rest_sum``, ``log_p``, ``log_weight`` (M,) and ``log_mean_weight`` () that the
    backward and the batch statistics use. All in the compute dtype.
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
        stats = None
        if fused:  # one pass of the Triton kernel instead of the torch ops' passes over (M, C)
            stats = kernel.RowStatistics(*_triton().row_statistics_op(logits, labels))
        out = kernel.forward(
            logits if fused else logits.to(dtype),
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
        return (out.loss, out.coef, out.rest_max, out.rest_sum, out.log_p, out.log_weight, log_mean)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        logits, labels = inputs[0], inputs[1]
        _, coef, rest_max, rest_sum, *rest = output
        ctx.fused = inputs[-1]
        ctx.save_for_backward(logits, labels, coef, rest_max, rest_sum)
        ctx.mark_non_differentiable(coef, rest_max, rest_sum, *rest)
        ctx.set_materialize_grads(True)

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, *_unused: Any) -> tuple[Any, ...]:
        logits, labels, coef, rest_max, rest_sum = ctx.saved_tensors
        dtype = compute_dtype(logits.dtype)
        with torch.no_grad():
            if ctx.fused:
                grad = _triton().grad_rows_op(logits, labels, coef * grad_loss, rest_max, rest_sum)
            else:
                grad = kernel.grad_rows(
                    logits.to(dtype),
                    labels,
                    coef * grad_loss,
                    rest_max,
                    rest_sum,
                    TorchNamespace(logits.device),
                ).to(logits.dtype)
        if torch.is_grad_enabled():
            # create_graph=True (or torch.func.grad): the result must not be differentiated
            # again, since this gradient is not a function torch can differentiate (for GR
            # it is no loss's gradient at all). Make any further differentiation raise.
            grad = _NoDoubleBackward.apply(grad, logits)
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
    loss, _coef, _rest_max, rest_sum, log_p, log_weight, log_mean = _EmphasisRows.apply(
        logits, labels, valid, example_weight, key, hyper, all_reduce, fused
    )
    return RowsOut(loss, log_p, rest_sum, log_weight, log_mean)
