"""Example-weighting schemes: CCE, MAE, GCE and gradient rescaling (GR).

Every scheme assigns an example with input-to-label relevance score
``p = softmax(z)[y]`` the weight ``w(p)``, the L1 norm of its logit gradient
(Eq. (6) of Wang et al.). All four are one family (Eq. (7)):

=========================  ===========================  =================
scheme                     w(p)                         emphasis focus
=========================  ===========================  =================
``CCE()``                  2 (1 - p)                    0
``MAE()``                  4 p (1 - p)                  1/2
``GCE(q)``                 2 p^q (1 - p)                q / (1 + q)
``GR(beta, lam)``          exp(beta p^lam (1 - p))      lam / (1 + lam)
``GR(..., "identity")``    beta p^lam (1 - p)           lam / (1 + lam)
=========================  ===========================  =================

so CCE, MAE and GCE(q) are GR with ``transform="identity"`` and
(beta, lam) = (2, 0), (4, 1) and (2, q). The paper prints beta = 1 for GCE in
Eq. (7); with w_GCE = 2 p^q (1 - p) as defined in its Eq. (4) the factor is 2,
so the printed 1 is an erratum.

The formulas are written once, in log space, against an array namespace ``xp``
(NumPy by default; the adapters pass torch, TensorFlow or JAX namespaces):
``log_weight`` and ``loss_value`` take ``log p`` and ``log(1 - p)``, which the
kernel computes without cancellation.

References:
    Wang, Hua, Kodirov, Robertson. "Robust discriminative representation learning
    via gradient rescaling: an emphasis regularisation perspective" (2019); later
    "Derivative Manipulation for General Example Weighting", arXiv:1905.11233.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from emphasis._validation import (
    check_bool,
    check_hyperparameter,
    check_transform,
    is_concrete_number,
)

__all__ = ["CCE", "GCE", "GR", "MAE", "Scheme"]


def _power_log(exponent: Any, log_x: Any, xp: Any) -> Any:
    """``exponent * log_x`` with ``0 * log(0) = 0``, so that ``x**0 == 1`` at x = 0."""
    if is_concrete_number(exponent):
        return xp.zeros_like(log_x) if exponent == 0 else exponent * log_x
    return xp.where(exponent == 0, xp.zeros_like(log_x), exponent * log_x)


class Scheme:
    """Base class of the weighting schemes.

    A scheme is the GR family member ``(beta, lam, transform)`` together with how
    the batch uses its weights (``normalize``, ``eps``) and the loss value it
    reports. Subclasses are frozen dataclasses that only store configuration.
    """

    name: ClassVar[str] = "scheme"
    #: The fields that may be arrays or tensors (a schedule, a traced value); the other
    #: fields are hashable settings that change the computation's structure.
    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = ()

    # -- split into a static key and hyperparameters, and rebuild -------------------------
    def kwargs(self) -> dict[str, Any]:
        """The constructor's keyword arguments: ``type(s)(**s.kwargs()) == s``.

        >>> GCE(q=0.5).kwargs()
        {'q': 0.5}
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def config(self) -> dict[str, Any]:
        """:meth:`kwargs` as plain values: a nested scheme (GR's reported loss) becomes its
        name, or ``{"name": ..., **settings}``, which the constructors accept again.

        >>> GR(reported_loss=GCE(q=0.5)).config()["reported_loss"]
        {'name': 'gce', 'q': 0.5}
        """
        config = self.kwargs()
        for key, value in config.items():
            if isinstance(value, Scheme):
                inner = value.config()
                config[key] = {"name": value.name, **inner} if inner else value.name
        return config

    def split(self) -> tuple[Hashable, dict[str, Any]]:
        """``(static key, hyperparameters)``: what a compiled program is specialised on
        (hashable: the class and its settings) and the values it takes as arguments.

        Adapters pass the key as a static argument (a ``torch.autograd.Function``
        argument, a ``jax.custom_jvp`` nondiff argument) and the hyperparameters as
        tensors or traced arrays; :meth:`rebuild` joins them again.

        >>> key, hyper = GR(beta=8.0, lam=0.5).split()
        >>> hyper
        {'beta': 8.0, 'lam': 0.5, 'eps': 1e-06}
        >>> Scheme.rebuild(key, hyper) == GR(beta=8.0, lam=0.5)
        True
        """
        kwargs = self.kwargs()
        hyper = {name: kwargs.pop(name) for name in self.HYPERPARAMETERS}
        return (type(self), tuple(kwargs.items())), hyper

    @staticmethod
    def rebuild(key: Hashable, hyperparameters: Mapping[str, Any]) -> Scheme:
        """The scheme of :meth:`split`'s ``key`` with ``hyperparameters`` (any arrays).

        No validation runs: the values are tensors or tracers that the caller checks
        where its framework allows (and the split scheme was validated when built).
        This keeps the rebuild traceable by ``torch.compile`` and ``jax.jit``.
        """
        cls: type[Scheme]
        static: tuple[tuple[str, Any], ...]
        cls, static = key  # type: ignore[misc]
        scheme = object.__new__(cls)
        for name, value in (*static, *hyperparameters.items()):
            object.__setattr__(scheme, name, value)
        return scheme

    # The GR-form parameters of Eq. (7); subclasses define them.
    @property
    def beta(self) -> Any:
        raise NotImplementedError

    @property
    def lam(self) -> Any:
        raise NotImplementedError

    @property
    def transform(self) -> str:
        return "identity"

    @property
    def normalize(self) -> bool:
        """Whether weights are normalised to mean 1 over the valid examples of a batch."""
        return False

    @property
    def eps(self) -> Any:
        """The authors' stabiliser in ``2 (1 - p) + eps``; 0 means exact Eq. (6)."""
        return 0.0

    @property
    def focus(self) -> Any:
        """Emphasis focus: the p in [0, 1] where w(p) is largest, ``lam / (1 + lam)``.

        (With beta = 0 every p has the same weight; the value is then the focus of
        the family member, ``lam / (1 + lam)``, by convention.)
        """
        lam = self.lam
        if is_concrete_number(lam):
            return float(lam) / (1.0 + float(lam))
        return lam / (1 + lam)  # a tensor stays a tensor (no host sync)

    # -- the mathematics, written once -------------------------------------------------
    def log_weight(self, log_p: Any, log_1mp: Any, xp: Any = np) -> Any:
        """``log w`` from ``log p`` and ``log(1 - p)``, elementwise.

        ``h = p^lam (1 - p)`` is formed as ``exp(lam log p + log(1 - p))``; the exp
        transform returns ``beta h`` (= log w) and the identity transform
        ``log(beta) + log h``, so the weights can be normalised in log space
        without overflow (exp(beta h) overflows float32 at beta > 88).
        """
        log_h = _power_log(self.lam, log_p, xp) + log_1mp
        if self.transform == "exp":
            return self.beta * xp.exp(log_h)
        beta = self.beta
        if is_concrete_number(beta):
            return log_h + math.log(beta) if beta > 0 else xp.full_like(log_h, -math.inf)
        return log_h + xp.log(beta)

    def loss_value(self, log_p: Any, log_1mp: Any, xp: Any = np) -> Any:
        """The per-example loss value this scheme reports (elementwise)."""
        raise NotImplementedError

    def weight(self, p: npt.ArrayLike) -> np.ndarray:
        """The weight w(p) of Eq. (7), vectorised, exact at p = 0 and p = 1.

        Args:
            p: relevance scores in [0, 1], any shape.

        Returns:
            Array of w(p), same shape as ``p``, float64.

        >>> import emphasis
        >>> emphasis.CCE().weight([0.0, 0.5, 1.0])
        array([2., 1., 0.])
        """
        p = np.asarray(p, dtype=np.float64)
        if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
            raise ValueError("p must hold relevance scores in [0, 1]")
        with np.errstate(divide="ignore"):
            log_w = self.log_weight(np.log(p), np.log1p(-p))
        return np.asarray(np.exp(log_w))


