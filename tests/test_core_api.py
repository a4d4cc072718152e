"""The core's identities, layouts, reductions, statistics and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import emphasis

finite_logits = st.integers(0, 2**32 - 1).map(
    lambda seed: np.random.default_rng(seed).normal(size=(6, 5)) * 4
)
labels6 = st.lists(st.integers(0, 4), min_size=6, max_size=6).map(np.array)


def exact_gr(beta, lam, transform="identity"):
    return emphasis.GR(beta=beta, lam=lam, transform=transform, normalize=False, eps=0.0)


# -- Eq. (7) -----------------------------------------------------------------------------
@given(finite_logits, labels6, st.floats(0.0, 1.0))
def test_gr_identity_reproduces_cce_mae_gce(logits, labels, q):
    for gr, scheme in [
        (exact_gr(2.0, 0.0), emphasis.CCE()),
        (exact_gr(4.0, 1.0), emphasis.MAE()),
        (exact_gr(2.0, q), emphasis.GCE(q=q)),
    ]:
        for reduction in ("mean", "sum", "none"):
            np.testing.assert_allclose(
                emphasis.logit_grad(logits, labels, gr, reduction),
                emphasis.logit_grad(logits, labels, scheme, reduction),
                rtol=1e-15,
                atol=1e-300,
            )
        p = np.linspace(0, 1, 101)
        np.testing.assert_allclose(gr.weight(p), scheme.weight(p), rtol=1e-15, atol=0)


@given(
    finite_logits,
    labels6,
    st.sampled_from(
        [
            emphasis.CCE(),
            emphasis.MAE(),
            emphasis.GCE(0.4),
            exact_gr(7.0, 0.6, "exp"),
            exact_gr(3.0, 2.0),
        ]
    ),
)
def test_rows_sum_to_zero_and_have_l1_norm_w(logits, labels, scheme):
    grad = emphasis.logit_grad(logits, labels, scheme, "none")
    stats = emphasis.batch_stats(logits, labels, scheme)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-15)
    np.testing.assert_allclose(np.abs(grad).sum(axis=1), stats.raw_weights, rtol=1e-14)
    # weight(p) gets p rounded to float64, which loses 1 - p as p -> 1: compare away from 1.
    away = stats.p < 0.99
    np.testing.assert_allclose(stats.raw_weights[away], scheme.weight(stats.p[away]), rtol=1e-13)


@given(
    st.floats(0.1, 40.0),
    st.floats(0.0, 5.0),
    st.sampled_from(["exp", "identity"]),
)
def test_focus_is_the_argmax_of_w(beta, lam, transform):
    scheme = emphasis.GR(beta=beta, lam=lam, transform=transform)
    p = np.linspace(0.0, 1.0, 200_001)
    assert abs(p[np.argmax(scheme.weight(p))] - scheme.focus) <= 1e-5


@pytest.mark.parametrize(
    "scheme, focus",
    [
        (emphasis.CCE(), 0.0),
        (emphasis.MAE(), 0.5),
        (emphasis.GCE(q=0.5), 1 / 3),
        (emphasis.GR(beta=16, lam=1), 0.5),
        (emphasis.GR(beta=12, lam=2), 2 / 3),
    ],
)
def test_focus_values(scheme, focus):
    assert scheme.focus == pytest.approx(focus)


def test_weight_is_exact_at_the_ends():
    for scheme in (
        emphasis.CCE(),
        emphasis.MAE(),
        emphasis.GCE(0.3),
        emphasis.GR(8, 0.5),
        emphasis.GR(8, 0.0),
    ):
        w0, w1 = scheme.weight([0.0, 1.0])
        lam = float(scheme.lam)
        h0 = 1.0 if lam == 0 else 0.0  # p^lam (1 - p) at p = 0
        expected0 = np.exp(scheme.beta * h0) if scheme.transform == "exp" else scheme.beta * h0
        assert w0 == expected0
        assert w1 == (1.0 if scheme.transform == "exp" else 0.0)


# -- GR's normalisation and eps -----------------------------------------------------------
@given(finite_logits, labels6, st.floats(0.0, 30.0), st.floats(0.0, 3.0))
def test_normalised_weights_have_mean_one_over_valid_examples(logits, labels, beta, lam):
    labels = labels.copy()
    labels[0] = -100
    stats = emphasis.batch_stats(logits, labels, emphasis.GR(beta=beta, lam=lam))
    assert stats.weights[0] == 0.0 and np.isnan(stats.p[0])
    assert stats.weights[1:].mean() == pytest.approx(1.0, rel=1e-12)
    # The mean gradient's L1 norm is the mean weight / N with eps = 0.
    grad = emphasis.logit_grad(logits, labels, emphasis.GR(beta=beta, lam=lam, eps=0.0))
    assert np.abs(grad).sum() == pytest.approx(1.0, rel=1e-12)


def test_normalisation_survives_beta_beyond_float32_range():
    logits = np.array([[0.0, 0.0], [5.0, 0.0]], dtype=np.float32)
    grad = emphasis.logit_grad(logits, [0, 1], emphasis.GR(beta=300.0, lam=0.5))
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0.1


def test_eps_matches_the_authors_formula_and_fades_confident_examples():
    z = np.array([[20.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    scheme = emphasis.GR(beta=8.0, lam=0.5, normalize=False, eps=1e-6)
    grad = emphasis.logit_grad(z, [0, 0], scheme, "none")
    softmax = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    p = softmax[:, 0]
    w = scheme.weight(p)
    authors = (softmax - np.eye(3)[[0, 0]]) * (w / (2 * (1 - p) + 1e-6))[:, None]
    # The literal p - 1 loses ~8 digits at 1 - p ~ 4e-9; our value is the exact one.
    np.testing.assert_allclose(grad, authors, rtol=1e-7)
    exact = emphasis.logit_grad(z, [0, 0], emphasis.GR(8.0, 0.5, normalize=False, eps=0), "none")
    assert np.abs(grad[0]).sum() < 0.2 * np.abs(exact[0]).sum()  # 1 - p ~ 4e-9 << eps
    np.testing.assert_allclose(grad[1], exact[1], rtol=1e-5)


# -- ignore_index, layouts, class weights ------------------------------------------------
@given(finite_logits, labels6, st.sampled_from([emphasis.CCE(), emphasis.GR(8.0, 0.5)]))
def test_ignored_rows_are_inert(logits, labels, scheme):
    labels = labels.copy()
    labels[[1, 4]] = -100
    grad = emphasis.logit_grad(logits, labels, scheme)
    assert (grad[[1, 4]] == 0).all()
    changed = logits.copy()
    changed[[1, 4]] = np.array([-np.inf, 50.0, 3.0, -7.0, 0.0])
    np.testing.assert_array_equal(emphasis.logit_grad(changed, labels, scheme), grad)
    keep = labels != -100
    np.testing.assert_allclose(
        emphasis.logit_grad(logits[keep], labels[keep], scheme), grad[keep], rtol=1e-15
    )
    assert emphasis.loss(logits, labels, scheme) == pytest.approx(
        emphasis.loss(logits[keep], labels[keep], scheme), rel=1e-15
    )


def test_custom_ignore_index_and_all_ignored():
    z = np.zeros((2, 3))
    assert (emphasis.logit_grad(z, [2, 2], emphasis.CCE(), ignore_index=2) == 0).all()
    assert np.isnan(emphasis.loss(z, [2, 2], emphasis.CCE(), ignore_index=2))
    assert emphasis.loss(z, [2, 2], emphasis.CCE(), "sum", ignore_index=2) == 0


def test_nd_and_channels_last_layouts_match_rows():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(2, 4, 3, 5))  # (N, C, d1, d2)
    y = rng.integers(0, 4, size=(2, 3, 5))
    y[0, 1, 2] = -100
    scheme = emphasis.GR(8.0, 0.5)
    rows = np.moveaxis(z, 1, -1).reshape(-1, 4)
    loss_rows, grad_rows = emphasis.loss_and_grad(rows, y.reshape(-1), scheme)
    loss_nd, grad_nd = emphasis.loss_and_grad(z, y, scheme)
    np.testing.assert_allclose(grad_nd, np.moveaxis(grad_rows.reshape(2, 3, 5, 4), -1, 1))
    assert loss_nd == pytest.approx(loss_rows)
    last = np.moveaxis(z, 1, -1)
    np.testing.assert_allclose(
        emphasis.logit_grad(last, y, scheme, axis=-1), np.moveaxis(grad_nd, 1, -1)
    )
    per_example = emphasis.loss(z, y, scheme, "none")
    assert per_example.shape == y.shape and per_example[0, 1, 2] == 0


def test_unbatched_input():
    z, y = np.array([2.0, 0.0, -1.0]), np.array(0)
    loss, grad = emphasis.loss_and_grad(z, y, emphasis.CCE())
    batched_loss, batched = emphasis.loss_and_grad(z[None], y[None], emphasis.CCE())
    assert grad.shape == (3,) and loss == pytest.approx(batched_loss)
    np.testing.assert_allclose(grad, batched[0])


def test_class_weights_follow_torch_semantics():
    rng = np.random.default_rng(4)
    z, y = rng.normal(size=(8, 3)), rng.integers(0, 3, size=8)
    y[2] = -100
    weight = np.array([0.2, 1.0, 3.0])
    loss, grad = emphasis.loss_and_grad(z, y, emphasis.CCE(), weight=weight)
    valid = y != -100
    c = np.where(valid, weight[np.where(valid, y, 0)], 0)
    softmax = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    nll = -np.log(softmax[np.arange(8), np.where(valid, y, 0)])
    assert loss == pytest.approx((c * nll).sum() / c.sum(), rel=1e-14)
    expected = (softmax - np.eye(3)[np.where(valid, y, 0)]) * (c / c.sum())[:, None]
    np.testing.assert_allclose(grad, expected, rtol=1e-13, atol=1e-17)
    # GR: the c-weighted normalised weights sum to one over the batch (eps = 0).
    gr = emphasis.logit_grad(z, y, emphasis.GR(8.0, 0.5, eps=0), weight=weight)
    assert np.abs(gr).sum() == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("scheme", [emphasis.CCE(), emphasis.MAE(), emphasis.GCE(0.6)], ids=repr)
def test_gradient_of_true_losses_matches_finite_differences(scheme):
    rng = np.random.default_rng(5)
    z, y = rng.normal(size=(4, 3)), np.array([0, 2, 1, 1])
    grad = emphasis.logit_grad(z, y, scheme, "sum")
    h = 1e-6
    numeric = np.zeros_like(z)
    for index in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[index] = h
        numeric[index] = (
            emphasis.loss(z + step, y, scheme, "sum") - emphasis.loss(z - step, y, scheme, "sum")
        ) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)


def test_gr_reports_the_chosen_empirical_loss():
    z, y = np.array([[1.0, 0.0, -1.0]]), [1]
    for reported, scheme in [
        ("cce", emphasis.CCE()),
        ("mae", emphasis.MAE()),
        (emphasis.GCE(0.5), emphasis.GCE(0.5)),
    ]:
        gr = emphasis.GR(8.0, 0.5, reported_loss=reported)
        assert emphasis.loss(z, y, gr) == emphasis.loss(z, y, scheme)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_output_dtype_is_the_input_dtype(dtype):
    z = np.array([[1.0, 2.0, 3.0]], dtype=dtype)
    loss, grad = emphasis.loss_and_grad(z, [0], emphasis.GR(beta=20.0, lam=0.5))
    assert grad.dtype == dtype and loss.dtype == dtype
    assert np.isfinite(grad).all()  # exp(20 h) would overflow float16 if computed in it


# -- statistics --------------------------------------------------------------------------
def test_batch_stats():
    z = np.array([[2.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    stats = emphasis.batch_stats(z, [0, 1, -100], emphasis.MAE())
    p = np.array([np.exp(2) / (np.exp(2) + 1), 0.5])
    np.testing.assert_allclose(stats.p[:2], p)
    np.testing.assert_allclose(stats.raw_weights[:2], 4 * p * (1 - p))
    assert stats.spread == pytest.approx(np.var(4 * p * (1 - p)))
    assert stats.focus == 0.5
    w = 4 * p * (1 - p)
    assert stats.effective_sample_size == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert emphasis.effective_sample_size([1, 1, 1, 1]) == 4.0
    assert emphasis.emphasis_spread([1, 3], where=[True, True]) == 1.0


# -- schemes as values -------------------------------------------------------------------
def test_schemes_have_readable_repr_and_equality():
    assert repr(emphasis.GR(8, 0.5)) == (
        "GR(beta=8.0, lam=0.5, transform='exp', normalize=True, eps=1e-06, reported_loss=CCE())"
    )
    assert repr(emphasis.GCE(0.5)) == "GCE(q=0.5)"
    assert emphasis.GR(8, 0.5) == emphasis.GR(beta=8.0, lam=0.5)
    assert emphasis.GR(8, 0.5) != emphasis.GR(8, 0.6)
    assert emphasis.CCE() == emphasis.CCE() and emphasis.CCE() != emphasis.MAE()
    assert len({emphasis.GR(8, 0.5), emphasis.GR(8.0, 0.5)}) == 1


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: emphasis.GR(beta=-1.0, lam=0.5), ValueError, "beta must be >= 0"),
        (lambda: emphasis.GR(beta=8.0, lam=-0.5), ValueError, "lam must be >= 0"),
        (lambda: emphasis.GR(beta=float("nan"), lam=0.5), ValueError, "beta must be a finite"),
        (lambda: emphasis.GR(beta=8.0, lam=0.5, eps=-1e-6), ValueError, "eps must be >= 0"),
        (lambda: emphasis.GR(beta=8.0, lam=0.5, transform="log"), ValueError, "transform"),
        (lambda: emphasis.GR(beta=8.0, lam=0.5, normalize="yes"), TypeError, "normalize"),
        (lambda: emphasis.GR(beta="8", lam=0.5), TypeError, "beta must be a real number"),
        (lambda: emphasis.GR(8.0, 0.5, reported_loss="nll"), ValueError, "reported_loss"),
        (lambda: emphasis.GCE(q=1.5), ValueError, r"q must be in \[0, 1\]"),
        (lambda: emphasis.GCE(q=-0.1), ValueError, r"q must be in \[0, 1\]"),
        (lambda: emphasis.CCE().weight([0.5, 1.2]), ValueError, r"p must .* \[0, 1\]"),
    ],
)
def test_bad_hyperparameters_raise(make, error, match):
    with pytest.raises(error, match=match):
        make()


Z = np.zeros((3, 4))
Y = np.array([0, 1, 2])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: emphasis.logit_grad(Z, [0, 1, 4], emphasis.CCE()),
            ValueError,
            r"labels must be class indices in \[0, 3\].*got 4",
        ),
        (lambda: emphasis.logit_grad(Z, [0, -1, 2], emphasis.CCE()), ValueError, "got -1"),
        (
            lambda: emphasis.logit_grad(Z, [0, 1], emphasis.CCE()),
            ValueError,
            r"labels must have shape \(3,\)",
        ),
        (lambda: emphasis.logit_grad(Z, Y[:, None], emphasis.CCE()), ValueError, "labels must"),
        (
            lambda: emphasis.logit_grad(np.where(Z == 0, np.nan, Z), Y, emphasis.CCE()),
            ValueError,
            "logits contain NaN",
        ),
        (lambda: emphasis.logit_grad(Z + np.inf, Y, emphasis.CCE()), ValueError, r"\+inf"),
        (lambda: emphasis.logit_grad(Z - np.inf, Y, emphasis.CCE()), ValueError, "every logit"),
        (
            lambda: emphasis.logit_grad(Z, Y, emphasis.CCE(), "avg"),
            ValueError,
            "reduction must be one of 'mean', 'sum', 'none'",
        ),
        (
            lambda: emphasis.logit_grad(Z.astype(int), Y, emphasis.CCE()),
            TypeError,
            "logits must be a floating-point",
        ),
        (
            lambda: emphasis.logit_grad(Z, Y.astype(float), emphasis.CCE()),
            TypeError,
            "labels must be integer",
        ),
        (lambda: emphasis.logit_grad(Z, Y, "cce"), TypeError, "scheme must be"),
        (
            lambda: emphasis.logit_grad(Z, Y, emphasis.CCE(), weight=[1.0, 2.0]),
            ValueError,
            r"weight must have shape \(4,\)",
        ),
        (
            lambda: emphasis.logit_grad(Z, Y, emphasis.CCE(), weight=[1.0, -2.0, 1, 1]),
            ValueError,
            "weight must be finite and non-negative",
        ),
        (lambda: emphasis.logit_grad(Z, Y, emphasis.CCE(), axis=2), ValueError, "axis 2"),
        (lambda: emphasis.logit_grad(np.float64(1.0), 0, emphasis.CCE()), ValueError, "class axis"),
    ],
)
def test_bad_inputs_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()
