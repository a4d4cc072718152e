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
import textwrap
from collections.abc import Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

import emphasis
from emphasis import kernel
from emphasis._docs import document
from emphasis._layout import check_shapes, to_rows
from emphasis._validation import check_ignore_index, is_concrete_number
from emphasis._value_checks import Names, label_message, logits_message

_NAMES = Names()

__all__ = ["cce_loss", "gce_loss", "gr_loss", "mae_loss"]


# ----------------------------------------------------------------------------------------
# The custom-derivative op
# ----------------------------------------------------------------------------------------


class _Static(NamedTuple):
    """The hashable part of a call: everything that changes the traced program."""

    scheme: Hashable  # the key of emphasis.Scheme.split: the scheme's class and settings
    axis_name: Hashable  # collective axis for GR's normaliser, or None


def _all_reduce(axis_name: Hashable) -> kernel.AllReduce | None:
    if axis_name is None:
        return None

    def all_reduce(x: Any, op: str) -> Any:
        return jax.lax.psum(x, axis_name) if op == "sum" else jax.lax.pmax(x, axis_name)

    return all_reduce


def _forward(static: _Static, logits: Any, labels: Any, valid: Any, hyper: dict[str, Any]):
    return kernel.forward(
        logits,
        labels,
        emphasis.Scheme.rebuild(static.scheme, hyper),
        jnp,
        valid=valid,
        all_reduce=_all_reduce(static.axis_name),
    )


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _losses(static: _Static, logits: Any, labels: Any, valid: Any, hyper: dict[str, Any]) -> Any:
    """Per-example losses (M,) of logits (M, C) in the compute dtype."""
    return _forward(static, logits, labels, valid, hyper).loss


def _losses_jvp(static: _Static, primals: tuple, tangents: tuple) -> tuple[Any, Any]:
    logits, labels, valid, hyper = primals
    logits_dot, _, _, hyper_dot = tangents
    out = _forward(static, logits, labels, valid, hyper)
    tangent = jnp.zeros_like(out.loss)
    if not isinstance(logits_dot, SymbolicZero):
        grad = kernel.grad_rows(logits, labels, out.coef, out.rest_max, out.rest_sum, jnp)
        tangent = tangent + jnp.sum(grad * logits_dot, axis=-1)
    if any(not isinstance(t, SymbolicZero) for t in hyper_dot.values()):
        # The value's own dependence on hyperparameters (GCE's q); GR's value (the
        # reported loss) does not depend on beta, lam or eps, so theirs is 0.
        tangents_ = {
            name: jnp.zeros_like(hyper[name]) if isinstance(t, SymbolicZero) else t
            for name, t in hyper_dot.items()
        }
        tangent = (
            tangent
            + jax.jvp(
                lambda h: _forward(static, logits, labels, valid, h).loss, (hyper,), (tangents_,)
            )[1]
        )
    return out.loss, tangent


# Symbolic zeros: differentiating only the logits (the usual case) skips the
# hyperparameter branch entirely, and differentiating only a hyperparameter skips G.
_losses.defjvp(_losses_jvp, symbolic_zeros=True)


# ----------------------------------------------------------------------------------------
# Arguments, layout and validation
# ----------------------------------------------------------------------------------------


def _is_known(flag: Any) -> bool | None:
    """The value of a boolean array when it is known now, None under jit or vmap."""
    try:
        return bool(flag)
    except jax.errors.ConcretizationTypeError:
        return None


def _known_hyperparameter(name: str, value: Any) -> Any:
    """The value the core should validate: a float when known now, else the tracer.

    Python and NumPy numbers and concrete JAX scalars (also under eager ``grad``) are
    returned as floats, which the core checks (range, finiteness); traced values (inside
    ``jit`` or ``vmap``) are returned unchanged and pass unchecked. The caller computes
    with the original value, so that it stays differentiable.
    """
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if is_concrete_number(value):
        return float(value)
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
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


