"""Keras losses and functional forms: GR, CCE, MAE and GCE with the core's logit gradient.

``GRLoss``, ``CCELoss``, ``MAELoss`` and ``GCELoss`` are ``keras.losses.Loss``
subclasses, used like ``keras.losses.SparseCategoricalCrossentropy``::

    model.compile(optimizer, loss=emphasis_tf.GRLoss(beta=8.0, lam=0.5))

``gr_loss``, ``cce_loss``, ``mae_loss`` and ``gce_loss`` return per-example losses
(no reduction), like ``keras.losses.sparse_categorical_crossentropy``, for custom
training loops (``tf.GradientTape``, ``jax.grad``, ``torch.autograd``).
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

import keras
from keras import ops

from emphasis._docs import document
from emphasis._validation import check_ignore_index
from emphasis.schemes import CCE, GCE, GR, MAE, Scheme
from emphasis_tf._core import get_keras_mask, per_example_losses, set_keras_mask

__all__ = [
    "CCELoss",
    "GCELoss",
    "GRLoss",
    "MAELoss",
    "cce_loss",
    "gce_loss",
    "gr_loss",
    "mae_loss",
]

_PACKAGE = "emphasis"


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_options(from_logits: Any, axis: Any, ignore_class: Any) -> tuple[bool, int, Any]:
    """The options every loss takes, checked: TypeError naming the argument."""
    _check_bool("from_logits", from_logits)
    if not _is_int(axis):
        raise TypeError(f"axis must be an integer (the class axis of y_pred), got {axis!r}")
    check_ignore_index(ignore_class, "ignore_class", optional=True)
    return from_logits, axis, ignore_class


def _functional(
    y_true: Any,
    y_pred: Any,
    scheme: Scheme,
    from_logits: bool,
    axis: int,
    ignore_class: int | None,
    sample_weight: Any,
) -> Any:
    """Per-example losses in the dtype of ``y_pred`` (16-bit inputs compute in float32)."""
    from_logits, axis, ignore_class = _check_options(from_logits, axis, ignore_class)
    out_dtype = getattr(y_pred, "dtype", None)
    result = per_example_losses(
        y_true,
        y_pred,
        scheme,
        from_logits=from_logits,
        axis=axis,
        ignore_class=ignore_class,
        sample_weight=sample_weight,
    )
    losses = result.losses
    if result.sample_weight is not None:
        losses = losses * ops.cast(result.sample_weight, losses.dtype)
    if out_dtype is not None:
        losses = ops.cast(losses, ops.convert_to_tensor(y_pred).dtype)
    if ignore_class is not None:
        set_keras_mask(losses, result.valid)
    return losses


#: The options of every loss, the same in the functional forms and the classes.
_OPTION_ARGS = """        from_logits: whether ``y_pred`` holds logits (default False, like Keras's
            cross-entropies). With probabilities the loss works on ``log(y_pred)``,
            or on the logits Keras caches on a softmax output, and the model's logits
            receive exactly the core's gradient (its rows sum to zero, so the chain
            rule through log-softmax leaves them unchanged).
        axis: the class axis of ``y_pred`` (-1, Keras's default).
        ignore_class: label whose examples get zero loss and zero gradient and count
            neither in GR's normalisation nor in a mean (a Keras mask is set).
"""

_FUNCTIONAL_ARGS = f"""    Args:
        y_true: integer class indices, shape ``y_pred.shape`` without the class axis
            (or with a class axis of size 1), integral floats accepted; or one-hot
            rows of the shape of ``y_pred``. Decided by shape, as Keras does.
        y_pred: logits (``from_logits=True``) or probabilities, class axis ``axis``,
            any float dtype (16-bit floats compute in float32).
{_OPTION_ARGS}        sample_weight: optional per-example weights (broadcast to the losses),
            multiplied into the returned losses; GR normalises its weights to
            sample-weighted mean 1, as the core does with class weights.

    Returns:
        Per-example losses, shape ``y_pred.shape`` without the class axis, dtype of
        ``y_pred``. Differentiating ``sum`` or ``mean`` of them gives each example's
        logit gradient of the core (:func:`emphasis.logit_grad`).

"""


def _document_args(function: Any) -> Any:
    """Put the shared arguments into a docstring: ``{ARGS}`` of the functional forms,
    ``{OPTIONS}`` of the classes."""
    return document(ARGS=textwrap.dedent(_FUNCTIONAL_ARGS), OPTIONS=textwrap.dedent(_OPTION_ARGS))(
        function
    )


@_document_args
def gr_loss(
    y_true: Any,
    y_pred: Any,
    beta: Any = 8.0,
    lam: Any = 0.5,
    *,
    transform: str = "exp",
    normalize: bool = True,
    eps: Any = 1e-6,
    reported_loss: Any = "cce",
    from_logits: bool = False,
    axis: int = -1,
    ignore_class: int | None = None,
    sample_weight: Any = None,
) -> Any:
    """Gradient rescaling (GR): per-example reported losses with GR's logit gradient.

    Each example's logit gradient is the cross-entropy gradient rescaled to L1 norm
    ``w(p) = exp(beta p^lam (1 - p))`` (``transform="exp"``) or ``beta p^lam (1 - p)``
    (``"identity"``), p the softmax probability of the label; with ``normalize`` the
    weights have mean 1 over the batch's valid examples. The value is the
    ``reported_loss`` (CCE by default): GR has no elementary loss. See
    :class:`emphasis.GR` for ``beta``, ``lam``, ``transform``, ``normalize``, ``eps``
    and ``reported_loss``.
    {ARGS}
    >>> import numpy as np, emphasis_tf
    >>> z = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]], "float32")
    >>> losses = emphasis_tf.gr_loss(np.array([0, 1]), z, beta=8.0, lam=0.5, from_logits=True)
    >>> np.asarray(losses, dtype=float).round(4).tolist()
    [0.2395, 0.0949]
    """
    scheme = GR(
        beta, lam, transform=transform, normalize=normalize, eps=eps, reported_loss=reported_loss
    )
    return _functional(y_true, y_pred, scheme, from_logits, axis, ignore_class, sample_weight)


@_document_args
def cce_loss(
    y_true: Any,
    y_pred: Any,
    *,
    from_logits: bool = False,
    axis: int = -1,
    ignore_class: int | None = None,
    sample_weight: Any = None,
) -> Any:
    """Categorical cross entropy ``-log p`` with the core's stable gradient.

    The same value and gradient as ``keras.losses.sparse_categorical_crossentropy``;
    the scheme ``emphasis.CCE()``, ``w(p) = 2 (1 - p)``.
    {ARGS}
    >>> import numpy as np, emphasis_tf
    >>> z = np.array([[0.0, 0.0]], "float32")
    >>> losses = emphasis_tf.cce_loss(np.array([1]), z, from_logits=True)
    >>> np.asarray(losses, dtype=float).round(4).tolist()
    [0.6931]
    """
    return _functional(y_true, y_pred, CCE(), from_logits, axis, ignore_class, sample_weight)


@_document_args
def mae_loss(
    y_true: Any,
    y_pred: Any,
    *,
    from_logits: bool = False,
    axis: int = -1,
    ignore_class: int | None = None,
    sample_weight: Any = None,
) -> Any:
    """Mean absolute error ``||onehot(y) - softmax(z)||_1 = 2 (1 - p)``.

    The scheme ``emphasis.MAE()``, ``w(p) = 4 p (1 - p)``.
    {ARGS}
    >>> import numpy as np, emphasis_tf
    >>> z = np.array([[0.0, 0.0]], "float32")
    >>> losses = emphasis_tf.mae_loss(np.array([1]), z, from_logits=True)
    >>> np.asarray(losses, dtype=float).round(4).tolist()
    [1.0]
    """
    return _functional(y_true, y_pred, MAE(), from_logits, axis, ignore_class, sample_weight)


@_document_args
def gce_loss(
    y_true: Any,
    y_pred: Any,
    q: Any = 0.7,
    *,
    from_logits: bool = False,
    axis: int = -1,
    ignore_class: int | None = None,
    sample_weight: Any = None,
) -> Any:
    """Generalised cross entropy ``(1 - p^q) / q`` (Zhang & Sabuncu 2018), q in [0, 1].

    The scheme ``emphasis.GCE(q)``, ``w(p) = 2 p^q (1 - p)``; q = 0 is CCE.
    {ARGS}
    >>> import numpy as np, emphasis_tf
    >>> z = np.array([[0.0, 0.0]], "float32")
    >>> losses = emphasis_tf.gce_loss(np.array([1]), z, q=1.0, from_logits=True)
    >>> np.round(np.asarray(losses), 4).tolist()
    [0.5]
    """
    return _functional(y_true, y_pred, GCE(q), from_logits, axis, ignore_class, sample_weight)


class _Precomputed(keras.losses.Loss):
    """Applies Keras's own reduction (masks, sample weights, distribution scaling)."""

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return y_pred


