"""Per-example losses in the optax style, with the core's logit gradient as a JAX custom JVP.

The op at the centre maps logits (M, C) and labels (M,) to per-example losses (M,).
Its derivative is registered with :func:`jax.custom_jvp`: the tangent of example i is
``sum_j G_ij dz_ij`` where ``G = kernel.grad_rows(...)`` is the core's gradient. That
rule is linear in the tangent ``dz``, so JAX transposes it for reverse mode (``grad``,
``value_and_grad``, ``vjp``) and also keeps forward mode (``jvp``, ``jacfwd``) working,
which :func:`jax.custom_vjp` would rule out. For CCE, MAE and GCE, ``G`` is the true
derivative of the value; for GR it is GR's gradient while the value is the reported
loss (CCE by default): GR has no elementary loss.

Hyperparameters travel as traced array arguments (never ``nondiff_argnums``, which
must hold hashable Python values, jax#20889), so a schedule that changes ``beta``
every step reuses one compiled program. Only hashable settings (scheme kind,
``transform``, ``normalize``, the reported loss, ``axis_name``) are static.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

import emphasis
from emphasis import _value_checks as checks
from emphasis import kernel
from emphasis._docs import document
from emphasis._layout import class_axes, to_rows
from emphasis._validation import (
    check_hyperparameter,
    check_ignore_index,
    check_representable,
    is_concrete_number,
)

__all__ = ["cce_loss", "gce_loss", "gr_loss", "mae_loss"]

#: How the value checks word the way out for an example whose logits are all -inf.
_NAMES = checks.Names(leave_out="exclude it with `where`")


# -- The custom-derivative op ----------------------------------------------------------------------


def _forward(key: Hashable, axis_name: Hashable, logits: Any, labels: Any, valid: Any, hyper: Any):
    def all_reduce(x: Any, op: str) -> Any:
        return (jax.lax.psum if op == "sum" else jax.lax.pmax)(x, axis_name)

    scheme = emphasis.Scheme.rebuild(key, hyper)
    reduce = None if axis_name is None else all_reduce
    return kernel.forward(logits, labels, scheme, jnp, valid=valid, all_reduce=reduce)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _losses(
    key: Hashable, axis_name: Hashable, logits: Any, labels: Any, valid: Any, hyper: Any
) -> Any:
    """Per-example losses (M,) of logits (M, C) in the compute dtype.

    The static (hashable) arguments select the program: ``key`` is the scheme's settings
    (:meth:`emphasis.Scheme.split`), ``axis_name`` the collective axis of GR's normaliser
    (or None). ``hyper`` holds the scheme's hyperparameters as arrays.
    """
    return _forward(key, axis_name, logits, labels, valid, hyper).loss


def _losses_jvp(key: Hashable, axis_name: Hashable, primals: tuple, tangents: tuple):
    logits, labels, valid, hyper = primals
    logits_dot, _, _, hyper_dot = tangents
    out = _forward(key, axis_name, *primals)
    tangent = jnp.zeros_like(out.loss)
    if not isinstance(logits_dot, SymbolicZero):
        grad = kernel.grad_rows(logits, labels, out.coef, out.rest_max, out.rest_sum, jnp)
        # A class at -inf has gradient exactly 0; grad_rows gives exp(-inf) * coef, which
        # is 0 * inf = NaN where coef overflows (normalize=False, beta h > 88 in float32).
        off_label = jnp.arange(logits.shape[-1]) != labels[:, None]
        grad = jnp.where((logits == -jnp.inf) & off_label, jnp.zeros_like(grad), grad)
        tangent += jnp.sum(grad * logits_dot, axis=-1)
    live = {k: t for k, t in hyper_dot.items() if not isinstance(t, SymbolicZero)}
    if live:
        # The value's own dependence on hyperparameters (GCE's q); GR's value (the
        # reported loss) does not depend on beta, lam or eps, so theirs is 0.
        def value(h: Any) -> Any:
            return _forward(key, axis_name, logits, labels, valid, {**hyper, **h}).loss

        tangent += jax.jvp(value, ({k: hyper[k] for k in live},), (live,))[1]
    return out.loss, tangent


# Symbolic zeros: differentiating only the logits (the usual case) skips the
# hyperparameter branch entirely, and differentiating only a hyperparameter skips G.
_losses.defjvp(_losses_jvp, symbolic_zeros=True)


# -- Arguments, layout and validation --------------------------------------------------------------


def _known_hyperparameter(name: str, value: Any) -> Any:
    """The value the core should validate: a float when known now (a number, a concrete
    JAX scalar, also under eager ``grad``), else the tracer (under ``jit`` or ``vmap``),
    which passes unchecked. The caller computes with the original value: it stays
    differentiable."""
    if is_concrete_number(value) or value is None or isinstance(value, (bool, str, bytes)):
        return check_hyperparameter(name, value)  # a float, or the core's error
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None or dtype is None:
        raise TypeError(f"{name} must be a real number or a scalar array, got {value!r}")
    if tuple(shape) != ():
        raise ValueError(f"{name} must be a scalar, got an array of shape {tuple(shape)}")
    if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
        raise TypeError(f"{name} must be a real number, got an array of dtype {dtype}")
    try:
        return float(value)
    except jax.errors.ConcretizationTypeError:
        return value


def _prepare(logits: Any, labels: Any, axis: Any, where: Any, ignore_index: Any) -> tuple:
    """The checked arguments as rows: ``(z, y, valid, bad_label, label_shape, dtype)``.

    ``z`` (M, C) is in the compute dtype, excluded rows zeroed and excluded classes -inf;
    ``y`` (M,) lies in [0, C) (0 where not valid); ``valid`` (M,) marks the rows that
    count; ``bad_label`` the kept rows whose label is out of range or whose labelled class
    ``where`` removes, which no check caught (under jit): as in optax they get a NaN loss,
    a zero gradient and no say in GR's normaliser. ``label_shape`` and ``dtype`` are those of the per-example output.
    """
    checks.check_labels_fit_int32(labels)  # before jnp.asarray, which may cast to int32
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"logits must be a floating-point array, got dtype {logits.dtype}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    check_ignore_index(ignore_index, optional=True)
    axes = class_axes(axis, logits.shape, several=True)
    z = logits.astype(kernel.compute_dtype_name(logits.dtype.name))
    if where is not None:
        where = jnp.asarray(where)
        if where.dtype != jnp.bool_:
            raise TypeError(f"where must be a boolean array, got dtype {where.dtype}")
        if where.shape not in (labels.shape, logits.shape):
            raise ValueError(
                f"where must have the shape of labels {labels.shape} (one flag per example) "
                f"or of logits {logits.shape} (one per logit), got {where.shape}"
            )
    per_logit = where is not None and where.shape == logits.shape
    if isinstance(axes, tuple):  # several class axes: moved last in order and flattened

        def classes_last(x: Any) -> Any:
            x = jnp.moveaxis(x, axes, tuple(range(-len(axes), 0)))
            return jnp.reshape(x, (*x.shape[: x.ndim - len(axes)], -1))

        z, where, axes = classes_last(z), classes_last(where) if per_logit else where, -1
    rows = to_rows(z, labels, axes, jnp)
    z, y = rows.logits, rows.labels
    num_classes = z.shape[-1]

    valid = None  # None: every row counts (no masking pass over the logits)
    label_dropped = None  # (M,) rows whose labelled class `where` removes (per logit)
    if per_logit:
        kept = to_rows(where, labels, axes, jnp).logits
        valid = jnp.any(kept, axis=-1)
        z = jnp.where(kept, z, -jnp.inf)  # excluded classes leave the softmax
        safe = jnp.clip(y, 0, num_classes - 1)[:, None]
        label_dropped = ~jnp.take_along_axis(kept, safe, axis=-1)[:, 0]
    elif where is not None:
        valid = jnp.reshape(where, (-1,))
    if ignore_index is not None and checks.ignore_index_matches(y, ignore_index):
        valid = (y != ignore_index) if valid is None else valid & (y != ignore_index)
    counted = jnp.ones(y.shape, bool) if valid is None else valid
    _check_values(z, y, counted, label_dropped, ignore_index)
    # What no check caught (under jit): a label out of range, or one whose class `where`
    # removes (its loss would be inf); such rows count as bad labels.
    bad_label = checks.labels_out_of_range(y, counted, num_classes)
    if label_dropped is not None:
        bad_label = bad_label | (counted & label_dropped)
    if valid is not None:
        # Excluded rows may hold anything (padding, NaN): zero them so that their zero
        # gradient stays zero (0 * NaN would not).
        z = jnp.where((valid & ~bad_label)[:, None], z, jnp.zeros_like(z))
    valid = counted & ~bad_label
    y = jnp.where(valid, y, jnp.zeros_like(y))
    return z, y, valid, bad_label, rows.label_shape, logits.dtype


@jax.jit
def _flags(z: Any, y: Any, valid: Any, label_dropped: Any) -> tuple[Any, list[Any]]:
    """Whether each check failed (one read decides), and its flags: the counted rows with
    bad logits (the core's :func:`bad_logit_rows`), with a label out of range, and with
    their labelled class removed by ``where``."""
    safe = jnp.clip(y, 0, z.shape[-1] - 1)
    rel = kernel.relevance(z, safe, jnp)
    z_label = jnp.take_along_axis(z, safe[:, None], axis=-1)[:, 0]
    flags = [
        checks.bad_logit_rows(z_label, rel.log_p, rel.rest_sum, valid),
        checks.labels_out_of_range(y, valid, z.shape[-1]),
        valid & (False if label_dropped is None else label_dropped),
    ]
    return jnp.stack([jnp.any(f) for f in flags]), flags


def _excluded_message(i: int, label: Any) -> str:
    return (
        f"where excludes the labelled class of example {i} (label {label}); exclude the "
        "whole example instead"
    )


def _check_values(z: Any, y: Any, valid: Any, label_dropped: Any, ignore_index: Any) -> None:
    """The core's value checks, run when the values are known (not under jit or vmap):
    one jitted pass on the device and one read decide whether anything is wrong."""
    if z.shape[0] == 0:
        return  # nothing to check
    z = jax.lax.stop_gradient(z)  # under eager grad: the values, readable on the host
    failed, (bad_logits, bad_labels, excluded) = _flags(z, y, valid, label_dropped)
    if isinstance(failed, jax.core.Tracer):
        return
    problems = [
        checks.logits_problem(bad_logits, z, _NAMES),
        checks.label_problem(bad_labels, y, z.shape[-1], ignore_index, _NAMES),
        checks.Problem(excluded, y, _excluded_message, ""),
    ]
    checks.raise_first(problems, np.asarray(failed).tolist(), lambda x: np.asarray(x).tolist())


def _per_example(
    scheme_class: type[emphasis.Scheme],
    logits: Any,
    labels: Any,
    *,
    axis: Any,
    where: Any,
    ignore_index: Any,
    axis_name: Hashable = None,
    **options: Any,
) -> Any:
    """The per-example losses of ``scheme_class(**options)``, laid out like ``labels``.

    The core validates the scheme (ranges of the known values, ``normalize``,
    ``reported_loss``) with its messages; the op computes with the original values,
    so that traced hyperparameters stay differentiable. The public functions pass
    ``**locals()``: exactly their parameters.
    """
    names = scheme_class.HYPERPARAMETERS
    known = {k: _known_hyperparameter(k, v) if k in names else v for k, v in options.items()}
    key, _ = scheme_class(**known).split()
    if axis_name is not None and not isinstance(axis_name, Hashable):
        raise TypeError(f"axis_name must be a hashable axis name, got {axis_name!r}")
    z, y, valid, bad_label, label_shape, dtype = _prepare(logits, labels, axis, where, ignore_index)
    for name in names:  # known values that the compute dtype would make inf
        check_representable(name, known[name], z.dtype.name)
    hyper = {name: jnp.asarray(options[name], dtype=z.dtype) for name in names}
    if z.shape[0] == 0:
        # No examples: nothing to normalise (the kernel's max has no identity on empty
        # input); zero losses, kept differentiable so grad returns an empty gradient.
        losses = jnp.sum(z, axis=-1) * 0
    else:
        losses = _losses(key, axis_name, z, y, valid, hyper)
    losses = jnp.where(bad_label, jnp.nan, losses)
    return jnp.reshape(losses, label_shape).astype(dtype)


# -- Public losses ---------------------------------------------------------------------------------


_ARRAY_ARGS = """\
logits: unnormalised scores, shape ``(..., C)`` (class axis ``axis``), any float
    dtype; 16-bit floats compute in float32 and float64 (under
    ``jax_enable_x64``) in float64. Entries may be -inf, not NaN or +inf.
labels: integer class indices in ``[0, C)``, shape ``logits.shape`` without the
    class axis.
"""

_SELECTION_ARGS = """\
axis: the class axis of ``logits`` (or a tuple of axes, flattened in order, with
    ``labels`` indexing the flattened slice), -1 by default as in optax.
where: optional boolean mask, either of the shape of ``labels`` (``False``
    excludes that example) or of the shape of ``logits`` (``False`` removes that
    class from the example's softmax; an example with no class left is
    excluded). An excluded example has loss 0 and gradient 0. A mean over the
    kept examples is ``losses.sum() / where.sum()`` (or ``losses.mean(where=...)``).
    A per-logit mask must keep each kept example's labelled class: eagerly this
    is refused; under ``jit`` (no value checks) such an example gets a NaN loss,
    gradient 0 and no say in GR's normaliser, as a label out of range does.
ignore_index: optional label value that excludes its examples, like ``where``.
"""

_document = document(
    scalar="may be a traced scalar",
    ARRAY_ARGS=_ARRAY_ARGS,
    SELECTION_ARGS=_SELECTION_ARGS,
)


@_document
def cce_loss(
    logits: Any,
    labels: Any,
    *,
    axis: Any = -1,
    where: Any = None,
    ignore_index: int | None = None,
) -> jax.Array:
    r"""Categorical cross entropy with integer labels, per example.

    ``L_i = -log p_i`` with ``p_i = softmax(z_i)[y_i]``; its logit gradient has L1 norm
    ``w(p) = 2 (1 - p)``. The same values and gradients as
    ``optax.softmax_cross_entropy_with_integer_labels``, computed by the core kernel
    shared with GR (the gradient of a row whose other logits are all -inf is 0).

    Args:
        {ARRAY_ARGS}
        {SELECTION_ARGS}

    Returns:
        Per-example losses, shape of ``labels``, dtype of ``logits``.

    Example:
        >>> import jax.numpy as jnp, emphasis_jax
        >>> jnp.set_printoptions(precision=4)
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        >>> emphasis_jax.cce_loss(logits, jnp.array([0, 1]))
        Array([0.2761, 2.9518], dtype=float32)

    {CCE_REFERENCES}
    """
    return _per_example(emphasis.CCE, **locals())


@_document
def mae_loss(
    logits: Any,
    labels: Any,
    *,
    axis: Any = -1,
    where: Any = None,
    ignore_index: int | None = None,
) -> jax.Array:
    r"""Mean absolute error between ``onehot(y)`` and ``softmax(z)``, per example.

    ``L_i = ||onehot(y_i) - softmax(z_i)||_1 = 2 (1 - p_i)``; gradient L1 norm
    ``w(p) = 4 p (1 - p)`` (emphasis focus 1/2: robust to label noise, slow to fit).

    Args:
        {ARRAY_ARGS}
        {SELECTION_ARGS}

    Returns:
        Per-example losses, shape of ``labels``, dtype of ``logits``.

    Example:
        >>> import jax.numpy as jnp, emphasis_jax
        >>> emphasis_jax.mae_loss(jnp.array([[0.0, 0.0]]), jnp.array([1]))
        Array([1.], dtype=float32)

    {MAE_REFERENCES}
    """
    return _per_example(emphasis.MAE, **locals())


@_document
def gce_loss(
    logits: Any,
    labels: Any,
    *,
    q: Any = 0.7,
    axis: Any = -1,
    where: Any = None,
    ignore_index: int | None = None,
) -> jax.Array:
    r"""Generalised cross entropy, per example.

    ``L_i = (1 - p_i^q) / q`` (``-log p_i`` at q = 0); gradient L1 norm
    ``w(p) = 2 p^q (1 - p)``, emphasis focus ``q / (1 + q)``. The value depends on
    ``q``, so ``q`` is differentiable (``jax.grad`` with respect to it works), and a
    traced ``q`` (a schedule) reuses one compiled program.

    Args:
        {ARRAY_ARGS}
        {Q_ARG}
        {SELECTION_ARGS}

    Returns:
        Per-example losses, shape of ``labels``, dtype of ``logits``.

    Example:
        >>> import jax.numpy as jnp, emphasis_jax
        >>> emphasis_jax.gce_loss(jnp.array([[0.0, 0.0]]), jnp.array([1]), q=1.0)
        Array([0.5], dtype=float32)

    {GCE_REFERENCES}
    """
    return _per_example(emphasis.GCE, **locals())


@_document
def gr_loss(
    logits: Any,
    labels: Any,
    *,
    beta: Any = 8.0,
    lam: Any = 0.5,
    transform: str = "exp",
    normalize: bool = True,
    eps: Any = 1e-6,
    reported_loss: Any = "cce",
    axis: Any = -1,
    where: Any = None,
    ignore_index: int | None = None,
    axis_name: Hashable = None,
) -> jax.Array:
    """Gradient rescaling (GR): the reported loss per example, with GR's logit gradient.

    {GR_FORMULA}

    ``jax.grad`` of ``gr_loss(...).mean()`` is thus GR's gradient. The batch is the call:
    under ``vmap`` or data parallelism (``pmap``, ``shard_map``) each instance normalises
    by its own examples unless ``axis_name`` names the mapped axis, which all-reduces the
    normaliser (``psum``/``pmax``) so the weights have mean 1 over the global batch.
    Traced hyperparameters (a schedule that changes ``beta`` every step) reuse one
    compiled program. Known ones (numbers, concrete arrays) are checked, also that the
    compute dtype holds them (float32: at most 3.4e+38); traced ones are not: a value
    out of range computes the formula as written, and ``beta`` or ``lam`` beyond the
    compute dtype (inf) gives NaN gradients.

    Args:
        {ARRAY_ARGS}
        {GR_ARGS}
        {SELECTION_ARGS}
        axis_name: a mapped axis name (of ``vmap``, ``pmap`` or ``shard_map``) over which
            GR's normaliser is all-reduced, so that it is the mean weight of the global
            batch: the JAX counterpart of emphasis_torch's and emphasis_tf's
            ``global_normalize`` (JAX names the mapped axis, as ``flax.linen.BatchNorm``
            does).

    Returns:
        Per-example reported losses, shape of ``labels``, dtype of ``logits``.

    With ``normalize=False, eps=0, transform="identity"``, (beta, lam) = (2, 0), (4, 1)
    and (2, q) give the gradients of :func:`cce_loss`, :func:`mae_loss` and
    :func:`gce_loss` exactly.

    Example:
        >>> import jax, jax.numpy as jnp, emphasis_jax
        >>> jnp.set_printoptions(precision=4)
        >>> logits = jnp.array([[4.0, 0.0, 0.0], [1.0, 1.5, 0.0], [0.0, 6.0, 0.0]])
        >>> labels = jnp.array([0, 0, 0])  # p = 0.96, 0.33, 0.0025: the last looks mislabelled
        >>> emphasis_jax.gr_loss(logits, labels, beta=8.0, lam=0.5)  # the reported CCE
        Array([0.036 , 1.1041, 6.0049], dtype=float32)
        >>> def total(z):
        ...     return emphasis_jax.gr_loss(z, labels, beta=8.0, lam=0.5).sum()
        >>> jnp.abs(jax.grad(total)(logits)).sum(axis=1)  # L1 norms: the emphasis
        Array([0.1613, 2.657 , 0.1817], dtype=float32)

        Cross entropy would push hardest on the last example (L1 norms 0.07, 1.34, 2.0);
        GR (focus lam / (1 + lam) = 1/3) on the second.

    {GR_REFERENCES}
    """
    return _per_example(emphasis.GR, **locals())
