"""Functional losses in the style of ``torch.nn.functional.cross_entropy``.

The logit gradient is the core's (:mod:`emphasis.kernel`), applied by a custom
autograd op on the device of the logits. With ``validate=True`` the values are
checked (NaN or +inf logits, labels out of range, rows that are not one-hot, bad
class weights, tensor hyperparameters out of range; the core's predicates and
messages, :mod:`emphasis._value_checks`): in eager mode one flag is read back (one
host synchronisation per call) and a ValueError names the argument; under
``torch.compile`` they become in-graph ``torch._assert_async`` checks (no graph
break, no host synchronisation); under ``torch.func.vmap`` they are skipped.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import warnings
from typing import Any, NamedTuple

import torch

import emphasis
from emphasis import _validation as validation
from emphasis import _value_checks as values
from emphasis import kernel as core
from emphasis._docs import document
from emphasis._layout import Rows, check_shapes, to_rows
from emphasis_torch._autograd import compute_dtype, emphasis_rows
from emphasis_torch._namespace import TorchNamespace

__all__ = ["BatchStats", "cce_loss", "gce_loss", "gr_loss", "mae_loss"]

Hyperparameter = float | torch.Tensor
_ARGS = ("input", "target")
_NAMES = values.Names(logits="input", labels="target", labels_must="must hold class indices")
#: The constructor's fields of each scheme class (a constant: torch.compile traces a lookup).
SCHEME_FIELDS: dict[type[emphasis.Scheme], tuple[str, ...]] = {
    cls: tuple(field.name for field in dataclasses.fields(cls))
    for cls in (emphasis.GR, emphasis.CCE, emphasis.MAE, emphasis.GCE)
}

#: Docstring blocks of the functions; the Modules reuse them (:func:`emphasis._docs.document`).
DOCS = {
    "scalar": "a float or a 0-d tensor",
    "INPUT_ARGS": """input: logits, (C,), (N, C) or (N, C, d1, ..., dk); float16, bfloat16,
    float32 or float64 (16-bit inputs compute in float32).
target: class indices, (), (N,) or (N, d1, ..., dk), integer; or one-hot rows shaped
    like ``input`` (soft targets raise ValueError). One-hot rows of a floating dtype
    are what ``F.cross_entropy`` reads as class probabilities, and follow it exactly:
    ``"mean"`` divides by the number of examples (not the class weight sum) and
    ``ignore_index >= 0`` raises ValueError; integer and bool one-hot rows count as
    their class indices.""",
    "OPTIONS": """weight: optional (C,) floating-point class weights: each example's loss and
    gradient are multiplied by the weight of its label, and ``"mean"`` divides by their
    sum (as ``F.cross_entropy``; by the count for float one-hot targets, as there);
    they also weight GR's normalising mean.
ignore_index: label whose examples get zero loss and gradient and count neither in
    the mean nor in GR's normaliser.
reduction: ``"mean"``, ``"sum"`` or ``"none"``.
validate: run the value checks (:mod:`emphasis_torch.functional`); False skips them.""",
    "GLOBAL_ARGS": """global_normalize: under data parallelism, normalise over the global batch
    (the weight sum and count are all-reduced over ``process_group``), so that R ranks
    x B/R examples give the gradient of 1 process x B; needs ``torch.distributed``.
process_group: the ``torch.distributed`` group (the default group when None).
global_batch: deprecated alias of ``global_normalize`` (a DeprecationWarning).""",
    "STATS_ARG": "return_stats: also return the :class:`BatchStats` of the batch.",
    "KERNEL_ARG": """kernel: ``"auto"`` (the fused Triton kernels for 16- and 32-bit CUDA tensors
    when Triton is installed, torch ops otherwise), ``"triton"`` (insist: a ValueError
    says why when it cannot run; CPU tensors need ``TRITON_INTERPRET=1``) or
    ``"torch"``. Both compute the same mathematics (:mod:`emphasis.kernel`).""",
    "RETURNS": """Returns:
    The loss: a scalar, or shaped like the class indices for ``reduction="none"``, in
    the dtype of ``input`` (float32 under autocast, as ``F.cross_entropy``). With
    ``return_stats=True``, ``(loss, stats)``.""",
    "SHAPE": """Shape:
    - input: (C), (N, C) or (N, C, d1, ..., dk) logits
    - target: (), (N) or (N, d1, ..., dk) class indices, or one-hot like input
    - output: scalar; for ``reduction="none"``, the shape of the class indices.""",
}


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


def run_checks(problems: list[values.Problem]) -> None:
    """The core's checks: in-graph asserts under torch.compile; eagerly one host read,
    then a ValueError naming the first problem. Flags on meta tensors hold no value to
    read: those checks are skipped (as under vmap)."""
    if torch.compiler.is_compiling():
        for problem in problems:
            torch._assert_async(~torch.any(problem.flags), problem.summary)
        return
    problems = [problem for problem in problems if not problem.flags.is_meta]
    if problems:
        failed = torch.stack([torch.any(p.flags) for p in problems]).tolist()  # the one sync
        values.raise_first(problems, failed, torch.Tensor.tolist)  # bfloat16 too


def _is_vmapped(tensor: torch.Tensor) -> bool:
    """True inside torch.func.vmap, where value checks cannot read a flag back."""
    functorch = getattr(torch._C, "_functorch", None)  # every supported torch has it
    if functorch is None or torch.compiler.is_compiling():  # pragma: no cover
        return False
    while functorch.is_functorch_wrapped_tensor(tensor):
        if functorch.is_batchedtensor(tensor):
            return True
        tensor = functorch.get_unwrapped(tensor)
    return False


def check_tensor(name: str, value: Any, floating: str = "") -> None:
    """TypeError unless ``value`` is a tensor (with a floating dtype, when ``floating``
    says what it holds)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if floating and not value.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point {floating}, got dtype {value.dtype}")