def _scheme_config(scheme: Scheme) -> dict[str, Any]:
    """The scheme's fields; a nested scheme (GR's reported loss) as its name or a dict."""
    config = {}
    for field in dataclasses.fields(scheme):
        value = getattr(scheme, field.name)
        if isinstance(value, Scheme):
            inner = _scheme_config(value)
            value = {"name": value.name, **inner} if inner else value.name
        config[field.name] = value
    return config


def _scheme_from_config(config: dict[str, Any]) -> Scheme:
    """``{"name": "gce", "q": q}`` (or ``{"name": "cce"}``, ...) -> the scheme."""
    scheme = next((s for s in (CCE, MAE, GCE) if s.name == config.get("name")), None)
    fields = {"name"} | {f.name for f in dataclasses.fields(scheme)} if scheme else set()
    if scheme is None or not set(config) <= fields:
        raise ValueError(
            "reported_loss must be 'cce', 'mae', 'gce' or {'name': 'gce', 'q': q}, "
            f"got {config!r}"
        )
    return scheme(**{k: v for k, v in config.items() if k != "name"})


def _keywords(local: dict[str, Any]) -> dict[str, Any]:
    """A thin ``__init__``'s arguments (its ``locals()``), to forward as keywords."""
    return {k: v for k, v in local.items() if k not in ("self", "__class__")}


