"""The Keras losses (``GRLoss``, ...) and functional forms (``gr_loss``, ...) of
:mod:`emphasis_tf`: the schemes of :mod:`emphasis` with the core's logit gradient."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from emphasis._docs import document
from emphasis._validation import check_bool, check_ignore_index, is_concrete_number
from emphasis.schemes import CCE, GCE, GR, MAE, Scheme
from emphasis_tf._core import (
    Options,
    get_keras_mask,
    per_example_losses,
    set_keras_mask,
    split_options,
)

__all__ = ["CCELoss", "GCELoss", "GRLoss", "MAELoss", "cce_loss", "gce_loss", "gr_loss", "mae_loss"]


def _options(
    scheme: Scheme, from_logits: Any, axis: Any, ignore_class: Any, global_normalize: Any = True
) -> Options:
    """The options every loss takes, checked: TypeError naming the argument."""
    from_logits = check_bool("from_logits", from_logits)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"axis must be an integer (the class axis of y_pred), got {axis!r}")
    ignore_class = check_ignore_index(ignore_class, "ignore_class", optional=True)
    global_normalize = check_bool("global_normalize", global_normalize)
    options = Options(scheme, from_logits, axis, ignore_class, global_normalize)
    split_options(options)  # refuses a tensor hyperparameter that is not a 0-d float
    return options


def _arguments(function: Any, local: dict[str, Any]) -> dict[str, Any]:
    """A thin function's arguments, from its ``locals()``, to forward as keywords (inside
    a ``tf.function``, autograph converts the function and adds names of its own)."""
    code = function.__code__
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return {k: local[k] for k in names if k != "self"}


def _functional(
    scheme: type[Scheme],
    y_true: Any,
    y_pred: Any,
    *,
    from_logits: bool,
    axis: int,
    ignore_class: int | None,
    sample_weight: Any,
    **hyperparameters: Any,
) -> Any:
    """A functional form's arguments -> per-example losses in the dtype of ``y_pred``
    (16-bit inputs compute in float32)."""
    options = _options(scheme(**hyperparameters), from_logits, axis, ignore_class)
    result = per_example_losses(y_true, y_pred, options, sample_weight)
    losses = result.losses
    if result.sample_weight is not None:
        losses = losses * ops.cast(result.sample_weight, losses.dtype)
    if hasattr(y_pred, "dtype"):
        losses = ops.cast(losses, ops.convert_to_tensor(y_pred).dtype)
    if ignore_class is not None:
        set_keras_mask(losses, result.valid)
    return losses


#: The options of every loss, the same in the functional forms and the classes.
_OPTIONS = """from_logits: whether ``y_pred`` holds logits (default False, like Keras's
    cross-entropies). With probabilities the loss works on ``log(y_pred)``, or on
    the logits Keras caches on a softmax output, and the model's logits receive
    exactly the core's gradient (its rows sum to zero, so the chain rule through
    log-softmax leaves them unchanged). Probabilities must lie in [0, 1] and each
    counted row must sum to 1 within 0.01 (float16/bfloat16 softmax outputs do);
    other rows are refused rather than renormalised.
