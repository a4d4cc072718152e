"""Tests for emphasis.noise (synthetic label noise)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from emphasis.noise import (
    NoisyLabels,
    empirical_transition_matrix,
    pair_noise,
    pair_transition_matrix,
    symmetric_noise,
    symmetric_transition_matrix,
    transition_noise,
)

N = 20_000


def _clean(n: int = N, k: int = 10, seed: int = 123) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, size=n)


def _binomial_tol(p: float, n: int, sigmas: float = 4.0) -> float:
    return sigmas * np.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------------------
# symmetric noise
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
def test_symmetric_realised_rate(rate: float) -> None:
    clean = _clean()
    out = symmetric_noise(clean, rate, 10, seed=1)
    assert isinstance(out, NoisyLabels)
    assert abs(out.realised_rate - rate) <= _binomial_tol(rate, N) + 1e-12
    if rate in (0.0, 1.0):
        assert out.realised_rate == rate
    np.testing.assert_array_equal(out.flipped, out.labels != clean)
    assert out.realised_rate == pytest.approx(out.flipped.mean())


def test_symmetric_rate_one_flips_every_label_for_two_classes() -> None:
    clean = np.array([0, 1, 1, 0])
    out = symmetric_noise(clean, 1.0, seed=0)
    np.testing.assert_array_equal(out.labels, 1 - clean)
    assert out.flipped.all()


def test_symmetric_flips_never_keep_the_label_and_stay_in_range() -> None:
    clean = _clean(k=7)
    out = symmetric_noise(clean, 0.5, 7, seed=2)
    assert not np.any(out.labels[out.flipped] == clean[out.flipped])
    assert out.labels.min() >= 0 and out.labels.max() < 7
    assert out.labels.dtype == np.int64
    assert out.flipped.dtype == np.bool_


def test_symmetric_flips_are_uniform_over_the_other_classes() -> None:
    k = 5
    clean = _clean(k=k)
    out = symmetric_noise(clean, 1.0, k, seed=3)
    # Each flipped label is clean + d (mod K) with d uniform on {1, ..., K-1}.
    shift = (out.labels - clean) % k
    counts = np.bincount(shift, minlength=k)
    assert counts[0] == 0
    expected = N / (k - 1)
    chi2 = float(((counts[1:] - expected) ** 2 / expected).sum())
    assert chi2 < 21.1  # chi-square, 3 dof, p = 1e-4
    # ... and per clean class, every other class gets about 1/(K-1) of the flips.
    emp = empirical_transition_matrix(clean, out.labels, k)
    off = ~np.eye(k, dtype=bool)
    per_row = N / k
    tol = _binomial_tol(1 / (k - 1), int(per_row), 5.0)
    np.testing.assert_allclose(emp[off], 1 / (k - 1), atol=tol)


def test_symmetric_matches_its_transition_matrix() -> None:
    k, rate = 4, 0.6
    clean = _clean(k=k)
    out = symmetric_noise(clean, rate, k, seed=4)
    emp = empirical_transition_matrix(clean, out.labels, k)
    np.testing.assert_allclose(emp, symmetric_transition_matrix(k, rate), atol=0.03)


def test_seeds_reproduce() -> None:
    clean = _clean(n=1000)
    for fn in (symmetric_noise, pair_noise):
        a = fn(clean, 0.4, seed=7)
        b = fn(clean, 0.4, seed=7)
        c = fn(clean, 0.4, seed=8)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert not np.array_equal(a.labels, c.labels)
    t = symmetric_transition_matrix(10, 0.5)
    np.testing.assert_array_equal(
        transition_noise(clean, t, seed=7).labels, transition_noise(clean, t, seed=7).labels
    )


def test_generator_seed_is_used_and_advanced() -> None:
    clean = _clean(n=1000)
    rng = np.random.default_rng(5)
    first = symmetric_noise(clean, 0.5, seed=rng)
    second = symmetric_noise(clean, 0.5, seed=rng)
    assert not np.array_equal(first.labels, second.labels)
    again = symmetric_noise(clean, 0.5, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(first.labels, again.labels)


def test_nd_labels_keep_shape() -> None:
    clean = _clean(n=2 * 3 * 50, k=4).reshape(2, 3, 50)
    for out in (
        symmetric_noise(clean, 0.5, seed=0),
        pair_noise(clean, 0.5, seed=0),
        transition_noise(clean, pair_transition_matrix(4, 0.3), seed=0),
    ):
        assert out.labels.shape == clean.shape
        assert out.flipped.shape == clean.shape
        np.testing.assert_array_equal(out.flipped, out.labels != clean)


def test_input_is_not_modified_and_other_int_dtypes_work() -> None:
    clean = np.array([0, 1, 2, 3], dtype=np.uint8)
    copy = clean.copy()
    out = symmetric_noise(clean, 1.0, seed=0)
    np.testing.assert_array_equal(clean, copy)
    assert out.labels.dtype == np.int64
    assert out.flipped.all()


def test_empty_labels() -> None:
    empties: list[npt.ArrayLike] = [[], np.zeros(0, dtype=np.int32)]
    for labels in empties:
        out = symmetric_noise(labels, 0.5, seed=0)
        assert out.labels.shape == (0,)
        assert out.realised_rate == 0.0
        assert pair_noise(labels, 0.5, 3).realised_rate == 0.0
        assert transition_noise(labels, np.eye(3)).realised_rate == 0.0


def test_num_classes_larger_than_labels_max() -> None:
    # All labels in {0, 1} but 5 classes: flips may go to classes 2..4.
    clean = np.zeros(5000, dtype=np.int64)
    out = symmetric_noise(clean, 1.0, 5, seed=0)
    assert set(np.unique(out.labels)) == {1, 2, 3, 4}


@settings(max_examples=40, deadline=None)
@given(
    labels=hnp.arrays(
        np.int64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=8), elements=st.integers(0, 5)
    ),
    rate=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_symmetric_properties(labels: np.ndarray, rate: float, seed: int) -> None:
    out = symmetric_noise(labels, rate, 6, seed=seed)
    assert out.labels.shape == labels.shape
    assert out.labels.dtype == np.int64
    assert ((out.labels >= 0) & (out.labels < 6)).all()
    np.testing.assert_array_equal(out.flipped, out.labels != labels)
    assert out.realised_rate == pytest.approx(out.flipped.mean() if labels.size else 0.0)
    if rate == 0.0:
        assert not out.flipped.any()
    if rate == 1.0:
        assert out.flipped.all()


# ---------------------------------------------------------------------------
# pair noise
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 10])
def test_pair_flips_go_to_the_next_class(k: int) -> None:
    clean = _clean(k=k)
    out = pair_noise(clean, 0.45, k, seed=0)
    np.testing.assert_array_equal(out.labels[out.flipped], (clean[out.flipped] + 1) % k)
    np.testing.assert_array_equal(out.labels[~out.flipped], clean[~out.flipped])
    assert abs(out.realised_rate - 0.45) <= _binomial_tol(0.45, N)


def test_pair_rate_one_is_a_cyclic_shift() -> None:
    clean = np.arange(12) % 4
    out = pair_noise(clean, 1.0, 4, seed=0)
    np.testing.assert_array_equal(out.labels, (clean + 1) % 4)
    assert out.realised_rate == 1.0
    assert pair_noise(clean, 0.0, 4, seed=0).realised_rate == 0.0


def test_pair_matches_its_transition_matrix() -> None:
    k = 3
    clean = _clean(k=k)
    out = pair_noise(clean, 0.3, k, seed=9)
    emp = empirical_transition_matrix(clean, out.labels, k)
    np.testing.assert_allclose(emp, pair_transition_matrix(k, 0.3), atol=0.03)


# ---------------------------------------------------------------------------
# transition noise
# ---------------------------------------------------------------------------


def test_transition_empirical_matrix_matches() -> None:
    k = 4
    t = np.array(
        [
            [0.7, 0.1, 0.2, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.25, 0.25, 0.25, 0.25],
            [0.0, 0.0, 0.6, 0.4],
        ]
    )
    clean = _clean(n=40_000, k=k)
    out = transition_noise(clean, t, seed=11)
    emp = empirical_transition_matrix(clean, out.labels, k)
    per_row = 40_000 / k
    tol = 5 * np.sqrt(np.maximum(t * (1 - t), 1e-12) / per_row)
    assert np.all(np.abs(emp - t) <= tol + 1e-12)
    # zero-probability transitions never happen
    assert np.all(emp[t == 0] == 0)
    np.testing.assert_array_equal(out.flipped, out.labels != clean)


def test_transition_identity_flips_nothing() -> None:
    clean = _clean(k=6)
    out = transition_noise(clean, np.eye(6), seed=0)
    np.testing.assert_array_equal(out.labels, clean)
    assert not out.flipped.any()
    assert out.realised_rate == 0.0


def test_transition_accepts_rows_within_tolerance() -> None:
    t = np.array([[0.5, 0.5 + 5e-7], [0.0, 1.0]])
    out = transition_noise(np.zeros(1000, dtype=int), t, seed=0)
    assert 0.4 < out.realised_rate < 0.6


def test_transition_with_include_true_class_has_lower_realised_rate() -> None:
    k, rate = 5, 0.5
    clean = _clean(k=k)
    t = symmetric_transition_matrix(k, rate, include_true_class=True)
    out = transition_noise(clean, t, seed=0)
    expected = rate * (k - 1) / k
    assert abs(out.realised_rate - expected) <= _binomial_tol(expected, N)


# ---------------------------------------------------------------------------
# transition matrices
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 10, 100])
@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])
def test_symmetric_transition_matrix(k: int, rate: float) -> None:
    t = symmetric_transition_matrix(k, rate)
    assert t.shape == (k, k)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(t), 1 - rate)
    np.testing.assert_allclose(t[~np.eye(k, dtype=bool)], rate / (k - 1))

    a = symmetric_transition_matrix(k, rate, include_true_class=True)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(a), 1 - rate + rate / k)
    np.testing.assert_allclose(a[~np.eye(k, dtype=bool)], rate / k)
    # expected realised rate of each convention
    assert 1 - np.diag(t).mean() == pytest.approx(rate)
    assert 1 - np.diag(a).mean() == pytest.approx(rate * (k - 1) / k)


@pytest.mark.parametrize("k", [2, 5])
def test_pair_transition_matrix(k: int) -> None:
    t = pair_transition_matrix(k, 0.2)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(t), 0.8)
    for i in range(k):
        assert t[i, (i + 1) % k] == pytest.approx(0.2)
    assert np.count_nonzero(t) == 2 * k
    np.testing.assert_array_equal(pair_transition_matrix(k, 1.0), np.roll(np.eye(k), 1, axis=1))


def test_empirical_transition_matrix_unseen_class_is_nan() -> None:
    emp = empirical_transition_matrix([0, 0], [0, 1], 3)
    np.testing.assert_array_equal(emp[0], [0.5, 0.5, 0.0])
    assert np.isnan(emp[1:]).all()


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------

GOOD = np.array([0, 1, 2, 1])


@pytest.mark.parametrize("fn", [symmetric_noise, pair_noise])
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rate": -0.1}, ValueError, "rate"),
        ({"rate": 1.5}, ValueError, "rate"),
        ({"rate": float("nan")}, ValueError, "rate"),
        ({"rate": float("inf")}, ValueError, "rate"),
        ({"rate": "0.2"}, TypeError, "rate"),
        ({"rate": None}, TypeError, "rate"),
        ({"rate": True}, TypeError, "rate"),
        ({"num_classes": 1}, ValueError, "num_classes"),
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"num_classes": 2}, ValueError, "labels"),  # label 2 out of range
        ({"num_classes": 3.0}, TypeError, "num_classes"),
        ({"labels": np.array([0.0, 1.0])}, TypeError, "labels"),
        ({"labels": np.array([True, False])}, TypeError, "labels"),
        ({"labels": np.array([0, -1, 2])}, ValueError, "labels"),
        ({"labels": np.zeros(4, dtype=int)}, ValueError, "num_classes"),  # inferred K=1
        ({"labels": ["a", "b"]}, TypeError, "labels"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": "abc"}, TypeError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_generator_validation(fn, kwargs: dict, error: type, match: str) -> None:
    args = {"labels": GOOD, "rate": 0.2, "num_classes": None, "seed": 0}
    args.update(kwargs)
    labels, rate, num_classes, seed = (
        args["labels"],
        args["rate"],
        args["num_classes"],
        args["seed"],
    )
    with pytest.raises(error, match=match):
        fn(labels, rate, num_classes, seed=seed)


def test_rate_one_and_zero_are_allowed() -> None:
    symmetric_noise(GOOD, 1.0)
    symmetric_noise(GOOD, 0)
    pair_noise(GOOD, 1)
    symmetric_noise(GOOD, np.float32(0.5))


@pytest.mark.parametrize(
    ("matrix", "error", "match"),
    [
        (np.ones((3, 2)) / 2, ValueError, "square"),
        (np.ones(3) / 3, ValueError, "square"),
        (np.ones((3, 3, 3)) / 3, ValueError, "square"),
        (np.ones((1, 1)), ValueError, "K >= 2"),
        (np.array([[1.2, -0.2, 0.0], [0, 1, 0], [0, 0, 1]]), ValueError, "non-negative"),
        (np.array([[0.5, 0.4, 0.0], [0, 1, 0], [0, 0, 1]]), ValueError, "sum"),
        (np.array([[0.5, 0.5 + 2e-6, 0], [0, 1, 0], [0, 0, 1]]), ValueError, "row 0"),
        (np.array([[np.nan, 1.0, 0], [0, 1, 0], [0, 0, 1]]), ValueError, "NaN"),
        (np.array([[np.inf, 1.0, 0], [0, 1, 0], [0, 0, 1]]), ValueError, "matrix"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "matrix"),
    ],
)
def test_transition_matrix_validation(matrix: np.ndarray, error: type, match: str) -> None:
    with pytest.raises(error, match="matrix"):
        transition_noise(GOOD, matrix, seed=0)
    with pytest.raises(error, match=match):
        transition_noise(GOOD, matrix, seed=0)


def test_transition_labels_out_of_range_for_matrix() -> None:
    with pytest.raises(ValueError, match="labels"):
        transition_noise(np.array([0, 1, 2]), np.eye(2))
    with pytest.raises(TypeError, match="labels"):
        transition_noise(np.array([0.0, 1.0]), np.eye(2))


@pytest.mark.parametrize("builder", [symmetric_transition_matrix, pair_transition_matrix])
def test_matrix_builders_validation(builder) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        builder(1, 0.2)
    with pytest.raises(TypeError, match="num_classes"):
        builder(2.5, 0.2)
    with pytest.raises(ValueError, match="rate"):
        builder(3, 1.01)
    with pytest.raises(ValueError, match="rate"):
        builder(3, -0.01)
    with pytest.raises(ValueError, match="rate"):
        builder(3, float("nan"))


def test_include_true_class_must_be_bool() -> None:
    with pytest.raises(TypeError, match="include_true_class"):
        symmetric_transition_matrix(3, 0.2, include_true_class="yes")  # type: ignore[arg-type]


def test_empirical_transition_matrix_validation() -> None:
    with pytest.raises(ValueError, match="same shape"):
        empirical_transition_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="noisy"):
        empirical_transition_matrix([0, 1], [0, 3], 2)
    with pytest.raises(ValueError, match="num_classes"):
        empirical_transition_matrix([], [])


def test_module_imports_no_framework() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "import emphasis.noise, emphasis.suggest\n"
        "bad = [m for m in ('torch', 'tensorflow', 'jax', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
