"""Argument checks shared by the core and the adapters.

Every check raises an error that names the argument and says what was expected.
Checks on hyperparameters run only on concrete Python/NumPy numbers: an adapter may
pass a framework tensor (a learning-rate-style schedule, a traced value), which is
checked by the adapter where that is possible without a device round trip.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from emphasis._value_checks import (
    bad_weights,
    label_message,
    labels_out_of_range,
    logits_message,
    weight_message,
)

REDUCTIONS = ("mean", "sum", "none")
TRANSFORMS = ("exp", "identity")


def is_concrete_number(value: Any) -> bool:
    """True for Python and NumPy real scalars (including 0-d arrays), False for tensors."""
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Real):
        return True
    return isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"


#: The range (low, high) of each scheme hyperparameter; high None: unbounded. The core
#: checks concrete numbers against it; adapters check tensor hyperparameters against it.
HYPERPARAMETER_RANGES: dict[str, tuple[float, float | None]] = {
    "beta": (0.0, None),
    "lam": (0.0, None),
    "eps": (0.0, None),
    "q": (0.0, 1.0),
}


def expected_range(name: str) -> str:
    """'>= 0' or 'in [0, 1]': the range of hyperparameter ``name``, for error messages."""
    low, high = HYPERPARAMETER_RANGES[name]
    return f">= {low:g}" if high is None else f"in [{low:g}, {high:g}]"


def check_hyperparameter(name: str, value: Any) -> Any:
    """Check a concrete number against ``HYPERPARAMETER_RANGES[name]``; return it as float.

    Framework tensors (anything with a ``shape`` and a ``dtype`` that is not NumPy's) are
    returned unchanged, for the adapter to check. Everything else that is not a real
    scalar (bools, strings, lists, complex numbers, Decimals, NumPy arrays that are not
    0-d) is refused by name: none of them may silently skip the range check.
    """
    if not is_concrete_number(value):
        if isinstance(value, (np.ndarray, np.generic)):
            if value.ndim != 0:
                raise ValueError(
                    f"{name} must be a real scalar, got an array of shape {value.shape}"
                )
            raise TypeError(f"{name} must be a real number, got dtype {value.dtype}")
        if isinstance(value, bool) or not (hasattr(value, "shape") and hasattr(value, "dtype")):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        return value
    number = float(value)
    if math.isnan(number) or math.isinf(number):  # math, not NumPy: torch.compile traces it
        raise ValueError(f"{name} must be a finite number, got {number}")
    if bool(hyperparameter_out_of_range(name, number)):
        raise ValueError(range_message(name, number))
    return number


def hyperparameter_out_of_range(name: str, value: Any) -> Any:
    """Whether ``value`` lies outside ``HYPERPARAMETER_RANGES[name]`` or is not finite.

    Plain comparisons only, so ``value`` may be a number, a 0-d tensor or a traced array
    (the result is then a boolean of its kind, for an in-graph check).
    """
    low, high = HYPERPARAMETER_RANGES[name]
    bad = (value != value) | (value < low) | (value == math.inf)  # NaN, below, +inf
    return bad | (value > high) if high is not None else bad


def range_message(name: str, value: Any) -> str:
    return f"{name} must be {expected_range(name)}, got {float(value):g}"


def hyperparameter_unrepresentable(value: Any, dtype_name: str) -> Any:
    """Whether ``value`` lies beyond the largest finite number of ``dtype_name`` (a NumPy
    float dtype name, the dtype the adapter computes in): beta = 1e39 in float32 is inf
    there, and the gradient NaN. Plain comparisons, like :func:`hyperparameter_out_of_range`:
    ``value`` may be a number, a 0-d tensor or a traced array."""
    largest = float(np.finfo(dtype_name).max)
    return (value > largest) | (value < -largest)


def unrepresentable_message(name: str, value: Any, dtype_name: str) -> str:
    """'beta must be at most 3.4e+38 to compute in float32, got 1e+39'."""
    largest = float(np.finfo(dtype_name).max)
    return f"{name} must be at most {largest:.2g} to compute in {dtype_name}, got {float(value):g}"


def check_representable(name: str, value: Any, dtype_name: str) -> None:
    """Refuse a concrete number that ``dtype_name`` cannot hold (framework tensors and
    traced values pass: the adapter checks those where it can)."""
    if is_concrete_number(value) and bool(hyperparameter_unrepresentable(float(value), dtype_name)):
        raise ValueError(unrepresentable_message(name, value, dtype_name))


def check_ignore_index(value: Any, name: str = "ignore_index", optional: bool = False) -> Any:
    """An integer label to ignore (or None when ``optional``); bools are refused."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        expected = "an int or None" if optional else "an int"
        raise TypeError(f"{name} must be {expected}, got {value!r}")
    return value


def check_global_normalisation(name: str, value: Any, normalize: bool) -> None:
    """Normalising over the global batch (an all-reduce) needs a scheme that normalises."""
    if value and not normalize:
        raise ValueError(
            f"{name} normalises GR's weights over the global batch (it all-reduces the "
            "normaliser); it needs normalize=True"
        )


def check_bool(name: str, value: Any) -> bool:
    """``value`` when it is True or False (NumPy bools too); TypeError naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_reduction(reduction: Any) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {', '.join(repr(r) for r in REDUCTIONS)}, got {reduction!r}"
        )
    return str(reduction)


def check_transform(transform: Any) -> str:
    if transform not in TRANSFORMS:
        raise ValueError(
            f"transform must be one of {', '.join(repr(t) for t in TRANSFORMS)}, got {transform!r}"
        )
    return str(transform)


def check_logits_values(logits: np.ndarray) -> None:
    """Reject NaN and +inf logits (-inf is allowed: a class the model rules out)."""
    if np.isnan(logits).any():
        raise ValueError(logits_message("nan"))
    if np.isposinf(logits).any():
        raise ValueError(logits_message("posinf"))


def check_label_values(labels: np.ndarray, num_classes: int, ignore_index: int) -> np.ndarray:
    """Return the mask of valid (not ignored) labels; raise on labels out of range."""
    valid = labels != ignore_index
    bad = labels_out_of_range(labels, valid, num_classes)
    if bad.any():
        raise ValueError(label_message(num_classes, ignore_index, int(labels[bad].flat[0])))
    return np.asarray(valid)


def check_class_weight(value: Any, num_classes: int) -> np.ndarray | None:
    if value is None:
        return None
    weight: np.ndarray = np.asarray(value)
    if weight.dtype.kind not in "iuf":
        raise TypeError(
            f"weight must be a real array of shape ({num_classes},), got {weight.dtype}"
        )
    if weight.shape != (num_classes,):
        raise ValueError(
            f"weight must have shape ({num_classes},) (one per class), got {weight.shape}"
        )
    if bad_weights(weight).any():
        raise ValueError(weight_message())
    return weight