axis: the class axis of ``y_pred`` (-1, Keras's default).
ignore_class: label whose examples get zero loss and zero gradient and count
    neither in GR's normalisation nor in a mean (a Keras mask is set)."""

_INPUTS = """Args:
    y_true: integer class indices, shape ``y_pred.shape`` without the class axis
        (or with a class axis of size 1), integral floats accepted; or one-hot
        rows of the shape of ``y_pred``. Decided by shape, as Keras does.
    y_pred: logits (``from_logits=True``) or probabilities, class axis ``axis``,
        any float dtype (16-bit floats compute in float32)."""

#: After the options: ``sample_weight`` (indented as an argument) and ``Returns``.
_REST = """    sample_weight: optional per-example weights (broadcast to the losses),
        multiplied into the returned losses; GR normalises its weights to
        sample-weighted mean 1, as the core does with class weights.

Returns:
    Per-example losses, shape ``y_pred.shape`` without the class axis, dtype of
    ``y_pred``. Differentiating ``sum`` or ``mean`` of them gives each example's
    logit gradient of the core (:func:`emphasis.logit_grad`)."""

#: Fills ``{INPUTS}``, ``{OPTIONS}`` and ``{REST}`` of the functional forms, ``{OPTIONS}``
#: of the classes, and the core's shared blocks (``{GR_ARGS}``, references, ...).
_document = document(
    scalar="a float or a scalar tensor", INPUTS=_INPUTS, OPTIONS=_OPTIONS, REST=_REST
)


@_document
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

    {GR_FORMULA}

    {INPUTS}
        {GR_ARGS}
        {OPTIONS}
    {REST}

    {GR_REFERENCES}

    >>> import numpy as np, emphasis_tf
    >>> z = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]], "float32")
    >>> losses = emphasis_tf.gr_loss(np.array([0, 1]), z, beta=8.0, lam=0.5, from_logits=True)
    >>> np.asarray(losses, dtype=float).round(4).tolist()
    [0.2395, 0.0949]
    """
    return _functional(GR, **_arguments(gr_loss, locals()))


@_document
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

    {INPUTS}
        {OPTIONS}
    {REST}

    {CCE_REFERENCES}

    >>> import numpy as np, emphasis_tf
    >>> z = np.array([[0.0, 0.0]], "float32")
    >>> losses = emphasis_tf.cce_loss(np.array([1]), z, from_logits=True)
    >>> np.asarray(losses, dtype=float).round(4).tolist()
    [0.6931]
    """
    return _functional(CCE, **_arguments(cce_loss, locals()))


@_document
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

    {INPUTS}
        {OPTIONS}
    {REST}

    {MAE_REFERENCES}

    >>> import numpy as np, emphasis_tf
    >>> z = np.array([[0.0, 0.0]], "float32")
    >>> losses = emphasis_tf.mae_loss(np.array([1]), z, from_logits=True)
    >>> np.asarray(losses, dtype=float).round(4).tolist()
    [1.0]
    """
    return _functional(MAE, **_arguments(mae_loss, locals()))


@_document
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

    {INPUTS}
        {Q_ARG}
        {OPTIONS}
    {REST}

    {GCE_REFERENCES}

    >>> import numpy as np, emphasis_tf
    >>> z = np.array([[0.0, 0.0]], "float32")
    >>> losses = emphasis_tf.gce_loss(np.array([1]), z, q=1.0, from_logits=True)
    >>> np.round(np.asarray(losses), 4).tolist()
    [0.5]
    """
    return _functional(GCE, **_arguments(gce_loss, locals()))


class _Precomputed(keras.losses.Loss):
    """Applies Keras's own reduction (masks, sample weights, distribution scaling)."""

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return y_pred


