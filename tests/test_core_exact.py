"""The NumPy core against the exact (mpmath) reference, at every logit scale."""

from __future__ import annotations

import numpy as np
import pytest
from _reference import reference, ulp_error
from hypothesis import given
from hypothesis import strategies as st

import emphasis

EXTENDED = np.finfo(np.longdouble).nmant >= 63
# With 80-bit extended precision in the core, float64 results are within ~1.5 ulp
# (measured); elsewhere the float64 algorithm's conditioning allows ~|x| ulp.
ULP_BOUND_64 = 4.0 if EXTENDED else 2000.0

SCHEMES = [
    emphasis.CCE(),
    emphasis.MAE(),
    emphasis.GCE(q=0.3),
    emphasis.GCE(q=1.0),
    emphasis.GR(beta=8.0, lam=0.5),
    emphasis.GR(beta=16.0, lam=1.0, eps=0.0),
    emphasis.GR(beta=12.0, lam=2.0, normalize=False),
    emphasis.GR(beta=3.0, lam=2.0, transform="identity", normalize=False, eps=0.0),
    emphasis.GR(beta=2.0, lam=0.0, reported_loss="mae"),
]


@st.composite
def batches(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    rows = draw(st.integers(1, 5))
    classes = draw(st.integers(2, 6))
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0, 300.0, 1e4]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(rows, classes)) * scale
    if draw(st.booleans()):
        logits[rng.random((rows, classes)) < 0.3] = -np.inf
        logits[np.all(np.isneginf(logits), axis=1), 0] = 0.0
    labels = rng.integers(0, classes, size=rows)
    return logits, labels


@given(batches(), st.sampled_from(SCHEMES), st.sampled_from(["mean", "sum", "none"]))
def test_float64_gradient_is_within_a_few_ulp_of_exact(batch, scheme, reduction):
    logits, labels = batch
    loss, grad = emphasis.loss_and_grad(logits, labels, scheme, reduction)
    exact_loss, exact_grad = reference(logits, labels, scheme, reduction)
    assert np.isfinite(grad).all()
    assert ulp_error(grad, exact_grad).max() <= ULP_BOUND_64
    exact_loss = np.array([float(v) for v in exact_loss] if reduction == "none" else exact_loss)
    np.testing.assert_allclose(loss, exact_loss.astype(float), rtol=4e-16, atol=0)


@given(batches(), st.sampled_from(SCHEMES))
def test_float32_gradient_is_within_1e6_relative_of_exact(batch, scheme):
    logits, labels = batch
    logits32 = logits.astype(np.float32)
    grad = emphasis.logit_grad(logits32, labels, scheme, reduction="sum")
    assert grad.dtype == np.float32
    _, exact = reference(logits32.astype(np.float64), labels, scheme, "sum")
    exact_f = np.array([[float(v) for v in row] for row in exact])
    tiny = np.finfo(np.float32).tiny
    relative = np.abs(grad - exact_f) / np.maximum(np.abs(exact_f), tiny)
    # Entries that are subnormal in float32 carry fewer digits; compare them absolutely.
    relative = np.where(np.abs(exact_f) < tiny, np.abs(grad - exact_f) / tiny, relative)
    assert relative.max() <= 1e-6


@pytest.mark.parametrize("scheme", SCHEMES, ids=repr)
@pytest.mark.parametrize(
    "logits, label",
    [
        ([20.0, 0.0, 0.0, 0.0], 0),  # float32 Eq. (6) computed literally is NaN here
        ([1e4, 0.0, 0.0, 0.0], 0),  # p == 1 to far beyond float64
        ([1e4, 1e4 - 1.0, 0.0], 0),
        ([-1e4, 0.0, 0.0], 0),  # p -> 0
        ([0.0, 1e4, -1e4], 0),
        ([-np.inf, 1.0, 2.0], 0),  # p == 0 exactly
        ([3.0, -np.inf, -np.inf], 0),  # no other class: zero gradient
        ([3.0, -np.inf, 2.0], 0),
        ([1e-300, -1e-300, 0.0], 2),
        ([745.0, 0.0], 1),
        ([-745.0, 745.0], 0),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_extreme_logits_are_exact_and_finite(scheme, logits, label, dtype):
    z = np.array([logits], dtype=dtype)
    if dtype == np.float16 and np.isinf(z[np.isfinite(np.array([logits]))]).any():
        pytest.skip("the logits overflow float16 before they reach the loss")
    grad = emphasis.logit_grad(z, [label], scheme, reduction="sum")
    assert grad.dtype == dtype
    assert not np.isnan(grad).any()
    _, exact = reference(z.astype(np.float64), np.array([label]), scheme, "sum")
    if dtype == np.float64:
        assert ulp_error(grad, exact).max() <= ULP_BOUND_64
    else:
        exact_cast = np.array([[float(v) for v in row] for row in exact]).astype(dtype)
        np.testing.assert_array_equal(grad, exact_cast)  # correctly rounded


def test_float32_literal_formula_fails_where_the_stable_one_does_not():
    # The reason for the stable form: Eq. (6) as written gives 0/0 at p == 1 in float32.
    z = np.array([[20.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    softmax = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    p = softmax[0, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        literal = (softmax - [1, 0, 0, 0]) * (2 * (1 - p)) / (2 * (1 - p))
    assert np.isnan(literal).any()
    stable = emphasis.logit_grad(z, [0], emphasis.CCE(), reduction="sum")
    assert np.isfinite(stable).all() and stable[0, 0] < 0
