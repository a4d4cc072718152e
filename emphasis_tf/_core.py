"""Per-example losses with the core's custom gradient, on any Keras 3 backend.

Everything here is written with ``keras.ops``, so the same code runs on the
TensorFlow, JAX and torch backends (and, forward only, on the NumPy backend); what
differs between them is in :mod:`emphasis_tf._backends`.

The pipeline of one call:

1. ``y_pred`` -> logits in the compute dtype (float32, or float64 for float64
   input). Probabilities (``from_logits=False``) become ``log(p)``, or the logits
   Keras cached on a softmax output (``_keras_logits``), as Keras's own
   cross-entropies do.
2. ``y_true`` -> integer class indices: sparse labels (shape of ``y_pred`` without
   the class axis, or with a class axis of size 1) or one-hot labels (the shape of
   ``y_pred``).
3. Rows: the class axis moved last and flattened to (M, C).
4. The custom-gradient op maps logits (M, C) to per-example losses (M,); its VJP
   is :func:`emphasis.kernel.grad_rows` scaled by the upstream gradient.
5. Bad values (the core's checks, :mod:`emphasis._value_checks`): raised as
   ``ValueError`` when the tensors are concrete (eager), ``tf.debugging.Assert``
   inside a TensorFlow graph, and a NaN loss and gradient for the offending example
   everywhere (XLA drops asserts; ``jax.jit`` has none).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import keras
import numpy as np
from keras import ops

from emphasis import kernel
from emphasis._layout import class_axes, label_layout, sample_weight_shape
from emphasis._validation import is_concrete_number
from emphasis._value_checks import (
    Names,
    Problem,
    bad_logit_rows,
    beyond_int32,
    check_labels_fit_int32,
    hyperparameter_problems,
    label_problem,
    labels_out_of_range,
    logits_problem,
    not_one_hot,
    one_hot_problem,
    raise_first,
    weight_problem,
)
from emphasis.schemes import Scheme
from emphasis_tf import _backends
from emphasis_tf._namespace import XP

#: Keras's names of the arguments, for the core's messages.
NAMES = Names(
    logits="y_pred",
    labels="y_true",
    ignore_index="ignore_class",
    labels_must="must hold integer class indices",
    leave_out="ignore it with ignore_class",
)


def backend() -> _backends.Backend:
    """What differs on the active Keras backend (:mod:`emphasis_tf._backends`)."""
    return _backends.backend(keras.backend.backend())


try:  # Keras >= 3.6; older versions keep the mask in the `_keras_mask` attribute.
    from keras.src.backend import get_keras_mask, set_keras_mask
except ImportError:  # pragma: no cover - depends on the Keras version

    def get_keras_mask(x: Any) -> Any:
        return getattr(x, "_keras_mask", None)

    def set_keras_mask(x: Any, mask: Any) -> None:
        try:
            x._keras_mask = mask
        except AttributeError:
            pass


def compute_dtype(dtype: Any) -> str:
    """The core's policy (:func:`emphasis.kernel.compute_dtype_name`); refuses non-floats."""
    name = keras.backend.standardize_dtype(dtype)
    if keras.backend.is_float_dtype(name):
        return kernel.compute_dtype_name(name)
    raise TypeError(f"y_pred must be a floating-point tensor, got dtype {name}")


class Checks:
    """What to do with bad values, by how the tensors are being computed.

    ``"raise"``: concrete tensors (eager): raise ``ValueError`` naming the argument,
    the example and its value. ``"assert"``: a TensorFlow graph: ``tf.debugging.Assert``
    (NaN poisoning covers XLA and the other backends' compilers). ``"collect"``: the
    compiled eager path: gather one flag; when it is set, the eager path recomputes
    with ``"raise"`` to name the problem.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.flags: list[Any] = []

    def check(self, problem: Problem, in_graph: bool = True) -> None:
        """One of the core's checks; ``in_graph`` False: no assert inside a graph (NaN
        logits and weights show as NaN losses anyway)."""
        if self.mode == "raise":
            failed = bool(ops.convert_to_numpy(ops.any(problem.flags)))
            raise_first([problem], [failed], ops.convert_to_numpy)
        elif self.mode == "collect":
            self.flags.append(ops.any(problem.flags))
        elif in_graph:
            backend().graph_assert(problem.flags, problem.summary)

    def any_flag(self) -> Any:
        return functools.reduce(ops.logical_or, self.flags, ops.convert_to_tensor(False))


def _static_shape(x: Any) -> tuple[int | None, ...]:
    return tuple(None if n is None else int(n) for n in x.shape)


def _class_axis(pred_shape: tuple[int | None, ...], axis: int) -> int:
    """The core's :func:`~emphasis._layout.class_axes`; the class axis must be static."""
    axis = class_axes(axis, pred_shape, "y_pred")
    if pred_shape[axis] is None:
        raise ValueError(
            f"the class axis ({axis}) of y_pred must have a static size, got shape {pred_shape}"
        )
    if pred_shape[axis] == 0:
        raise ValueError(f"y_pred must have at least one class, got shape {pred_shape}")
    return axis


