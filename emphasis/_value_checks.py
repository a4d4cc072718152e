"""Checks on the values of a batch, written once for the core and every adapter.

The predicates use only comparisons and :class:`emphasis.kernel.ArrayNamespace`
functions, so they run on NumPy arrays, torch tensors, ``keras.ops`` tensors and
JAX tracers alike and return boolean flags per example. The messages take the
framework's argument names (:class:`Names`). What stays in an adapter is *when*
the flags are read: eagerly (one host read), as an in-graph assert, or not at all
(``vmap``, ``jit``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

# A module, not names: _validation imports this module's messages in turn.
from emphasis import _validation as validation

__all__ = [
    "NUMPY_NAMES",
    "Names",
    "Problem",
    "bad_logit_rows",
    "bad_weights",
    "beyond_int32",
    "check_labels_fit_int32",
    "hyperparameter_problems",
    "ignore_index_matches",
    "label_message",
    "label_problem",
    "labels_out_of_range",
    "log_peak_weight",
    "logits_message",
    "logits_problem",
    "logits_row_message",
    "not_one_hot",
    "one_hot_message",
    "one_hot_problem",
    "raise_first",
    "weight_message",
    "weight_overflow_message",
    "weight_overflow_problem",
    "weight_problem",
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


def beyond_int32(labels: Any) -> Any:
    """Labels that int32 cannot hold (plain comparisons: any array kind)."""
    return (labels > 2**31 - 1) | (labels < -(2**31))


def check_labels_fit_int32(labels: Any, names: Names = NUMPY_NAMES) -> None:
    """Refuse concrete (NumPy) labels that int32, the label dtype of TensorFlow/Keras and of
    JAX without x64, cannot hold: the cast would silently change them (2**32 + 1 becomes
    class 1). Framework tensors pass unchanged (their own checks flag such values)."""
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu":
        return
    outside = beyond_int32(labels)
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


def weight_message(
    name: str = "weight", example: Any = None, value: Any = None, entry: str = "example"
) -> str:
    got = "" if example is None else f", got {value} ({entry} {example})"
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


# -- problems: the flags of one check and how to word them -------------------------------------


class Problem(NamedTuple):
    """One value check, for an adapter to read eagerly, assert in a graph or skip.

    ``flags`` (K,) marks the bad entries (examples, classes, or the one entry of a tensor
    hyperparameter); ``shown`` (K, ...) holds what the message quotes; ``message(i, value)``
    words the first bad entry ``i``, ``value`` being ``shown[i]`` read to the host (a
    number, a list or a NumPy array); ``summary`` is the message when no value can be read
    (an assert inside a compiled graph).
    """

    flags: Any
    shown: Any
    message: Callable[[int, Any], str]
    summary: str


def raise_first(problems: list[Problem], failed: list[bool], host: Callable[[Any], Any]) -> None:
    """ValueError for the first problem that ``failed`` (one flag each, already read),
    naming its first bad entry; ``host`` reads a framework array (NumPy, lists, numbers)."""
    for problem, bad in zip(problems, failed, strict=True):
        if bad:
            i = int(np.argmax(np.ravel(host(problem.flags))))
            raise ValueError(problem.message(i, host(problem.shown[i])))


def label_problem(
    bad: Any, labels: Any, num_classes: int, ignore_index: Any, names: Names = NUMPY_NAMES
) -> Problem:
    """``bad`` (M,) labels (as given, in ``labels``) outside [0, num_classes)."""

    def message(i: int, value: Any) -> str:
        return label_message(num_classes, ignore_index, value, i, names)

    rule = label_message(num_classes, ignore_index, None, names=names)
    return Problem(bad, labels, message, f"{names.labels}: class index out of range ({rule})")


def one_hot_problem(bad: Any, rows: Any, names: Names = NUMPY_NAMES) -> Problem:
    """``bad`` (M,) label rows (``rows``, (M, C)) that are not one-hot."""
    return Problem(
        bad, rows, lambda i, row: one_hot_message(names, i, row), one_hot_message(names, None)
    )


def logits_problem(bad: Any, rows: Any, names: Names = NUMPY_NAMES) -> Problem:
    """``bad`` (M,) logit rows (``rows``, (M, C)), from :func:`bad_logit_rows`."""
    summary = f"{names.logits}: NaN or +inf logits, or a counted row of only -inf"
    return Problem(bad, rows, lambda i, row: logits_row_message(row, i, names), summary)


def weight_problem(weights: Any, name: str = "weight", entry: str = "example") -> Problem:
    """Weights (K,) that are NaN, negative or +inf; ``entry`` says what K counts."""

    def message(i: int, value: Any) -> str:
        return weight_message(name, i, value, entry)

    return Problem(bad_weights(weights), weights, message, weight_message(name))


def hyperparameter_problems(hyper: dict[str, Any], dtype_name: str, xp: Any) -> list[Problem]:
    """The checks of hyperparameters in a ``dtype_name`` computation.

    Numbers (in range: the scheme checked them) that the dtype cannot hold are refused now
    (ValueError); each tensor (0-d) gives two problems of shape (1,): out of its range, and
    beyond the largest number of the dtype (where it would become inf, and inf * 0 NaN).
    """
    v = validation
    problems = []
    largest = v.unrepresentable_message("", math.inf, dtype_name).removesuffix(", got inf")
    for name, value in hyper.items():
        if v.is_concrete_number(value):
            v.check_representable(name, value, dtype_name)
            continue
        shown = xp.reshape(value, (1,))
        out_of_range = functools.partial(_quoting, v.range_message, name)
        too_large = functools.partial(
            _quoting, v.unrepresentable_message, name, dtype_name=dtype_name
        )
        problems += [
            Problem(
                v.hyperparameter_out_of_range(name, shown),
                shown,
                out_of_range,
                f"{name} must be {v.expected_range(name)}",
            ),
            Problem(
                v.hyperparameter_unrepresentable(shown, dtype_name),
                shown,
                too_large,
                name + largest,
            ),
        ]
    return problems


def _quoting(
    message: Callable[..., str], name: str, i: int, value: Any, dtype_name: str | None = None
) -> str:
    """A hyperparameter's message about its (one) entry ``value``."""
    return message(name, value) if dtype_name is None else message(name, value, dtype_name)


def weight_overflow_problem(beta: Any, lam: Any, dtype_name: str, xp: Any) -> list[Problem]:
    """GR's exp transform without normalisation: the largest weight exp(beta max h) must be
    finite in ``dtype_name`` (an infinite weight gives NaN gradients). Numbers raise now
    (ValueError); tensors give one problem of shape (1,)."""
    log_max = math.log(float(np.finfo(dtype_name).max))

    def message(i: int = 0, value: Any = None) -> str:
        return weight_overflow_message(beta, lam, dtype_name)

    if validation.is_concrete_number(lam):
        if validation.is_concrete_number(beta):
            if log_peak_weight(beta, lam) > log_max:
                raise ValueError(message())
            return []
        lam = xp.full_like(beta, float(lam))
    peak = xp.reshape(log_peak_weight(beta, lam, xp), (1,))
    summary = f"beta: exp(beta max h) overflows {dtype_name} with normalize=False"
    return [Problem(peak > log_max, peak, message, summary)]