class _EmphasisLoss(keras.losses.Loss):
    """A scheme as a Keras loss, in Keras's ``LossFunctionWrapper`` pattern.

    The keyword arguments are the configuration: ``get_config`` returns them (the
    scheme's as it normalised them) and ``from_config`` passes them back. The scheme
    (``_SCHEME``, built from the scheme's keywords) goes through the shared pipeline:
    labels, rows, custom gradient, then Keras's reduction.
    """

    _SCHEME: type[Scheme]  #: built from the scheme's keywords
    #: Keywords of the loss that are not the scheme's (GR: ``global_normalize``).
    _OPTIONS: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        from_logits: bool = False,
        axis: int = -1,
        ignore_class: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        options = {k: kwargs.pop(k) for k in self._OPTIONS if k in kwargs}
        self._scheme = self._SCHEME(
            **{k: _scheme_from_config(v) if isinstance(v, dict) else v for k, v in kwargs.items()}
        )
        options = {k: _check_bool(k, v) for k, v in options.items()}
        self.global_normalize = options.get("global_normalize", True)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits, self.axis, self.ignore_class = _check_options(
            from_logits, axis, ignore_class
        )
        self._config = {
            "from_logits": self.from_logits,
            "axis": self.axis,
            "ignore_class": self.ignore_class,
            "dtype": None if dtype is None else self._dtype_policy.name,
            **_scheme_config(self._scheme),
            **options,
        }
        self._reducer = _Precomputed(name=self.name, reduction=reduction, dtype=dtype)

    @property
    def scheme(self) -> Scheme:
        """The :mod:`emphasis` scheme this loss applies."""
        return self._scheme

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._config}

    def _per_example(self, y_true: Any, y_pred: Any, sample_weight: Any) -> Any:
        mask = get_keras_mask(y_pred)
        result = per_example_losses(
            y_true,
            y_pred,
            self._scheme,
            from_logits=self.from_logits,
            axis=self.axis,
            ignore_class=self.ignore_class,
            sample_weight=sample_weight,
            mask=mask,
            global_normalize=self.global_normalize,
            # Keras convention: the loss computes in its dtype (float32 under mixed precision).
            dtype=self.dtype,
        )
        losses = ops.cast(result.losses, self.dtype)
        if self.ignore_class is not None or mask is not None:
            set_keras_mask(losses, result.valid)
        return losses, result.sample_weight

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """Per-example losses (unreduced, no sample weights), as Keras's ``Loss.call``."""
        return self._per_example(y_true, y_pred, None)[0]

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        with keras.name_scope(self.name):
            losses, weight = self._per_example(y_true, y_pred, sample_weight)
        # Sample weights enter GR's normaliser above and the reduction here. Keras's
        # reduction may scale them in place (`*=`, torch backend), and the op saved
        # a view of them for its backward: hand it a copy.
        if weight is not None:
            weight = ops.copy(weight)
        return self._reducer(losses, losses, sample_weight=weight)