def labels_to_indices(
    y_true: Any, pred_shape: tuple[int | None, ...], axis: int
) -> tuple[Any, Any, str]:
    """``(indices, bad, layout)``: int32 class indices from sparse or one-hot ``y_true``
    (decided by shape, like Keras: :func:`emphasis._layout.label_layout`), the shape of
    ``y_pred`` without the class axis; ``bad`` where a label is not an integer (sparse,
    integral floats accepted) or not one-hot."""
    dtype = keras.backend.standardize_dtype(y_true.dtype)
    if dtype == "bool" or not (
        keras.backend.is_float_dtype(dtype) or keras.backend.is_int_dtype(dtype)
    ):
        raise TypeError(f"y_true must hold integer class indices or one-hot rows, got {dtype}")
    layout = label_layout(_static_shape(y_true), pred_shape, axis, (NAMES.logits, NAMES.labels))
    if layout == "one-hot":
        indices = ops.cast(ops.argmax(y_true, axis=axis), "int32")
        return indices, not_one_hot(y_true, axis, ops), layout
    if layout == "column":
        y_true = ops.squeeze(y_true, axis=axis)
    if keras.backend.is_float_dtype(dtype):  # Keras hands labels over as floats
        bad = y_true != ops.floor(y_true)
    else:
        bad = ops.zeros_like(y_true, dtype="bool")
    # Values int32 cannot hold would change class in the cast: flag them first.
    bad = bad | beyond_int32(y_true)
    return ops.cast(y_true, "int32"), bad, layout


#: How far a row of probabilities may sum from 1 (``from_logits=False``). Softmax outputs
#: in float32 sum to 1 within 4e-7, in float16 within 4e-4, in bfloat16 within 2.5e-3
#: (measured: up to 10,000 classes, logits of scale up to 20).
SUM_TOLERANCE = 1e-2


def probabilities_to_logits(y_pred: Any, dtype: str, checks: Checks) -> Any:
    """Logits whose softmax is ``y_pred``: ``log(p)``; the rows ``(..., C)``.

    softmax(log p) = p, and every gradient row of the kernel sums to zero, so the
    chain rule through ``log`` and a preceding softmax hands the model's logits
    exactly the core's gradient. Entries below the smallest normal float are clamped
    (the gradient of a clamped entry is zero, never 0 * inf = NaN). Rows with an entry
    outside [0, 1] are refused here; ``(logits, bad_sum, sums)``: the caller refuses the
    counted rows whose sum is farther than ``SUM_TOLERANCE`` from 1 (their softmax
    would renormalise them into other probabilities).
    """
    probs = ops.cast(y_pred, dtype)
    out_of_range = ops.logical_not(ops.logical_and(probs >= 0, probs <= 1))
    rows_bad = ops.any(out_of_range, axis=-1)
    rule = (
        "y_pred must hold probabilities in [0, 1] when from_logits=False; pass "
        "from_logits=True if the model outputs logits"
    )
    rows = ops.reshape(probs, (-1, probs.shape[-1]))

    def message(i: int, row: Any) -> str:
        return f"{rule}, got {np.ravel(row)[:8]} (example {i})"

    checks.check(Problem(ops.reshape(rows_bad, (-1,)), rows, message, rule))
    sums = ops.sum(probs, axis=-1)
    bad_sum = ops.logical_not(ops.abs(sums - 1) <= SUM_TOLERANCE) & ops.logical_not(rows_bad)
    return ops.log(ops.maximum(probs, float(np.finfo(dtype).tiny))), bad_sum, sums


