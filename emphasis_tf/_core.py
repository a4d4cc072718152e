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
5. Bad values: raised as ``ValueError`` when the tensors are concrete (eager),
   ``tf.debugging.Assert`` inside a TensorFlow graph, and a NaN loss and gradient
   for the offending example everywhere (XLA drops asserts; ``jax.jit`` has none).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import keras
import numpy as np
from keras import ops

from emphasis import kernel
from emphasis.schemes import Scheme
from emphasis_tf import _backends


class _KerasNamespace:
    """``keras.ops`` for the kernel, with a ``logaddexp`` that keeps float64.

    On the JAX and torch backends of Keras 3.15, ``ops.logaddexp`` of two float64
    tensors returns float32, which would silently compute float64 input in single
    precision (found by the cross-backend check). The rest is ``keras.ops``.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(ops, name)

    @staticmethod
    def logaddexp(a: Any, b: Any) -> Any:
        # log(e^a + e^b) = max + log1p(exp(-|a - b|)); equal infinities never reach here
        # (the kernel's first argument is always 0).
        larger = ops.where(a > b, a, b)
        return larger + ops.log1p(ops.exp(-ops.abs(a - b)))


XP = _KerasNamespace()


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

    def check(self, bad: Any, values: Any, describe: Any, *, in_graphs: bool = True) -> None:
        """``describe(index, value)`` -> message; ``values`` is only read on failure.

        ``in_graphs=False``: a check made only when values can be read (NaN logits,
        negative sample weights), since in a graph they show as NaN losses anyway.
        """
        if self.mode == "raise":
            if bool(ops.convert_to_numpy(ops.any(bad))):
                # The first bad entry of values (a row when 2-d), as NumPy.
                index = int(np.argmax(np.asarray(ops.convert_to_numpy(bad))))
                raise ValueError(describe(index, np.asarray(ops.convert_to_numpy(values))[index]))
        elif self.mode == "collect":
            self.flags.append(ops.any(bad))
        elif in_graphs:
            backend().graph_assert(bad, describe(None, None))

    def any_flag(self) -> Any:
        return functools.reduce(ops.logical_or, self.flags, ops.convert_to_tensor(False))


def _static_shape(x: Any) -> tuple[int | None, ...]:
    return tuple(None if n is None else int(n) for n in x.shape)


def _class_axis(pred_shape: tuple[int | None, ...], axis: int) -> int:
    ndim = len(pred_shape)
    if ndim == 0:
        raise ValueError("y_pred must have a class axis, got a scalar")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for y_pred of shape {pred_shape}")
    axis %= ndim
    if pred_shape[axis] is None:
        raise ValueError(
            f"the class axis ({axis}) of y_pred must have a static size, got shape {pred_shape}"
        )
    return axis


def _compatible(a: tuple[int | None, ...], b: tuple[int | None, ...]) -> bool:
    return len(a) == len(b) and all(
        x is None or y is None or x == y for x, y in zip(a, b, strict=True)
    )


class Labels(NamedTuple):
    indices: Any  #: int32 class indices, the shape of y_pred without the class axis
    bad: Any  #: bool, same shape: not an integer (sparse) or not one-hot
    kind: str  #: "sparse" or "one-hot"


def label_layout(
    true_shape: tuple[int | None, ...], pred_shape: tuple[int | None, ...], axis: int
) -> str:
    """ "sparse", "column" (a class axis of size 1) or "one-hot"; ValueError otherwise.

    ``None`` sizes (unknown in a graph) match anything.
    """
    expected = pred_shape[:axis] + pred_shape[axis + 1 :]
    if len(true_shape) == len(pred_shape):
        if true_shape[axis] == 1 and _compatible(
            true_shape[:axis] + true_shape[axis + 1 :], expected
        ):
            return "column"
        if pred_shape[axis] != 1 and _compatible(true_shape, pred_shape):
            return "one-hot"
    elif _compatible(true_shape, expected):
        return "sparse"
    raise ValueError(
        f"y_true must hold integer class indices of shape {expected} (or one-hot rows of "
        f"shape {pred_shape}) for y_pred of shape {pred_shape} with the class axis {axis}, "
        f"got shape {true_shape}"
    )


def sample_weight_shape(
    weight_shape: tuple[int | None, ...], label_shape: tuple[int | None, ...]
) -> tuple[int | None, ...]:
    """The shape sample weights take before broadcasting to the per-example losses.

    Keras-style weights: one per example ((N,) or (N, 1)), or the shape of the
    losses; trailing axes are added. ValueError when they cannot broadcast.
    """
    rank = len(label_shape)
    shape = tuple(weight_shape)
    if len(shape) == rank + 1 and shape[-1] == 1:
        shape = shape[:-1]
    if 0 < len(shape) < rank:
        shape = shape + (1,) * (rank - len(shape))
    fits = len(shape) == 0 or (
        len(shape) == rank
        and all(
            w in (None, 1) or n is None or w == n for w, n in zip(shape, label_shape, strict=True)
        )
    )
    if not fits:
        raise ValueError(
            f"sample_weight must broadcast to the per-example losses of shape {label_shape} "
            f"(one weight per example, or one per loss), got shape {tuple(weight_shape)}"
        )
    return shape


def labels_to_indices(y_true: Any, pred_shape: tuple[int | None, ...], axis: int) -> Labels:
    """Class indices from sparse or one-hot ``y_true`` (decided by shape, like Keras).

    Sparse: the shape of ``y_pred`` without the class axis, or with a class axis of
    size 1 (Keras's ``(N, 1)`` labels); integer or integral float values. One-hot:
    the shape of ``y_pred``, exactly one 1 and zeros elsewhere on the class axis.
    """
    y_true = ops.convert_to_tensor(y_true)
    true_shape = _static_shape(y_true)
    dtype = keras.backend.standardize_dtype(y_true.dtype)
    if dtype == "bool" or not (
        keras.backend.is_float_dtype(dtype) or keras.backend.is_int_dtype(dtype)
    ):
        raise TypeError(f"y_true must hold integer class indices or one-hot rows, got {dtype}")
    layout = label_layout(true_shape, pred_shape, axis)
    if layout == "one-hot":
        indices = ops.cast(ops.argmax(y_true, axis=axis), "int32")
        binary = ops.all(ops.logical_or(y_true == 0, y_true == 1), axis=axis)
        single = ops.sum(ops.cast(y_true, "float32"), axis=axis) == 1
        return Labels(indices, ops.logical_not(ops.logical_and(binary, single)), "one-hot")
    if layout == "column":
        y_true = ops.squeeze(y_true, axis=axis)
    if keras.backend.is_float_dtype(dtype):
        # Keras hands labels over as floats; they must still be whole numbers.
        bad = ops.logical_not(y_true == ops.floor(y_true))
    else:
        bad = ops.zeros_like(y_true, dtype="bool")
    return Labels(ops.cast(y_true, "int32"), bad, "sparse")


def probabilities_to_logits(y_pred: Any, dtype: str, checks: Checks) -> Any:
    """Logits whose softmax is ``y_pred``: ``log(p)``.

    softmax(log p) = p, and every gradient row of the kernel sums to zero, so the
    chain rule through ``log`` and a preceding softmax hands the model's logits
    exactly the core's gradient. Entries below the smallest normal float are clamped
    (the gradient of a clamped entry is zero, never 0 * inf = NaN).
    """
    probs = ops.cast(y_pred, dtype)
    out_of_range = ops.logical_not(ops.logical_and(probs >= 0, probs <= 1))
    rows_bad = ops.any(out_of_range, axis=-1) if len(probs.shape) > 1 else out_of_range

    def describe(index: Any, value: Any) -> str:
        got = "" if value is None else f", got {np.ravel(value)[:8]} (example {index})"
        return (
            "y_pred must hold probabilities in [0, 1] when from_logits=False; pass "
            f"from_logits=True if the model outputs logits{got}"
        )

    checks.check(rows_bad, probs, describe)
    tiny = float(np.finfo(dtype).tiny)
    return ops.log(ops.maximum(probs, tiny))


def _custom_gradient_op(scheme: Scheme, all_reduce: Any) -> Any:
    """logits (M, C), labels (M,), valid (M,), example_weight (M,) -> losses (M,)."""

    def forward(logits: Any, labels: Any, valid: Any, example_weight: Any) -> Any:
        return kernel.forward(
            logits,
            labels,
            scheme,
            XP,
            valid=valid,
            example_weight=example_weight,
            all_reduce=all_reduce,
        )

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
    """Broadcast Keras-style sample weights ((N,), (N, 1), the loss shape) to the loss."""
    weight = ops.cast(ops.convert_to_tensor(sample_weight), dtype)
    static_labels = tuple(n if isinstance(n, int) else None for n in label_shape)
    shape = sample_weight_shape(_static_shape(weight), static_labels)
    if len(weight.shape) == rank + 1:
        weight = ops.squeeze(weight, axis=-1)
    while 0 < len(weight.shape) < len(shape):
        weight = ops.expand_dims(weight, -1)
    return ops.broadcast_to(weight, label_shape)


class PerExample(NamedTuple):
    losses: Any  #: the shape of y_pred without the class axis, compute dtype
    valid: Any  #: bool mask of the examples that count (not ignored, not masked)
    sample_weight: Any  #: sample weights broadcast to ``losses`` (None when not given)


def per_example_losses(
    y_true: Any,
    y_pred: Any,
    scheme: Scheme,
    *,
    from_logits: bool,
    axis: int,
    ignore_class: int | None,
    sample_weight: Any = None,
    mask: Any = None,
    global_normalize: bool = True,
    dtype: Any = None,
) -> PerExample:
    """Per-example losses with the core's gradient; see the module docstring.

    ``sample_weight`` (and a Keras ``mask``) weight GR's normalising mean, as class
    weights do in the core; they are *not* multiplied into the returned losses.
    ``dtype``: the dtype ``y_pred`` is converted to first (None: kept).
    """
    if not from_logits and hasattr(y_pred, "_keras_logits"):
        # The output of keras.activations.softmax: use its logits, as Keras does.
        y_pred = y_pred._keras_logits
        from_logits = True
    y_pred = ops.convert_to_tensor(y_pred, dtype=dtype)
    y_true = ops.convert_to_tensor(y_true)
    options = _Options(scheme, from_logits, axis, ignore_class, global_normalize)
    if backend().compiles_eager():
        args = [y_true, y_pred]
        args += [None if t is None else ops.convert_to_tensor(t) for t in (sample_weight, mask)]
        _check_shapes(args, axis)
        compiled = _compiled_eager(options, _signature(args, axis))
        try:
            result, bad = compiled(*(a for a in args if a is not None))
        except backend().errors:
            bad = True
        if not bool(bad):
            return result
        # Something is wrong: recompute eagerly, which raises naming the problem.
    mode = "raise" if backend().is_concrete(y_pred) else "assert"
    return _per_example(y_true, y_pred, options, sample_weight, mask, Checks(mode))


class _Options(NamedTuple):
    scheme: Scheme
    from_logits: bool
    axis: int
    ignore_class: int | None
    global_normalize: bool


def _check_shapes(args: list[Any], axis: int) -> None:
    """The static shape checks of a trace, made on the full shapes before a compiled
    call (whose signature leaves the batch sizes open)."""
    y_true, y_pred, sample_weight = args[0], args[1], args[2]
    pred_shape = _static_shape(y_pred)
    axis = _class_axis(pred_shape, axis)
    label_layout(_static_shape(y_true), pred_shape, axis)
    if sample_weight is not None:
        sample_weight_shape(
            _static_shape(sample_weight), pred_shape[:axis] + pred_shape[axis + 1 :]
        )


def _signature(args: list[Any], axis: int) -> tuple[Any, ...]:
    """Input specs with dynamic sizes except the class axis and a trailing size 1.

    One trace per (ranks, dtypes, number of classes) and no retracing when the batch
    size changes.
    """
    pred_rank = len(args[1].shape)
    specs: list[Any] = []
    for arg in args:
        if arg is None:
            specs.append(None)
            continue
        shape: list[int | None] = [None] * len(arg.shape)
        if len(arg.shape) == pred_rank and -pred_rank <= axis < pred_rank:
            shape[axis] = arg.shape[axis]
        if shape and arg.shape[-1] == 1:
            shape[-1] = 1
        specs.append(backend().tensor_spec(shape, arg.dtype))
    return tuple(specs)


def _compute_collecting(
    options: _Options, has_weight: bool, has_mask: bool, *args: Any
) -> tuple[PerExample, Any]:
    y_true, y_pred, rest = args[0], args[1], list(args[2:])
    sample_weight = rest.pop(0) if has_weight else None
    mask = rest.pop(0) if has_mask else None
    checks = Checks("collect")
    result = _per_example(y_true, y_pred, options, sample_weight, mask, checks)
    return result, checks.any_flag()


@functools.lru_cache(maxsize=128)
def _compiled_eager(options: _Options, signature: tuple[Any, ...]) -> Any:
    has_weight, has_mask = signature[2] is not None, signature[3] is not None
    # A partial, not a closure: TensorFlow counts traces per code object and would
    # warn about "retracing" when several signatures each trace once.
    compute = functools.partial(_compute_collecting, options, has_weight, has_mask)
    specs = [spec for spec in signature if spec is not None]
    return backend().function(compute, specs)


def _per_example(
    y_true: Any, y_pred: Any, options: _Options, sample_weight: Any, mask: Any, checks: Checks
) -> PerExample:
    scheme, from_logits, axis, ignore_class, global_normalize = options
    dtype = compute_dtype(y_pred.dtype)
    pred_shape = _static_shape(y_pred)
    axis = _class_axis(pred_shape, axis)
    num_classes = int(pred_shape[axis] or 0)  # static: _class_axis checked it
    rank = len(pred_shape) - 1

    # Rows: the class axis last, then (M, C).
    logits = ops.cast(y_pred, dtype)
    if axis != rank:
        logits = ops.moveaxis(logits, axis, -1)
    if not from_logits:
        logits = probabilities_to_logits(logits, dtype, checks)
    labels = labels_to_indices(y_true, pred_shape, axis)
    label_shape = ops.shape(labels.indices)
    logits2d = ops.reshape(logits, (-1, num_classes))
    indices = ops.reshape(labels.indices, (-1,))
    not_integer = ops.reshape(labels.bad, (-1,))

    valid = ops.ones_like(indices, dtype="bool")
    if ignore_class is not None:
        valid = indices != ignore_class
    out_of_range = ops.logical_and(valid, ops.logical_or(indices < 0, indices >= num_classes))
    bad_label = ops.logical_or(out_of_range, not_integer)

    def describe_label(index: Any, value: Any) -> str:
        ignored = "" if ignore_class is None else f" or ignore_class={ignore_class}"
        if labels.kind == "one-hot":
            got = "" if value is None else f", got row {np.ravel(value)[:8]} (example {index})"
            return (
                "y_true: one-hot labels must have exactly one 1 and zeros elsewhere (the "
                "gradient is defined for a hard label; skip examples with integer labels and "
                f"ignore_class){got}"
            )
        got = "" if value is None else f", got {value} (example {index})"
        return f"y_true must hold integer class indices in [0, {num_classes - 1}]{ignored}{got}"

    if labels.kind == "one-hot" and checks.mode == "raise":
        true_rows = ops.reshape(ops.moveaxis(y_true, axis, -1), (-1, num_classes))
        checks.check(bad_label, true_rows, describe_label)
    else:
        checks.check(bad_label, ops.reshape(y_true, (-1,)), describe_label)
    valid = ops.logical_and(valid, ops.logical_not(bad_label))
    if mask is not None:
        valid = ops.logical_and(valid, ops.reshape(ops.cast(mask, "bool"), (-1,)))
    safe = ops.where(valid, indices, ops.zeros_like(indices))

    weight = None
    example_weight = ops.ones_like(logits2d[:, 0])
    if sample_weight is not None:
        weight = _sample_weight_like(sample_weight, label_shape, rank, dtype)
        example_weight = ops.reshape(weight, (-1,))

        def describe_weight(index: Any, value: Any) -> str:
            return f"sample_weight must be finite and non-negative, got {value} (example {index})"

        negative = ops.logical_not(ops.logical_and(example_weight >= 0, example_weight < math.inf))
        checks.check(negative, example_weight, describe_weight, in_graphs=False)
    example_weight = ops.stop_gradient(example_weight)

    all_reduce = backend().all_reduce() if global_normalize and scheme.normalize else None
    op = _custom_gradient_op(scheme, all_reduce)
    losses = op(logits2d, safe, valid, example_weight)

    if checks.mode != "assert":
        # NaN or +inf logits give a NaN loss (or, for a +inf target, a silent p = 1).
        has_inf = ops.max(logits2d, axis=1) == math.inf
        bad_logits = ops.logical_and(valid, ops.logical_or(ops.isnan(losses), has_inf))

        def describe_logits(index: Any, row: Any) -> str:
            if np.isnan(row).any():
                what = "NaN"
            elif np.isposinf(row).any():
                what = "+inf"
            else:
                what = "every logit -inf (its softmax is undefined; ignore it with ignore_class)"
            return (
                f"y_pred: example {index} has {what}; expected finite logits or -inf "
                "(a class the model rules out)"
            )

        checks.check(bad_logits, logits2d, describe_logits, in_graphs=False)

    # Out-of-range or non-integer labels: NaN loss and NaN gradient for that example.
    poison = ops.where(bad_label, ops.full_like(losses, math.nan), ops.ones_like(losses))
    losses = ops.reshape(losses * poison, label_shape)
    return PerExample(losses, ops.reshape(ops.logical_or(valid, bad_label), label_shape), weight)