def hyperparameter_problems(
    scheme: emphasis.Scheme, hyper: dict[str, Any], dtype: torch.dtype
) -> list[values.Problem]:
    """The core's checks of the hyperparameters in ``dtype``: tensors must be 0-d floats
    (refused now), numbers the dtype cannot hold are refused now; the rest are problems."""
    for name, value in hyper.items():
        if isinstance(value, torch.Tensor):
            if value.ndim != 0:
                raise ValueError(
                    f"{name} must be a number or a 0-d tensor, got shape {tuple(value.shape)}"
                )
            check_tensor(name, value, "tensor")
    dtype_name = str(dtype).removeprefix("torch.")
    problems = values.hyperparameter_problems(hyper, dtype_name, torch)
    if scheme.transform == "exp" and not scheme.normalize:
        problems += values.weight_overflow_problem(hyper["beta"], hyper["lam"], dtype_name, torch)
    return problems


def renamed(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the deprecated ``global_batch``, when given, as ``global_normalize``."""
    old = options.pop("global_batch", None)
    if old is not None:
        warnings.warn(
            "global_batch is deprecated; use global_normalize (the same option)",
            DeprecationWarning,
            stacklevel=4,
        )
        options["global_normalize"] = old or options["global_normalize"]
    return options


# -- the shared implementation -------------------------------------------------------------


def _emphasis_loss(
    scheme_class: type[emphasis.Scheme], /, input: Any, target: Any, **options: Any
) -> Any:
    """The public functions' body: the scheme from its fields in ``options``, then the loss."""
    options = renamed(options)
    scheme = scheme_class(**{name: options.pop(name) for name in SCHEME_FIELDS[scheme_class]})
    return _loss(input, target, scheme, **options)


def _loss(
    input: Any,
    target: Any,
    scheme: emphasis.Scheme,
    *,
    weight: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    global_normalize: bool = False,
    process_group: Any = None,
    validate: bool,
    return_stats: bool,
    kernel: str = "auto",
) -> Any:
    """The loss of ``scheme`` (the options as in :func:`gr_loss`)."""
    check_tensor("input", input, "tensor of logits")
    check_tensor("target", target)
    reduction = validation.check_reduction(reduction)
    validation.check_ignore_index(ignore_index)
    vmapped = _is_vmapped(input)
    checking = validate and not vmapped
    key, hyper = scheme.split()

    # Float targets shaped like input are what F.cross_entropy reads as class probabilities:
    # for one-hot rows its loss is the same, but "mean" divides by the number of examples
    # (not the weight sum) and ignore_index >= 0 is refused. Follow it exactly.
    probabilities = target.dtype.is_floating_point and target.shape == input.shape
    if probabilities and ignore_index >= 0:
        raise ValueError(
            "ignore_index is not supported with a floating-point (one-hot) target, as in "
            "F.cross_entropy, which reads float targets as class probabilities; got "
            f"ignore_index={ignore_index} (give integer class indices to ignore examples)"
        )
    dtype = compute_dtype(input.dtype)
    problems = hyperparameter_problems(scheme, hyper, dtype)  # refuses bad numbers always
    rows = _rows(input, target, problems if checking else None)
    logits, num_classes = rows.logits, int(rows.logits.shape[-1])
    xp = TorchNamespace(input.device)
    labels, valid = core.safe_labels(rows.labels, ignore_index, xp)
    bad_labels = values.labels_out_of_range(labels, valid, num_classes)
    # Out-of-range labels are reported by the checks; zeros keep indexing in bounds before
    # they run (and when they are off).
    labels = torch.where(bad_labels, torch.zeros_like(labels), labels)

    example_weight = None
    if weight is not None:
        check_tensor("weight", weight, "tensor")
        if weight.shape != (num_classes,):
            raise ValueError(
                f"weight must have shape ({num_classes},) (one per class), got {tuple(weight.shape)}"
            )
        class_weight = weight.detach().to(device=input.device, dtype=dtype)
        example_weight = torch.where(
            valid, class_weight[labels], torch.zeros_like(labels, dtype=dtype)
        )
        if checking:
            problems.append(values.weight_problem(class_weight, entry="class"))

    all_reduce = None
    if global_normalize:
        validation.check_global_normalisation(
            "global_normalize=True", global_normalize, scheme.normalize
        )
        all_reduce = _all_reduce(process_group)

    fused = _fused(kernel, logits, vmapped)
    out = emphasis_rows(
        logits, labels, valid, example_weight, key, tuple(hyper.values()), all_reduce, fused
    )

    if checking:
        # This kernel differentiates ignored rows too: their bad logits count (ignored_too).
        z_label = torch.gather(logits.detach(), 1, labels[:, None])[:, 0]
        bad_rows = values.bad_logit_rows(z_label, out.log_p, out.rest_sum, valid, ignored_too=True)
        problems += [
            values.label_problem(bad_labels, rows.labels, num_classes, ignore_index, _NAMES),
            values.logits_problem(bad_rows, logits, _NAMES),
        ]
        run_checks(problems)

    if example_weight is None:
        losses, example_weight = out.loss, valid.to(dtype)
    else:
        losses = out.loss * example_weight
    # "mean" divides by the weight sum, or by the count for float (probability) targets.
    count = valid.to(dtype) if probabilities else example_weight
    value = core.reduce_losses(losses, count, reduction, xp)
    if reduction == "none":
        value = torch.reshape(value, rows.label_shape)
    value = value.to(_output_dtype(input))
    if not return_stats:
        return value
    return value, _batch_stats(out, valid, rows.label_shape, key, hyper)


def _rows(input: torch.Tensor, target: torch.Tensor, problems: list[values.Problem] | None) -> Rows:
    """Rows of logits and labels; one-hot targets (the shape of ``input``) become indices."""
    xp = TorchNamespace(input.device)
    if input.ndim >= 1 and target.shape == input.shape:
        class_dim = 0 if input.ndim == 1 else 1
        # The shapes (and at least one class) before reading rows along the class dimension.
        shape = tuple(int(n) for n in input.shape)
        check_shapes(shape, shape[:class_dim] + shape[class_dim + 1 :], class_dim, _ARGS)
        if target.dtype == torch.bool:
            target = target.to(torch.uint8)  # a bool one-hot row: exactly the same 0/1 values
        if problems is not None:
            bad = values.not_one_hot(target, class_dim, xp).reshape(-1)
            shown = torch.movedim(target, class_dim, -1).reshape(-1, target.shape[class_dim])
            problems.append(values.one_hot_problem(bad, shown, _NAMES))
        labels = torch.argmax(target, dim=class_dim)
    elif target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise TypeError(
            "target must hold integer class indices (shape of input without the class "
            "dimension) or one-hot rows shaped like input; got dtype "
            f"{target.dtype} and shape {tuple(target.shape)} for input of shape "
            f"{tuple(input.shape)}"
        )
    else:
        labels = target.to(torch.int64)  # uint8 masks too; a cast that changes no value
    return to_rows(input, labels, 1, xp, _ARGS)


KERNELS = ("auto", "triton", "torch")


def check_kernel(kernel: Any) -> str:
    """``kernel`` when it is one of :data:`KERNELS`; ValueError naming it otherwise."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(map(repr, KERNELS))}, got {kernel!r}")
    return str(kernel)


#: Looked up once at import: a cached function would make torch.compile warn at every
#: compilation that it traces through the cache.
TRITON_INSTALLED = importlib.util.find_spec("triton") is not None


def _fused(kernel: str, logits: torch.Tensor, vmapped: bool) -> bool:
    """Whether the Triton kernels compute this call (``kernel`` as in :func:`gr_loss`)."""
    if check_kernel(kernel) == "torch":
        return False
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    problem = ""
    if not TRITON_INSTALLED:
        problem = 'Triton is not installed (pip install "triton")'
    elif logits.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        problem = f"it computes 16- and 32-bit floats, got {logits.dtype}"
    elif not (logits.is_cuda or (interpreted and logits.device.type == "cpu")):
        problem = f"{logits.device.type} tensors need CUDA (or TRITON_INTERPRET=1 on CPU)"
    elif vmapped:
        problem = "it has no torch.func.vmap rule"
    if kernel == "triton" and problem:
        raise ValueError(f"kernel='triton' cannot run: {problem}")
    return not problem and (kernel == "triton" or logits.is_cuda)


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


def _all_reduce(process_group: Any) -> core.AllReduce:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "global_normalize=True all-reduces GR's weight sum over the data-parallel job; call "
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
    per_example = {
        k: getattr(stats, k).reshape(label_shape) for k in ("p", "raw_weights", "weights")
    }
    # The core's Scheme.focus keeps a tensor lam a tensor (no host sync).
    focus = emphasis.Scheme.rebuild(key, detached).focus
    return BatchStats(
        **per_example,
        focus=focus,
        spread=stats.spread,
        effective_sample_size=stats.effective_sample_size,
    )


# -- public functions ----------------------------------------------------------------------


@document(**DOCS)
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
    global_normalize: bool = False,
    process_group: Any = None,
    validate: bool = True,
    return_stats: bool = False,
    kernel: str = "auto",
    global_batch: bool | None = None,
) -> Any:
    """Gradient rescaling (GR): the CCE logit gradient of each example rescaled to norm w(p).

    {GR_FORMULA}

    Args:
        {INPUT_ARGS}
        {GR_ARGS}
        {OPTIONS}
        {GLOBAL_ARGS}
        {STATS_ARG}
        {KERNEL_ARG}

    {RETURNS}

    {SHAPE}

    {GR_REFERENCES}

    Example::

        >>> import torch, emphasis_torch
        >>> logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]], requires_grad=True)
        >>> loss = emphasis_torch.gr_loss(logits, torch.tensor([0, 2]), beta=8.0, lam=0.5)
        >>> loss.backward()
        >>> # Row i has L1 norm (w_i / mean w) / N: normalised weights, so the norms sum to 1.
        >>> logits.grad.abs().sum().round(decimals=4)
        tensor(1.)
    """
    return _emphasis_loss(emphasis.GR, **locals())


@document(**DOCS)
def cce_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
    return_stats: bool = False,
    kernel: str = "auto",
) -> Any:
    """Categorical cross entropy ``-log p`` with the core's gradient (w(p) = 2(1 - p)).

    The value and gradient of ``F.cross_entropy`` (without label smoothing); the
    gradient is computed by the core's kernel, as for the other schemes.

    Args:
        {INPUT_ARGS}
        {OPTIONS}
        {STATS_ARG}
        {KERNEL_ARG}

    {RETURNS}

    {SHAPE}

    {CCE_REFERENCES}

    Example::

        >>> import torch, emphasis_torch
        >>> logits = torch.tensor([[0.0, 0.0]])
        >>> emphasis_torch.cce_loss(logits, torch.tensor([1])).round(decimals=4)
        tensor(0.6931)
    """
    return _emphasis_loss(emphasis.CCE, **locals())


@document(**DOCS)
def mae_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    validate: bool = True,
    return_stats: bool = False,
    kernel: str = "auto",
) -> Any:
    """Mean absolute error ``||onehot(y) - softmax(z)||_1 = 2 (1 - p)``; w(p) = 4 p (1 - p).

    Args:
        {INPUT_ARGS}
        {OPTIONS}
        {STATS_ARG}
        {KERNEL_ARG}

    {RETURNS}

    {SHAPE}

    {MAE_REFERENCES}

    Example::

        >>> import torch, emphasis_torch
        >>> emphasis_torch.mae_loss(torch.zeros(1, 4), torch.tensor([0]))
        tensor(1.5000)
    """
    return _emphasis_loss(emphasis.MAE, **locals())


@document(**DOCS)
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
    kernel: str = "auto",
) -> Any:
    """Generalised cross entropy ``(1 - p**q) / q`` (Zhang & Sabuncu); w(p) = 2 p^q (1 - p).

    Args:
        {INPUT_ARGS}
        {Q_ARG}
        {OPTIONS}
        {STATS_ARG}
        {KERNEL_ARG}

    {RETURNS}

    {SHAPE}

    {GCE_REFERENCES}

    Example::

        >>> import torch, emphasis_torch
        >>> emphasis_torch.gce_loss(torch.zeros(1, 4), torch.tensor([0]), q=1.0)
        tensor(0.7500)
    """
    return _emphasis_loss(emphasis.GCE, **locals())
