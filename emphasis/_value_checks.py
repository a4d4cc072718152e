"""Checks on the values of a batch, written once for the core and every adapter.

The predicates use only comparisons and :class:`emphasis.kernel.ArrayNamespace`
functions, so they run on NumPy arrays, torch tensors, ``keras.ops`` tensors and
JAX tracers alike and return boolean flags per example. The messages take the
framework's argument names (:class:`Names`). What stays in an adapter is *when*
the flags are read: eagerly (one host read), as an in-graph assert, or not at all
(``vmap``, ``jit``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "NUMPY_NAMES",
    "Names",
    "bad_logit_rows",
    "bad_weights",
    "check_labels_fit_int32",
    "ignore_index_matches",
    "label_message",
    "labels_out_of_range",
    "log_peak_weight",
    "logits_message",
    "logits_row_message",
    "not_one_hot",
    "one_hot_message",
    "weight_message",
    "weight_overflow_message",
]


class Names(NamedTuple):
    """How a framework names the arguments that a value check reports on."""

    logits: str = "logits"
    labels: str = "labels"
    ignore_index: str = "ignore_index"
    #: the label rule as the framework's messages word it (e.g. "must hold class indices")
    labels_must: str = "must be class indices"
    #: how to leave out an example whose logits are all -inf
    leave_out: str = "ignore it with ignore_index instead"


NUMPY_NAMES = Names()


# -- predicates ----------------------------------------------------------------------------


def bad_logit_rows(
    z_label: Any, log_p: Any, rest_sum: Any, valid: Any, *, ignored_too: bool = False
) -> Any:
    """(M,) rows whose loss is undefined, read off the forward pass (O(M), not O(M C)).

    NaN anywhere in a row, +inf off the label or every logit -inf make ``log p`` NaN;
    +inf at the label gives a silent p = 1, so it is read from ``z_label``. Any (M,)
    value that is NaN exactly when log p is may stand for ``log_p`` (an adapter may pass
    its per-example losses). Only ``valid`` rows are flagged, unless ``ignored_too``: an
    adapter whose kernel also differentiates ignored rows (torch) flags theirs too,
    except rows of only -inf, which stay allowed when ignored.
    """
    bad = (z_label == math.inf) | (log_p != log_p)
    if not ignored_too:
        return valid & bad
    dead = (z_label == -math.inf) & (rest_sum == 0)
    return bad & (valid | ~dead)


def labels_out_of_range(labels: Any, valid: Any, num_classes: int) -> Any:
    """(M,) valid labels outside [0, num_classes)."""
    return valid & ((labels < 0) | (labels >= num_classes))


def not_one_hot(target: Any, axis: int, xp: Any) -> Any:
    """Rows of ``target`` along ``axis`` that are not exactly one 1 and zeros elsewhere."""
    binary = (target == 0) | (target == 1)
    zeros, ones = xp.zeros_like(target), xp.ones_like(target)
    not_binary = xp.sum(xp.where(binary, zeros, ones), axis=axis) > 0
    return not_binary | (xp.sum(xp.where(target == 1, ones, zeros), axis=axis) != 1)


def bad_weights(weights: Any) -> Any:
    """Entries that are NaN, negative or +inf (plain comparisons: any array kind)."""
    return (weights != weights) | (weights < 0) | (weights == math.inf)


# -- messages ------------------------------------------------------------------------------


def logits_message(
    problem: str, names: Names = NUMPY_NAMES, example: Any = None, detail: str = ""
) -> str:
    """The message for bad logits: ``problem`` is ``"nan"``, ``"posinf"`` or ``"dead"``
    (a counted row of only -inf); ``example`` the first bad one, when known."""
    name = names.logits
    if problem == "dead":
        return (
            f"{name}: example {example} has every logit -inf; its softmax is undefined "
            f"({names.leave_out})"
        )
    verb = "contain" if name.endswith("s") else "contains"
    what = {"nan": "NaN", "posinf": "+inf"}[problem]
    at = "" if example is None else f" (example {example})"
    return f"{name} {verb} {what}{at}; expected finite values or -inf{detail}"


def logits_row_message(row: Any, example: int, names: Names = NUMPY_NAMES) -> str:
    """The message for one bad row (a NumPy-convertible vector of logits)."""
    row = np.asarray(row, dtype=np.float64).ravel()
    for problem, flags in (("nan", np.isnan(row)), ("posinf", np.isposinf(row))):
        if flags.any():
            what = "NaN" if problem == "nan" else "+inf"
            detail = f", but example {example} has {what} at class {int(np.argmax(flags))}"
            return logits_message(problem, names, example, detail)
    return logits_message("dead", names, example)


def label_message(
    num_classes: int,
    ignore_index: Any,
    value: Any,
    example: Any = None,
    names: Names = NUMPY_NAMES,
) -> str:
    """The message for a label out of range (``ignore_index`` None: nothing is ignored;
    ``value`` None: not known, as in an assert inside a graph)."""
    ignored = "" if ignore_index is None else f" or {names.ignore_index}={ignore_index}"
    got = "" if value is None else f", got {value}"
    at = "" if example is None else f" (example {example})"
    return f"{names.labels} {names.labels_must} in [0, {num_classes - 1}]{ignored}{got}{at}"


def one_hot_message(names: Names, example: int | None, row: Any = None) -> str:
    """``example`` None: not known, as in an assert inside a graph."""
    got = "" if row is None else f", got {np.ravel(np.asarray(row))[:8]}"
    which = "an example" if example is None else f"example {example}"
    return (
        f"{names.labels} has the shape of {names.logits}, so its rows are read as one-hot "
        f"labels along the class axis; {which} is not one-hot (exactly one 1 and "
        f"zeros elsewhere{got}): soft or probability targets are not supported, since the "
        "weights w(p) need one label per example"
    )


def check_labels_fit_int32(labels: Any, names: Names = NUMPY_NAMES) -> None:
    """Refuse concrete (NumPy) labels that int32, the label dtype of TensorFlow/Keras and of
    JAX without x64, cannot hold: the cast would silently change them (2**32 + 1 becomes
    class 1). Framework tensors pass unchanged (their own checks flag such values)."""
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu":
        return
    info = np.iinfo(np.int32)
    outside = (labels > info.max) | (labels < info.min)
    if outside.any():
        i = int(np.argmax(outside.ravel()))
        raise ValueError(
            f"{names.labels} must be class indices; example {i} holds {labels.ravel()[i]}, "
            "beyond int32, which the labels are computed in (a cast would change the class)"
        )


def ignore_index_matches(labels: Any, ignore_index: Any) -> bool:
    """Whether a label of this integer dtype can equal ``ignore_index`` at all: comparing
    uint8 labels with -100 would otherwise cast -100 to 156 and ignore class 156."""
    info = np.iinfo(np.dtype(str(labels.dtype).removeprefix("torch.")))
    return bool(info.min <= ignore_index <= info.max)


def weight_message(name: str = "weight", example: Any = None, value: Any = None) -> str:
    got = "" if example is None else f", got {value} (example {example})"
    return f"{name} must be finite and non-negative{got}"


# -- hyperparameters in a compute dtype ------------------------------------------------------


def log_peak_weight(beta: Any, lam: Any, xp: Any = None) -> Any:
    """``beta * max_p p^lam (1 - p) = beta lam^lam / (1 + lam)^(1 + lam)``: the largest log
    weight of GR's exp transform (at p = lam / (1 + lam)); concrete numbers when ``xp`` is
    None, arrays of ``xp`` otherwise.

    Formed as ``-lam log(1 + 1/lam) - log(1 + lam)`` in log space (no lam^lam overflow).

    >>> round(log_peak_weight(1000.0, 0.5), 1)
    384.9
    """
    if xp is None:
        lam = float(lam)
        log_h = -lam * math.log1p(1.0 / lam) - math.log1p(lam) if lam > 0 else 0.0
        return beta * math.exp(log_h)
    positive = lam > 0
    safe = xp.where(positive, lam, xp.ones_like(lam))
    log_lam, zero = xp.log(safe), xp.zeros_like(safe)  # log(1 + x) as logaddexp(0, log x)
    log_h = -safe * xp.logaddexp(zero, -log_lam) - xp.logaddexp(zero, log_lam)
    return beta * xp.exp(xp.where(positive, log_h, xp.zeros_like(log_h)))


def weight_overflow_message(beta: Any, lam: Any, dtype_name: str) -> str:
    """GR with normalize=False: exp(beta h) must stay finite in the compute dtype."""
    log_max = math.log(float(np.finfo(dtype_name).max))
    peak = log_peak_weight(1.0, lam)
    return (
        f"beta must be at most {log_max / peak:.4g} for normalize=False with lam={float(lam):g} "
        f"in {dtype_name} computation, got {float(beta):g}: the largest weight "
        f"exp(beta * {peak:.3g}) (= exp(beta max_p p^lam (1 - p))) would overflow "
        f"{dtype_name} beyond exp({log_max:.1f}); normalize=True computes the weights in log "
        "space and has no such limit"
    )