def _cce_loss(log_p: Any) -> Any:
    return -log_p


@dataclass(frozen=True)
class CCE(Scheme):
    """Categorical cross entropy: ``L = -log p``, ``w(p) = 2 (1 - p)``, focus 0.

    >>> CCE().focus
    0.0
    """

    name: ClassVar[str] = "cce"

    @property
    def beta(self) -> float:
        return 2.0

    @property
    def lam(self) -> float:
        return 0.0

    def loss_value(self, log_p: Any, log_1mp: Any, xp: Any = np) -> Any:
        return _cce_loss(log_p)


@dataclass(frozen=True)
class MAE(Scheme):
    """Mean absolute error ``L = ||onehot(y) - softmax(z)||_1 = 2 (1 - p)``.

    ``w(p) = 4 p (1 - p)``, focus 1/2.

    >>> MAE().weight([0.5])
    array([1.])
    """

    name: ClassVar[str] = "mae"

    @property
    def beta(self) -> float:
        return 4.0

    @property
    def lam(self) -> float:
        return 1.0

    def loss_value(self, log_p: Any, log_1mp: Any, xp: Any = np) -> Any:
        return 2.0 * xp.exp(log_1mp)


@dataclass(frozen=True)
class GCE(Scheme):
    """Generalised cross entropy (Zhang & Sabuncu 2018): ``L = (1 - p^q) / q``.

    ``w(p) = 2 p^q (1 - p)``, focus ``q / (1 + q)``. q = 0 is CCE; q = 1 gives
    ``1 - p``, half of MAE.

    Args:
        q: exponent in [0, 1].

    >>> GCE(q=0.5).focus
    0.3333333333333333
    """

    q: Any = 0.7
    name: ClassVar[str] = "gce"
    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = ("q",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "q", check_hyperparameter("q", self.q))

    @property
    def beta(self) -> float:
        return 2.0

    @property
    def lam(self) -> Any:
        return self.q

    def loss_value(self, log_p: Any, log_1mp: Any, xp: Any = np) -> Any:
        """``(1 - p^q) / q`` as ``-log p * expm1(x) / x`` with ``x = q log p``.

        The ratio ``expm1(x) / x`` is close to 1 for small x however few digits x
        has, so a tiny q (even a subnormal one in float32) gives ``-log p`` instead
        of dividing a rounded ``1 - p^q`` by q. At p = 0 the value is ``1 / q``.
        """
        q = self.q
        x = _power_log(q, log_p, xp)
        nonzero = x != 0
        safe_x = xp.where(nonzero, x, xp.ones_like(x))
        ratio = xp.where(nonzero, xp.expm1(safe_x) / safe_x, xp.ones_like(x))
        at_zero = (
            (1.0 / q if q > 0 else math.inf)
            if is_concrete_number(q)
            else (xp.where(q > 0, 1.0 / xp.where(q > 0, q, xp.ones_like(q)), math.inf))
        )
        p_is_zero = log_p == -math.inf
        return xp.where(
            p_is_zero,
            at_zero + xp.zeros_like(log_p),
            -xp.where(p_is_zero, xp.zeros_like(log_p), log_p) * ratio,
        )


