"""Docstring text that several adapters share, written once and filled in at import.

A docstring line that holds only ``{NAME}`` is replaced by the block ``NAME``,
indented like the placeholder; blocks come from :data:`BLOCKS` or from the
keyword arguments of :func:`document`. Inside the text, ``{SCALAR}`` is replaced by
the framework's phrase for a hyperparameter that may be an array (keyword
``scalar``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

__all__ = ["BLOCKS", "document"]

F = TypeVar("F", bound=Callable[..., object])

_PLACEHOLDER = re.compile(r"^( *)\{([A-Z_]+)\}\n", re.MULTILINE)

#: The shared blocks, unindented.
BLOCKS: dict[str, str] = {
    "GR_FORMULA": r"""With ``p = softmax(z)[y]`` the weight is ``w(p) = exp(beta p^lam (1 - p))``
(``transform="exp"``) or ``beta p^lam (1 - p)`` (``"identity"``), and the logit
gradient of example i is the cross-entropy gradient rescaled to L1 norm ``w`` (Eq. (6)):

.. math::
    \frac{\partial L_i}{\partial z_i} = \frac{w_i / \bar w}{2}\, d_i\,
    \frac{1 - p_i}{(1 - p_i) + \epsilon/2}, \qquad
    d_{ij} = \mathrm{softmax}(z_{i,\neg y_i})_j \ (j \ne y_i), \quad d_{iy_i} = -1,

where ``\bar w`` is the mean weight over the valid examples of the batch
(``normalize=True``; weights treated as constants, 1 otherwise) and the eps factor
fades the push on examples with ``1 - p`` below about ``eps``. GR has no elementary
loss: the value returned is the ``reported_loss`` (CCE by default), whose own
derivative is not GR's gradient.""",
    "GR_ARGS": """beta: emphasis spread, >= 0 (the paper uses 2 to 16); {SCALAR}.
lam: emphasis focus exponent, >= 0 (focus ``lam / (1 + lam)``); {SCALAR}.
transform: ``"exp"`` (the paper's g) or ``"identity"``.
normalize: divide the weights by their mean over the valid examples of the batch
    (the authors' code does; keeps large beta usable at ordinary learning rates).
eps: the authors' stabiliser (1e-6, their Caffe layer's value), >= 0; 0 is exact
    Eq. (6); {SCALAR}.
reported_loss: the value returned: ``"cce"``, ``"mae"``, ``"gce"`` or an
    ``emphasis.CCE()``, ``MAE()``, ``GCE(q)`` instance.""",
    "Q_ARG": """q: exponent in [0, 1] (q = 0 is CCE, q = 1 half of MAE); {SCALAR}.""",
    "GR_REFERENCES": """References:
    Wang, Hua, Kodirov, Robertson, "Robust discriminative representation learning
    via gradient rescaling: an emphasis regularisation perspective" (2019);
    "Derivative Manipulation for General Example Weighting", arXiv:1905.11233.""",
    "CCE_REFERENCES": """References:
    Wang et al., "Derivative Manipulation for General Example Weighting",
    arXiv:1905.11233, Eq. (4).""",
    "MAE_REFERENCES": """References:
    Ghosh, Kumar, Sastry, "Robust loss functions under label noise for deep neural
    networks", AAAI 2017; Wang et al., arXiv:1905.11233, Eq. (4).""",
    "GCE_REFERENCES": """References:
    Zhang & Sabuncu, "Generalized cross entropy loss for training deep neural
    networks with noisy labels", NeurIPS 2018.""",
}


def document(scalar: str = "", **blocks: str) -> Callable[[F], F]:
    r"""A decorator that fills the ``{NAME}`` lines of a docstring.

    Under ``python -OO`` docstrings are None and the decorator does nothing.

    >>> def f(x): ...
    >>> f.__doc__ = "Args:\n    {ARGS}\n"
    >>> print(document(ARGS="x: a number, {SCALAR}.", scalar="or an array")(f).__doc__)
    Args:
        x: a number, or an array.
    <BLANKLINE>
    """
    table = {**BLOCKS, **blocks}

    def fill(match: re.Match[str]) -> str:
        indent = match.group(1)
        text = table[match.group(2)].replace("{SCALAR}", scalar).removesuffix("\n")
        return "".join(f"{indent}{line}\n" if line else "\n" for line in text.split("\n"))

    def decorate(obj: F) -> F:
        if obj.__doc__:
            obj.__doc__ = _PLACEHOLDER.sub(fill, obj.__doc__)
        return obj

    return decorate