def _compute_dtype(dtype: Any) -> Any:
    """The core's policy (:func:`emphasis.kernel.compute_dtype_name`) as a JAX dtype."""
    return jnp.dtype(kernel.compute_dtype_name(jnp.dtype(dtype).name))


class _Prepared(NamedTuple):
    logits: Any  # (M, C) in the compute dtype; excluded rows zeroed, excluded classes -inf
    labels: Any  # (M,) in [0, C) where valid, 0 elsewhere
    valid: Any  # (M,) bool: the rows that count
    bad_label: Any  # (M,) bool: kept rows whose label is out of range (NaN loss)
    label_shape: tuple[int, ...]
    dtype: Any  # the dtype of the input logits


def _canonical_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    axes = axis if isinstance(axis, tuple) else (axis,)
    if not axes or not all(isinstance(a, (int, np.integer)) for a in axes):
        raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
    if ndim == 0:
        raise ValueError("logits must have a class axis, got a scalar")
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for logits with {ndim} dimensions")
    canonical = tuple(int(a) % ndim for a in axes)
    if len(set(canonical)) != len(canonical):
        raise ValueError(f"axis must not repeat an axis, got {axis!r}")
    return canonical


def _classes_last(x: Any, class_axes: tuple[int, ...]) -> Any:
    """Move ``class_axes`` last (in order) and flatten them into one class axis."""
    batch_axes = tuple(a for a in range(x.ndim) if a not in class_axes)
    x = jnp.transpose(x, batch_axes + class_axes)
    return jnp.reshape(x, (*x.shape[: len(batch_axes)], -1))


def _prepare(logits: Any, labels: Any, *, axis: Any, where: Any, ignore_index: Any) -> _Prepared:
    logits = jnp.asarray(logits)
    labels = jnp.asarray(labels)
    dtype = logits.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"logits must be a floating-point array, got dtype {dtype}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    check_ignore_index(ignore_index, optional=True)
    class_axes = _canonical_axis(axis, logits.ndim)
    logits = logits.astype(_compute_dtype(dtype))
    if where is not None:
        where = jnp.asarray(where)
        if where.dtype != jnp.bool_:
            raise TypeError(f"where must be a boolean array, got dtype {where.dtype}")
        if where.shape not in (tuple(labels.shape), tuple(logits.shape)):
            raise ValueError(
                f"where must have the shape of labels {tuple(labels.shape)} (one flag per "
                f"example) or of logits {tuple(logits.shape)} (one per logit), got "
                f"{tuple(where.shape)}"
            )
    if len(class_axes) > 1:
        if where is not None and where.shape == logits.shape:
            where = _classes_last(where, class_axes)
        logits = _classes_last(logits, class_axes)
        class_axes = (logits.ndim - 1,)
    class_axis = class_axes[0]
    check_shapes(tuple(logits.shape), tuple(labels.shape), class_axis)
    per_logit = where is not None and where.shape == logits.shape and where.shape != labels.shape
    rows = to_rows(logits, labels, class_axis, jnp)
    z, y = rows.logits, rows.labels
    num_classes = z.shape[-1]

    valid = None  # None: every row counts (no masking pass over the logits)
    target_excluded = None
    if where is not None:
        if per_logit:
            where_rows = to_rows(where, labels, class_axis, jnp).logits
            valid = jnp.any(where_rows, axis=-1)
            z = jnp.where(where_rows, z, -jnp.inf)  # excluded classes leave the softmax
            clipped = jnp.clip(y, 0, num_classes - 1)[:, None]
            target_excluded = ~jnp.take_along_axis(where_rows, clipped, axis=-1)[:, 0]
        else:
            valid = jnp.reshape(where, (-1,))
    if ignore_index is not None:
        kept = y != ignore_index
        valid = kept if valid is None else valid & kept

    _check_values(z, y, valid, target_excluded, ignore_index)
    if valid is not None:
        # Excluded rows may hold anything (padding, NaN): zero them so that their zero
        # gradient stays zero (0 * NaN would not).
        z = jnp.where(valid[:, None], z, jnp.zeros_like(z))
    # Labels out of range that no check caught (under jit): such a row gets a NaN loss,
    # as in optax, a zero gradient, and no say in GR's normaliser.
    in_range = (y >= 0) & (y < num_classes)
    bad_label = ~in_range if valid is None else valid & ~in_range
    valid = in_range if valid is None else valid & in_range
    y = jnp.where(valid, y, jnp.zeros_like(y))
    return _Prepared(z, y, valid, bad_label, rows.label_shape, dtype)