_REPORTED = {"cce": CCE, "mae": MAE, "gce": GCE}


def _reported_scheme(value: Any) -> Scheme:
    if isinstance(value, (CCE, MAE, GCE)):
        return value
    if isinstance(value, str) and value.lower() in _REPORTED:
        return _REPORTED[value.lower()]()
    if isinstance(value, Mapping) and value.get("name") in _REPORTED:  # Scheme.config()
        scheme = _REPORTED[value["name"]]
        settings = {k: v for k, v in value.items() if k != "name"}
        if set(settings) <= {f.name for f in dataclasses.fields(scheme)}:  # type: ignore[arg-type]
            return scheme(**settings)
    raise ValueError(
        "reported_loss must be 'cce', 'mae', 'gce', an instance CCE(), MAE(), GCE(q) or a "
        f"config such as {{'name': 'gce', 'q': q}}, got {value!r}"
    )


@dataclass(frozen=True)
class GR(Scheme):
    """Gradient rescaling: the logit gradient of CCE rescaled to L1 norm ``w(p)``.

    ``w(p) = exp(beta p^lam (1 - p))`` (``transform="exp"``, the paper's choice
    g = exp) or ``beta p^lam (1 - p)`` (``transform="identity"``). The emphasis
    focus ``lam / (1 + lam)`` says which examples get most weight; beta sets the
    emphasis spread (how unequal the weights are).

    GR has no elementary loss (the integral of its gradient diverges at p = 1);
    the value it reports is the "empirical loss" ``reported_loss`` (Table 1 of the
    paper), CCE by default; only the gradient is GR's.

    Args:
        beta: spread, >= 0.
        lam: focus exponent, >= 0.
        transform: ``"exp"`` or ``"identity"``.
        normalize: normalise the weights of a batch to mean 1 over its valid
            examples, as the authors' released code does (weights treated as
            constants). This keeps beta in the tens usable at ordinary learning
            rates; without it the weights scale the learning rate by up to e^beta.
        eps: the authors' stabiliser (default 1e-6, their value): the gradient is
            ``(w/2) d (1 - p) / ((1 - p) + eps/2)``, which fades once ``1 - p``
            falls below about eps. GR is the only scheme whose weight does not vanish
            at p = 1, and eps is what stops it pushing on confident examples forever:
            measured on digits with 40% noise, eps=1e-6 ends at 94.6% test accuracy
            and eps=0 collapses to 9.6%. ``eps=0`` is exact Eq. (6).
        reported_loss: ``"cce"``, ``"mae"``, ``"gce"`` or a ``CCE()``, ``MAE()``,
            ``GCE(q)`` instance.

    With ``normalize=False, eps=0, transform="identity"``, (beta, lam) = (2, 0),
    (4, 1), (2, q) reproduce CCE, MAE and GCE(q) exactly.

    >>> GR(beta=8.0, lam=0.5).focus
    0.3333333333333333
    >>> float(GR(beta=8.0, lam=0.5).weight(1.0))
    1.0
    """

    beta: Any = 8.0
    lam: Any = 0.5
    transform: str = "exp"
    normalize: bool = True
    eps: Any = 1e-6
    reported_loss: Any = CCE()  # an instance, not a default_factory: Dynamo traces it
    name: ClassVar[str] = "gr"
    HYPERPARAMETERS: ClassVar[tuple[str, ...]] = ("beta", "lam", "eps")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "beta", check_hyperparameter("beta", self.beta))
        set_(self, "lam", check_hyperparameter("lam", self.lam))
        set_(self, "eps", check_hyperparameter("eps", self.eps))
        set_(self, "transform", check_transform(self.transform))
        set_(self, "normalize", check_bool("normalize", self.normalize))
        set_(self, "reported_loss", _reported_scheme(self.reported_loss))

    def loss_value(self, log_p: Any, log_1mp: Any, xp: Any = np) -> Any:
        return self.reported_loss.loss_value(log_p, log_1mp, xp)