#: The message of a probability row whose sum is not 1.
SUM_RULE = (
    f"y_pred must hold probability rows that sum to 1 (within {SUM_TOLERANCE:g}) when "
    "from_logits=False; pass from_logits=True if the model outputs logits, or normalise "
    "the rows"
)


def _sum_message(i: int, total: Any) -> str:
    return f"{SUM_RULE}; example {i} sums to {float(total):.6g}"


def _custom_gradient_op(scheme: Scheme, all_reduce: Any) -> Any:
    """logits (M, C), labels (M,), valid (M,), example_weight (M,) -> losses (M,)."""

    def forward(logits: Any, labels: Any, valid: Any, example_weight: Any) -> Any:
        weights = {"valid": valid, "example_weight": example_weight, "all_reduce": all_reduce}
        return kernel.forward(logits, labels, scheme, XP, **weights)

    if not backend().autodiff:  # NumPy: the loss value only
        return lambda *args: forward(*args).loss

    @ops.custom_gradient
    def per_example_loss(logits: Any, labels: Any, valid: Any, example_weight: Any) -> Any:
        out = forward(logits, labels, valid, example_weight)

        # Portable signature: TF and JAX pass the upstream gradient positionally, the
        # torch backend passes the saved inputs positionally and `upstream=` by keyword.
        def grad(*args: Any, upstream: Any = None) -> Any:
            if upstream is None:
                upstream = args[0]
            coef = out.coef * ops.cast(upstream, out.coef.dtype)
            rows = kernel.grad_rows(logits, labels, coef, out.rest_max, out.rest_sum, XP)
            return rows, None, None, None

        return out.loss, grad

    return per_example_loss


def _sample_weight_like(sample_weight: Any, label_shape: Any, rank: int, dtype: str) -> Any:
    """Broadcast Keras-style sample weights ((N,), (N, 1), the loss shape) to the loss
    (:func:`emphasis._layout.sample_weight_shape`)."""
    weight = ops.cast(ops.convert_to_tensor(sample_weight), dtype)
    static_labels = tuple(n if isinstance(n, int) else None for n in label_shape)
    shape = sample_weight_shape(_static_shape(weight), static_labels)
    if len(weight.shape) == rank + 1:
        weight = ops.squeeze(weight, axis=-1)
    while 0 < len(weight.shape) < len(shape):
        weight = ops.expand_dims(weight, -1)
    return ops.broadcast_to(weight, label_shape)


class Options(NamedTuple):
    """How a loss reads its inputs. Hashable (one compiled function per value) once
    :func:`split_options` has taken the tensor hyperparameters out of the scheme."""

    scheme: Any  #: a Scheme, or ``(static key, float hyperparameters)`` when split
    from_logits: bool
    axis: int
    ignore_class: int | None
    global_normalize: bool = True


class PerExample(NamedTuple):
    losses: Any  #: the shape of y_pred without the class axis, compute dtype
    valid: Any  #: bool mask of the examples that count (not ignored, not masked)
    sample_weight: Any  #: sample weights broadcast to ``losses`` (None when not given)


#: Prefix of the tensor hyperparameters among a compiled call's input tensors.
HYPER = "hyper_"


def hyperparameter_tensor(name: str, value: Any) -> Any:
    """A tensor hyperparameter (a ``keras.Variable`` too) as a tensor of its current
    value: refused by name unless it is a 0-d float tensor."""
    tensor = ops.convert_to_tensor(value)
    if len(tensor.shape) != 0:
        raise ValueError(f"{name} must be a number or a 0-d tensor, got shape {tensor.shape}")
    if not keras.backend.is_float_dtype(tensor.dtype):
        dtype = keras.backend.standardize_dtype(tensor.dtype)
        raise TypeError(f"{name} must be a number or a floating-point tensor, got dtype {dtype}")
    return tensor