@jax.jit
def _first_problems(logits: Any, labels: Any, valid: Any, target_excluded: Any) -> Any:
    """First kept row (or -1) with NaN, +inf, a label out of range, every logit -inf, or
    its labelled class excluded by ``where``."""
    num_classes = logits.shape[-1]
    flags = (
        jnp.any(jnp.isnan(logits), axis=-1),
        jnp.any(jnp.isposinf(logits), axis=-1),
        (labels < 0) | (labels >= num_classes),
        jnp.all(jnp.isneginf(logits), axis=-1),
        target_excluded,
    )
    rows = jnp.arange(logits.shape[0])
    big = logits.shape[0]
    firsts = jnp.stack([jnp.min(jnp.where(valid & flag, rows, big)) for flag in flags])
    return jnp.where(firsts < big, firsts, -1)


def _check_values(z: Any, y: Any, valid: Any, target_excluded: Any, ignore_index: Any) -> None:
    """The core's value checks, run when the values are known (not under jit or vmap).

    One reduction on the device and one scalar read decide whether anything is wrong;
    only then are the details read. Under ``jit`` and ``vmap`` the values are unknown
    and nothing is checked here.
    """
    num_rows, num_classes = z.shape
    if num_rows == 0:
        return
    everything = jnp.ones((num_rows,), bool)
    nothing = jnp.zeros((num_rows,), bool)
    problems = _first_problems(
        z,
        y,
        everything if valid is None else valid,
        nothing if target_excluded is None else target_excluded,
    )
    if not _is_known(jnp.any(problems >= 0)):
        return  # nothing wrong, or the values are unknown (jit, vmap)
    nan_row, posinf_row, label_row, dead_row, excluded_row = (int(p) for p in problems)
    if nan_row >= 0:
        raise ValueError(logits_message("nan", example=nan_row))
    if posinf_row >= 0:
        raise ValueError(logits_message("posinf", example=posinf_row))
    if label_row >= 0:
        raise ValueError(label_message(num_classes, ignore_index, int(y[label_row]), label_row))
    if dead_row >= 0:
        raise ValueError(
            logits_message("dead", _NAMES._replace(leave_out="exclude it with `where`"), dead_row)
        )
    if excluded_row >= 0:
        raise ValueError(
            f"where excludes the labelled class of example {excluded_row} "
            f"(label {int(y[excluded_row])}); exclude the whole example instead"
        )


def _per_example(
    scheme_class: type[emphasis.Scheme],
    kwargs: dict[str, Any],
    logits: Any,
    labels: Any,
    *,
    axis: Any,
    where: Any,
    ignore_index: Any,
    axis_name: Hashable = None,
) -> Any:
    # The core's checks (ranges of known values, normalize, reported_loss) with its messages;
    # the computation uses the original values, so that traced ones stay differentiable.
    names = scheme_class.HYPERPARAMETERS
    known = {k: _known_hyperparameter(k, v) if k in names else v for k, v in kwargs.items()}
    key, _ = scheme_class(**known).split()
    hyper = {name: kwargs[name] for name in names}
    if axis_name is not None and not isinstance(axis_name, Hashable):
        raise TypeError(f"axis_name must be a hashable axis name, got {axis_name!r}")
    static = _Static(key, axis_name)
    batch = _prepare(logits, labels, axis=axis, where=where, ignore_index=ignore_index)
    compute = batch.logits.dtype
    hyper = {name: jnp.asarray(value, dtype=compute) for name, value in hyper.items()}
    if batch.logits.shape[0] == 0:
        # No examples: nothing to normalise (the kernel's max has no identity on empty
        # input); zero losses, kept differentiable so grad returns an empty gradient.
        losses = jnp.sum(batch.logits, axis=-1) * 0
    else:
        losses = _losses(static, batch.logits, batch.labels, batch.valid, hyper)
    losses = jnp.where(batch.bad_label, jnp.nan, losses)
    return jnp.reshape(losses, batch.label_shape).astype(batch.dtype)


