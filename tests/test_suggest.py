"""Tests for emphasis.suggest (the paper's beta / lam settings)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emphasis.suggest import (
    CIFAR10_SETTINGS,
    CIFAR100_SETTINGS,
    MANY_CLASSES_THRESHOLD,
    suggest,
)

# (noise rate, beta, lam) straight from the paper.
TABLE_3_AND_2 = [  # CIFAR-10, ResNet-56 (r = 0: Table 2, lambda = 0 with beta = 2)
    (0.0, 2.0, 0.0),
    (0.2, 12.0, 0.5),
    (0.4, 16.0, 1.0),
    (0.6, 12.0, 2.0),
    (0.8, 12.0, 2.0),
]
TABLE_5_AND_2 = [  # CIFAR-100, ResNet-44, last column of Table 5
    (0.0, 2.0, 0.0),
    (0.2, 6.0, 0.3),
    (0.4, 6.0, 0.4),
    (0.6, 8.0, 0.5),
]


@pytest.mark.parametrize(("rate", "beta", "lam"), TABLE_3_AND_2)
@pytest.mark.parametrize("k", [2, 10, 14, MANY_CLASSES_THRESHOLD - 1])
def test_cifar10_values_exact(rate: float, beta: float, lam: float, k: int) -> None:
    result = suggest(rate, k)
    assert result == (beta, lam)
    assert isinstance(result, tuple)
    assert all(type(v) is float for v in result)


@pytest.mark.parametrize(("rate", "beta", "lam"), TABLE_5_AND_2)
@pytest.mark.parametrize("k", [MANY_CLASSES_THRESHOLD, 100, 1000])
def test_cifar100_values_exact(rate: float, beta: float, lam: float, k: int) -> None:
    assert suggest(rate, k) == (beta, lam)


def test_tables_are_exposed_and_read_only() -> None:
    assert dict(CIFAR10_SETTINGS) == {r: (b, l) for r, b, l in TABLE_3_AND_2}
    assert dict(CIFAR100_SETTINGS) == {r: (b, l) for r, b, l in TABLE_5_AND_2}
    with pytest.raises(TypeError):
        CIFAR10_SETTINGS[0.5] = (1.0, 1.0)  # type: ignore[index]


@pytest.mark.parametrize(
    ("rate", "k", "expected"),
    [
        (0.05, 10, (2.0, 0.0)),  # nearest 0
        (0.1, 10, (12.0, 0.5)),  # tie 0 / 0.2 -> higher
        (0.15, 10, (12.0, 0.5)),
        (0.29, 10, (12.0, 0.5)),
        (0.3, 10, (16.0, 1.0)),  # tie 0.2 / 0.4 -> higher, despite float rounding
        (0.3846, 14, (16.0, 1.0)),  # Clothing1M, as in the paper (Sec. 4.3)
        (0.5, 10, (12.0, 2.0)),  # tie 0.4 / 0.6 -> higher
        (0.7, 10, (12.0, 2.0)),
        (0.95, 10, (12.0, 2.0)),
        (0.1, 100, (6.0, 0.3)),
        (0.3, 100, (6.0, 0.4)),
        (0.5, 100, (8.0, 0.5)),
        (0.8, 100, (8.0, 0.5)),  # no 80% entry for many classes: the 60% setting
        (0.99, 100, (8.0, 0.5)),
    ],
)
def test_nearest_rate_rule(rate: float, k: int, expected: tuple[float, float]) -> None:
    assert suggest(rate, k) == expected


@given(rate=st.floats(0.0, 1.0, exclude_max=True), k=st.integers(2, 10_000))
def test_result_is_always_a_tabulated_setting(rate: float, k: int) -> None:
    table = CIFAR100_SETTINGS if k >= MANY_CLASSES_THRESHOLD else CIFAR10_SETTINGS
    result = suggest(rate, k)
    nearest = min(abs(rate - t) for t in table)
    candidates = [table[t] for t in table if abs(abs(rate - t) - nearest) < 1e-9]
    assert result in candidates


def test_numpy_scalars_accepted() -> None:
    assert suggest(np.float32(0.4), np.int64(10)) == (16.0, 1.0)
    assert suggest(0, 100) == (2.0, 0.0)


@pytest.mark.parametrize(
    ("rate", "k", "error", "match"),
    [
        (-0.1, 10, ValueError, "noise_rate"),
        (1.0, 10, ValueError, "noise_rate"),
        (1.5, 10, ValueError, "noise_rate"),
        (float("nan"), 10, ValueError, "noise_rate"),
        (float("inf"), 10, ValueError, "noise_rate"),
        ("0.2", 10, TypeError, "noise_rate"),
        (None, 10, TypeError, "noise_rate"),
        (True, 10, TypeError, "noise_rate"),
        (0.2, 1, ValueError, "num_classes"),
        (0.2, 0, ValueError, "num_classes"),
        (0.2, -5, ValueError, "num_classes"),
        (0.2, 10.0, TypeError, "num_classes"),
        (0.2, None, TypeError, "num_classes"),
        (0.2, True, TypeError, "num_classes"),
    ],
)
def test_validation(rate, k, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        suggest(rate, k)