def split_options(options: Options) -> tuple[Options, dict[str, Any]]:
    """``(options, tensors)``: the scheme split as :meth:`emphasis.Scheme.split` does;
    hyperparameters that are numbers stay in the (hashable) options, tensors and
    ``keras.Variable`` s become inputs (checked: :func:`hyperparameter_tensor`)."""
    key, hyper = options.scheme.split()
    fixed = tuple((k, v) for k, v in hyper.items() if is_concrete_number(v))
    tensors = {
        HYPER + k: hyperparameter_tensor(k, v)
        for k, v in hyper.items()
        if not is_concrete_number(v)
    }
    return options._replace(scheme=(key, fixed)), tensors


def per_example_losses(
    y_true: Any,
    y_pred: Any,
    options: Options,
    sample_weight: Any = None,
    mask: Any = None,
    dtype: Any = None,
) -> PerExample:
    """Per-example losses with the core's gradient; see the module docstring.

    ``sample_weight`` (and a Keras ``mask``) weight GR's normalising mean, as class
    weights do in the core; they are *not* multiplied into the returned losses.
    ``dtype``: the dtype ``y_pred`` is converted to first (None: kept).
    """
    if not options.from_logits and hasattr(y_pred, "_keras_logits"):
        # The output of keras.activations.softmax: use its logits, as Keras does.
        y_pred, options = y_pred._keras_logits, options._replace(from_logits=True)
    check_labels_fit_int32(y_true, NAMES)  # before a conversion that may cast to int32
    options, hyper = split_options(options)
    tensors = {"y_true": y_true, "y_pred": ops.convert_to_tensor(y_pred, dtype=dtype)}
    tensors.update(sample_weight=sample_weight, mask=mask)
    tensors = {k: ops.convert_to_tensor(v) for k, v in tensors.items() if v is not None}
    tensors.update(hyper)
    # Numbers (in range: the scheme checked them) the compute dtype cannot hold.
    hyperparameter_problems(dict(options.scheme[1]), compute_dtype(tensors["y_pred"].dtype), ops)
    if backend().compiles_eager():
        _check_shapes(options.axis, **tensors)
        rank = len(tensors["y_pred"].shape)
        signature = tuple((k, _spec(v, rank, options.axis)) for k, v in tensors.items())
        try:
            result, bad = _compiled_eager(options, signature)(tensors)
        except backend().errors:
            bad = True
        if not bool(bad):
            return result
        # Something is wrong: recompute eagerly, which raises naming the problem.
    mode = "raise" if backend().is_concrete(tensors["y_pred"]) else "assert"
    return _per_example(options, Checks(mode), **tensors)


def _check_shapes(axis: int, y_true: Any, y_pred: Any, sample_weight: Any = None, **_: Any) -> None:
    """The static shape checks of a trace, made on the full shapes before a compiled
    call (whose signature leaves the batch sizes open)."""
    pred_shape = _static_shape(y_pred)
    axis = _class_axis(pred_shape, axis)
    label_layout(_static_shape(y_true), pred_shape, axis, (NAMES.logits, NAMES.labels))
    if sample_weight is not None:
        label_shape = pred_shape[:axis] + pred_shape[axis + 1 :]
        sample_weight_shape(_static_shape(sample_weight), label_shape)


def _spec(x: Any, pred_rank: int, axis: int) -> tuple[tuple[int | None, ...], Any]:
    """``(shape, dtype)`` of an input: dynamic sizes except the class axis and a trailing
    size 1. One trace per (ranks, dtypes, number of classes) and no retracing when the
    batch size changes."""
    shape: list[int | None] = [None] * len(x.shape)
    if len(x.shape) == pred_rank and -pred_rank <= axis < pred_rank:
        shape[axis] = x.shape[axis]
    if shape and x.shape[-1] == 1:
        shape[-1] = 1
    return tuple(shape), x.dtype


def _collecting(options: Options, tensors: dict[str, Any]) -> tuple[PerExample, Any]:
    checks = Checks("collect")
    return _per_example(options, checks, **tensors), checks.any_flag()


@functools.lru_cache(maxsize=128)
def _compiled_eager(options: Options, signature: tuple[tuple[str, Any], ...]) -> Any:
    # A partial, not a closure: TensorFlow counts traces per code object and would
    # warn about "retracing" when several signatures each trace once.
    return backend().function(functools.partial(_collecting, options), dict(signature))