class _EmphasisLoss(keras.losses.Loss):
    """A scheme as a Keras loss, in Keras's ``LossFunctionWrapper`` pattern.

    The keyword arguments are the configuration: ``get_config`` returns them (the
    scheme's as :meth:`emphasis.Scheme.config` gives them) and ``from_config`` passes
    them back. The scheme (``_SCHEME``, built from the scheme's keywords) goes through
    the shared pipeline: labels, rows, custom gradient, then Keras's reduction.
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
        options = {k: kwargs.pop(k) for k in self._OPTIONS}
        self._scheme = self._SCHEME(**kwargs)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._options = _options(self._scheme, from_logits, axis, ignore_class, **options)
        self.from_logits, self.axis, self.ignore_class, self.global_normalize = self._options[1:]
        names = ("from_logits", "axis", "ignore_class", *self._OPTIONS)
        self._config = {k: getattr(self, k) for k in names}
        self._config["dtype"] = None if dtype is None else self._dtype_policy.name
        self._config.update(self._scheme.config())
        self._reducer = _Precomputed(name=self.name, reduction=reduction, dtype=dtype)

    @property
    def scheme(self) -> Scheme:
        """The :mod:`emphasis` scheme this loss applies."""
        return self._scheme

    def get_config(self) -> dict[str, Any]:
        """The configuration; a tensor or ``keras.Variable`` hyperparameter is stored as
        its current value (a float): the loss rebuilt from it holds a number."""
        config = {**super().get_config(), **self._config}
        for name in self._scheme.HYPERPARAMETERS:
            if not is_concrete_number(config[name]):
                config[name] = float(ops.convert_to_numpy(ops.convert_to_tensor(config[name])))
        return config

    def _per_example(self, y_true: Any, y_pred: Any, sample_weight: Any) -> Any:
        mask = get_keras_mask(y_pred)
        # Keras convention: the loss computes in its dtype (float32 under mixed precision).
        result = per_example_losses(y_true, y_pred, self._options, sample_weight, mask, self.dtype)
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


@keras.saving.register_keras_serializable(package="emphasis")
@_document
class GRLoss(_EmphasisLoss):
    """Gradient rescaling (Wang et al.): cross entropy's logit gradient, rescaled.

    {GR_FORMULA}

    Args:
        {GR_ARGS}
        {OPTIONS}
        global_normalize: under ``tf.distribute`` (several replicas in sync), normalise
            over the global batch by all-reducing the normaliser, so the objective
            does not depend on the number of replicas. Has no effect otherwise.
        reduction: Keras's reductions: ``"sum_over_batch_size"`` (default), ``"sum"``,
            ``"mean"``, ``"mean_with_sample_weight"``, ``"none"`` or None.
        name: as for ``keras.losses.Loss``.
        dtype: as for ``keras.losses.Loss`` (defaults to floatx; float16/bfloat16
            logits under a mixed policy are cast to it).

    Labels are integer class indices or one-hot rows (decided by shape).
    ``sample_weight`` (``model.fit(class_weight=...)`` included) weights both the
    loss and GR's normalising mean, as class weights do in the core. ``get_config``
    stores ``reported_loss`` as its name or ``{"name": "gce", "q": q}``, and a
    hyperparameter given as a 0-d tensor or ``keras.Variable`` (a schedule: assigning
    it changes the gradient without retracing) as its current value, a float.

    {GR_REFERENCES}

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
        super().__init__(**_arguments(GRLoss.__init__, locals()))


@keras.saving.register_keras_serializable(package="emphasis")
@_document
class CCELoss(_EmphasisLoss):
    """Categorical cross entropy ``-log p`` with the core's stable logit gradient.

    Value and gradient equal ``keras.losses.SparseCategoricalCrossentropy`` (and
    ``CategoricalCrossentropy`` for one-hot labels); arguments as :class:`GRLoss`.

    {CCE_REFERENCES}

    >>> import numpy as np, emphasis_tf
    >>> loss = emphasis_tf.CCELoss(from_logits=True)
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.0]], "float32"))), 4)
    0.6931
    """

    _SCHEME = CCE  # __init__: _EmphasisLoss's; Keras names the loss "cce_loss"


@keras.saving.register_keras_serializable(package="emphasis")
@_document
class MAELoss(_EmphasisLoss):
    """Mean absolute error ``2 (1 - p)`` of the softmax against the one-hot label.

    ``w(p) = 4 p (1 - p)``: robust to label noise, slow to fit. Arguments as
    :class:`GRLoss`.

    {MAE_REFERENCES}

    >>> import numpy as np, emphasis_tf
    >>> loss = emphasis_tf.MAELoss(from_logits=True)
    >>> round(float(loss(np.array([1]), np.array([[0.0, 0.0]], "float32"))), 4)
    1.0
    """

    _SCHEME = MAE  # __init__: _EmphasisLoss's; Keras names the loss "mae_loss"


@keras.saving.register_keras_serializable(package="emphasis")
@_document
class GCELoss(_EmphasisLoss):
    """Generalised cross entropy ``(1 - p^q) / q``, q in [0, 1] (Zhang & Sabuncu 2018).

    ``w(p) = 2 p^q (1 - p)``. Agrees with
    ``keras.losses.CategoricalGeneralizedCrossEntropy`` (probabilities in, 0 < q < 1)
    on hard labels. Other arguments as :class:`GRLoss`.

    {GCE_REFERENCES}

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
        super().__init__(**_arguments(GCELoss.__init__, locals()))