# ----------------------------------------------------------------------------------------
# Public losses
# ----------------------------------------------------------------------------------------


_SELECTION_ARGS = """\
        axis: the class axis of ``logits`` (or a tuple of axes, flattened in order, with
            ``labels`` indexing the flattened slice), -1 by default as in optax.
        where: optional boolean mask, either of the shape of ``labels`` (``False``
            excludes that example) or of the shape of ``logits`` (``False`` removes that
            class from the example's softmax; an example with no class left is
            excluded). An excluded example has loss 0 and gradient 0. A mean over the
            kept examples is ``losses.sum() / where.sum()`` (or ``losses.mean(where=...)``).
        ignore_index: optional label value that excludes its examples, like ``where``.
"""


_document_selection = document(SELECTION_ARGS=textwrap.dedent(_SELECTION_ARGS))


@_document_selection
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
        logits: unnormalised scores, shape ``(..., C)`` (class axis ``axis``), any float
            dtype; 16-bit floats compute in float32 and float64 (under
            ``jax_enable_x64``) in float64. Entries may be -inf, not NaN or +inf.
        labels: integer class indices in ``[0, C)``, shape ``logits.shape`` without the
            class axis.
        {SELECTION_ARGS}

    Returns:
        Per-example losses, shape of ``labels``, dtype of ``logits``.

    Example:
        >>> import jax.numpy as jnp, emphasis_jax
        >>> jnp.set_printoptions(precision=4)
        >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
        >>> emphasis_jax.cce_loss(logits, jnp.array([0, 1]))
        Array([0.2761, 2.9518], dtype=float32)

    References:
        Wang et al., "Derivative Manipulation for General Example Weighting",
        arXiv:1905.11233, Eq. (4).
    """
    return _per_example(
        emphasis.CCE, {}, logits, labels, axis=axis, where=where, ignore_index=ignore_index
    )


@_document_selection
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
        logits: unnormalised scores, shape ``(..., C)``; see :func:`cce_loss`.
        labels: integer class indices in ``[0, C)``.
        {SELECTION_ARGS}

    Returns:
        Per-example losses, shape of ``labels``, dtype of ``logits``.

    Example:
        >>> import jax.numpy as jnp, emphasis_jax
        >>> emphasis_jax.mae_loss(jnp.array([[0.0, 0.0]]), jnp.array([1]))
        Array([1.], dtype=float32)

    References:
        Ghosh, Kumar, Sastry, "Robust loss functions under label noise for deep neural
        networks", AAAI 2017; Wang et al., arXiv:1905.11233, Eq. (4).
    """
    return _per_example(
        emphasis.MAE, {}, logits, labels, axis=axis, where=where, ignore_index=ignore_index
    )