def _per_example(
    options: Options,
    checks: Checks,
    y_true: Any,
    y_pred: Any,
    sample_weight: Any = None,
    mask: Any = None,
    **hyper: Any,
) -> PerExample:
    """``options`` split (:func:`split_options`), ``hyper`` its tensor hyperparameters."""
    (key, fixed), from_logits, axis, ignore_class, global_normalize = options
    dtype = compute_dtype(y_pred.dtype)
    pred_shape = _static_shape(y_pred)
    axis = _class_axis(pred_shape, axis)
    num_classes = int(pred_shape[axis] or 0)  # static: _class_axis checked it
    rank = len(pred_shape) - 1

    tensors = {prefixed.removeprefix(HYPER): value for prefixed, value in hyper.items()}
    hyper_bad = ops.zeros((1,), dtype="bool")
    for problem in hyperparameter_problems(tensors, dtype, ops):
        checks.check(problem)
        hyper_bad = hyper_bad | problem.flags
    values = {k: ops.stop_gradient(ops.cast(v, dtype)) for k, v in tensors.items()}
    scheme = Scheme.rebuild(key, {**dict(fixed), **values})

    # Rows: the class axis last, then (M, C).
    logits = ops.cast(y_pred, dtype)
    if axis != rank:
        logits = ops.moveaxis(logits, axis, -1)
    indices, not_integer, layout = labels_to_indices(y_true, pred_shape, axis)
    label_shape = ops.shape(indices)
    indices = ops.reshape(indices, (-1,))
    valid = (
        ops.ones_like(indices, dtype="bool") if ignore_class is None else indices != ignore_class
    )
    bad_sum = ops.zeros_like(valid)
    if not from_logits:
        logits, bad_sum, sums = probabilities_to_logits(logits, dtype, checks)
        counted = valid if mask is None else valid & ops.reshape(ops.cast(mask, "bool"), (-1,))
        bad_sum = ops.reshape(bad_sum, (-1,)) & counted
        checks.check(Problem(bad_sum, ops.reshape(sums, (-1,)), _sum_message, SUM_RULE))
    logits2d = ops.reshape(logits, (-1, num_classes))

    bad_label = labels_out_of_range(indices, valid, num_classes) | ops.reshape(not_integer, (-1,))
    if layout == "one-hot":
        shown = ops.reshape(ops.moveaxis(y_true, axis, -1), (-1, num_classes))
        checks.check(one_hot_problem(bad_label, shown, NAMES))
    else:
        shown = ops.reshape(y_true, (-1,))
        checks.check(label_problem(bad_label, shown, num_classes, ignore_class, NAMES))
    # Labels or probability rows refused: left out, then NaN loss and gradient (below).
    bad_label = bad_label | bad_sum
    valid = valid & ~bad_label
    if mask is not None:
        valid = valid & ops.reshape(ops.cast(mask, "bool"), (-1,))
    safe = ops.where(valid, indices, ops.zeros_like(indices))

    weight = None
    example_weight = ops.ones_like(logits2d[:, 0])
    if sample_weight is not None:
        weight = _sample_weight_like(sample_weight, label_shape, rank, dtype)
        example_weight = ops.reshape(weight, (-1,))
        checks.check(weight_problem(example_weight, "sample_weight"), in_graph=False)
    example_weight = ops.stop_gradient(example_weight)

    all_reduce = backend().all_reduce() if global_normalize and scheme.normalize else None
    losses = _custom_gradient_op(scheme, all_reduce)(logits2d, safe, valid, example_weight)

    if checks.mode != "assert":  # NaN or +inf logits, or a row of only -inf
        z_label = ops.take_along_axis(logits2d, safe[:, None], axis=1)[:, 0]
        bad_logits = bad_logit_rows(z_label, losses, None, valid)
        checks.check(logits_problem(bad_logits, logits2d, NAMES), in_graph=False)

    # Out-of-range or non-integer labels, probability rows that do not sum to 1: NaN
    # loss and NaN gradient for that example.
    # A tensor hyperparameter out of range: NaN everywhere (XLA drops the asserts).
    poison = ops.where(
        bad_label | hyper_bad, ops.full_like(losses, math.nan), ops.ones_like(losses)
    )
    losses = ops.reshape(losses * poison, label_shape)
    return PerExample(losses, ops.reshape(valid | bad_label, label_shape), weight)