@keras.saving.register_keras_serializable(package=_PACKAGE)
@_document_args
class GRLoss(_EmphasisLoss):
    """Gradient rescaling (Wang et al.): cross entropy's logit gradient, rescaled.

    The logit gradient of example i is the CCE gradient rescaled to L1 norm
    ``w(p_i) = exp(beta p_i^lam (1 - p_i))``, p_i the softmax probability of its
    label (Eq. (6) of the paper, computed stably by :mod:`emphasis.kernel`); weights
    are normalised to mean 1 over the valid examples of the batch (as the authors'
    code does). The reported value is ``reported_loss`` (CCE by default): GR has no
    elementary loss, so compare GR's *gradients*, not derivatives of its value.

    Args:
        beta: emphasis spread, >= 0 (the paper uses 2 to 16).
        lam: emphasis focus exponent, >= 0; the focus is ``lam / (1 + lam)``.
        transform: ``"exp"`` (the paper's g) or ``"identity"``.
        normalize: normalise the weights to mean 1 over the batch's valid examples.
        eps: the authors' stabiliser (1e-6): the gradient fades once ``1 - p``
            falls below about eps. 0 is exact Eq. (6).
        reported_loss: ``"cce"``, ``"mae"``, ``"gce"`` or ``{"name": "gce", "q": q}``
            (or an ``emphasis`` scheme): the value the loss reports.
        {OPTIONS}
        global_normalize: under ``tf.distribute`` (several replicas in sync), normalise
            over the global batch by all-reducing the normaliser, so the objective
            does not depend on the number of replicas. Has no effect otherwise.
        reduction: Keras's reductions: ``"sum_over_batch_size"`` (default), ``"sum"``,
            ``"mean"``, ``"mean_with_sample_weight"``, ``"none"`` or None.
        name, dtype: as for ``keras.losses.Loss`` (dtype defaults to floatx;
            float16/bfloat16 logits under a mixed policy are cast to it).

    Labels are integer class indices or one-hot rows (decided by shape).
    ``sample_weight`` (``model.fit(class_weight=...)`` included) weights both the
    loss and GR's normalising mean, as class weights do in the core.

    >>> import numpy as np, keras, emphasis_tf
    >>> loss = emphasis_tf.GRLoss(beta=8.0, lam=0.5, from_logits=True)
    >>> z = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]], "float32")
    >>> round(float(loss(np.array([0, 1]), z)), 4)
    0.1672
    """

    _SCHEME = GR
    _OPTIONS = ("global_normalize",)

    def __init__(
        self,
        beta: Any = 8.0,
        lam: Any = 0.5,
        transform: str = "exp",
        normalize: bool = True,
        eps: Any = 1e-6,
        reported_loss: Any = "cce",
        *,
        from_logits: bool = False,
        axis: int = -1,
        ignore_class: int | None = None,
        global_normalize: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "gr_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(**_keywords(locals()))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CCELoss(_EmphasisLoss):
    """Categorical cross entropy ``-log p`` with the core's stable logit gradient.

    Value and gradient equal ``keras.losses.SparseCategoricalCrossentropy`` (and
    ``CategoricalCrossentropy`` for one-hot labels); arguments as :class:`GRLoss`.

    >>> import numpy as np, emphasis_tf
    >>> loss = emphasis_tf.CCELoss(from_logits=True)
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.0]], "float32"))), 4)
    0.6931
    """

    _SCHEME = CCE  # __init__: _EmphasisLoss's; Keras names the loss "cce_loss"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MAELoss(_EmphasisLoss):
    """Mean absolute error ``2 (1 - p)`` of the softmax against the one-hot label.

    ``w(p) = 4 p (1 - p)``: robust to label noise, slow to fit. Arguments as
    :class:`GRLoss`.

    >>> import numpy as np, emphasis_tf
    >>> loss = emphasis_tf.MAELoss(from_logits=True)
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.0]], "float32"))), 4)
    1.0
    """

    _SCHEME = MAE  # __init__: _EmphasisLoss's; Keras names the loss "mae_loss"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GCELoss(_EmphasisLoss):
    """Generalised cross entropy ``(1 - p^q) / q``, q in [0, 1] (Zhang & Sabuncu 2018).

    ``w(p) = 2 p^q (1 - p)``. Agrees with
    ``keras.losses.CategoricalGeneralizedCrossEntropy`` (probabilities in, 0 < q < 1)
    on hard labels. Other arguments as :class:`GRLoss`.

    >>> import numpy as np, emphasis_tf
    >>> loss = emphasis_tf.GCELoss(q=1.0, from_logits=True)
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.0]], "float32"))), 4)
    0.5
    """

    _SCHEME = GCE

    def __init__(
        self,
        q: Any = 0.7,
        *,
        from_logits: bool = False,
        axis: int = -1,
        ignore_class: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "gce_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(**_keywords(locals()))