@_document_selection
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
    ``w(p) = 2 p^q (1 - p)``, emphasis focus ``q / (1 + q)``.

    Args:
        logits: unnormalised scores, shape ``(..., C)``; see :func:`cce_loss`.
        labels: integer class indices in ``[0, C)``.
        q: exponent in [0, 1]; may be a traced scalar (a schedule) and is
            differentiable (the value depends on it).
        {SELECTION_ARGS}

    Returns:
        Per-example losses, shape of ``labels``, dtype of ``logits``.

    Example:
        >>> import jax.numpy as jnp, emphasis_jax
        >>> emphasis_jax.gce_loss(jnp.array([[0.0, 0.0]]), jnp.array([1]), q=1.0)
        Array([0.5], dtype=float32)

    References:
        Zhang & Sabuncu, "Generalized cross entropy loss for training deep neural
        networks with noisy labels", NeurIPS 2018.
    """
    return _per_example(
        emphasis.GCE, {"q": q}, logits, labels, axis=axis, where=where, ignore_index=ignore_index
    )


@_document_selection
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
    r"""Gradient rescaling (GR): the reported loss per example, with GR's logit gradient.

    Each example's weight is ``w(p) = exp(beta p^lam (1 - p))`` (``transform="exp"``) or
    ``beta p^lam (1 - p)`` (``"identity"``), with ``p = softmax(z)[y]``. Its logit
    gradient is the cross-entropy gradient rescaled to L1 norm ``w`` (Eq. (6)):

    .. math::
        \frac{\partial L_i}{\partial z_i} = \frac{w_i / \bar w}{2}\, d_i\,
        \frac{1 - p_i}{(1 - p_i) + \epsilon/2}, \qquad
        d_{ij} = \mathrm{softmax}(z_{i,\neg y_i})_j \ (j \ne y_i), \quad d_{iy_i} = -1,

    where ``\bar w`` is the mean weight over the examples of the call (``normalize``;
    weights treated as constants) and the eps factor fades the push on examples with
    ``1 - p`` below about ``eps``. GR has no elementary loss: the value returned is the
    ``reported_loss`` (CCE by default), so ``jax.grad`` of ``gr_loss(...).mean()`` is
    GR's gradient, not the derivative of the value.

    Normalisation runs over the examples of this call: under ``vmap`` or data
    parallelism (``pmap``, ``shard_map``) each instance normalises by its own examples
    unless ``axis_name`` names the mapped axis, which all-reduces the normaliser
    (``psum``/``pmax``) so the weights have mean 1 over the global batch.

    Args:
        logits: unnormalised scores, shape ``(..., C)`` (class axis ``axis``), any float
            dtype; 16-bit floats compute in float32, float64 (under
            ``jax_enable_x64``) in float64. Entries may be -inf, not NaN or +inf.
        labels: integer class indices in ``[0, C)``, shape ``logits.shape`` without the
            class axis.
        beta: emphasis spread, >= 0. May be a traced scalar (a schedule): changing it
            does not recompile.
        lam: emphasis focus exponent, >= 0 (focus ``lam / (1 + lam)``); may be traced.
        transform: ``"exp"`` (the paper's g) or ``"identity"``.
        normalize: normalise the weights to mean 1 over the kept examples of the call
            (the authors' code does; keeps large beta usable at ordinary learning rates).
        eps: the authors' stabiliser (1e-6); 0 is exact Eq. (6). May be traced.
        reported_loss: the value returned: ``"cce"``, ``"mae"``, ``"gce"`` or an
            ``emphasis.CCE()``, ``MAE()``, ``GCE(q)`` instance.
        {SELECTION_ARGS}
        axis_name: a mapped axis name (of ``vmap``, ``pmap`` or ``shard_map``) over which
            GR's normaliser is all-reduced, so it is the mean weight of the global batch.

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

    References:
        Wang, Hua, Kodirov, Robertson, "Robust discriminative representation learning
        via gradient rescaling: an emphasis regularisation perspective" (2019);
        "Derivative Manipulation for General Example Weighting", arXiv:1905.11233.
    """
    kwargs = {"beta": beta, "lam": lam, "transform": transform, "normalize": normalize}
    kwargs.update(eps=eps, reported_loss=reported_loss)
    return _per_example(
        emphasis.GR,
        kwargs,
        logits,
        labels,
        axis=axis,
        where=where,
        ignore_index=ignore_index,
        axis_name=axis_name,
    )
