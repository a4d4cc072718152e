"""emphasis_jax: values and gradients against the float64 core, optax, JAX transformations.

What each group shows:
- float64 (x64 scoped to the test): every scheme's per-example values and gradient rows
  agree with ``emphasis.loss_and_grad`` (the reference, itself checked against mpmath)
  to 1e-11 of the row scale; float32 to 2e-5 at logit scales up to 10; 16-bit inputs to
  their own precision, computed in float32.
- extreme logits (|z| = 1e4, -inf entries, p -> 1): finite, rows sum to 0, L1 norm = the
  weight, agreeing with the reference.
- CCE equals optax.softmax_cross_entropy_with_integer_labels (values, gradients, `where`,
  tuple axes); check_grads passes for CCE, MAE, GCE (forward and reverse mode; order 2
  in float64), and for GCE's q.
- jit, grad, value_and_grad, vmap (per-call normalisation; global with axis_name), jvp,
  jacfwd; traced hyperparameters compile once.
- every bad input raises an error naming the argument.
"""

from __future__ import annotations

import doctest
import functools
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
optax = pytest.importorskip("optax")
from jax.test_util import check_grads  # noqa: E402

import emphasis  # noqa: E402
import emphasis_jax  # noqa: E402
from emphasis_jax import _losses  # noqa: E402

pytestmark = pytest.mark.jax

# (name, core scheme, the emphasis_jax call) for every scheme and GR option.
CASES = [
    ("cce", emphasis.CCE(), lambda z, y, **kw: emphasis_jax.cce_loss(z, y, **kw)),
    ("mae", emphasis.MAE(), lambda z, y, **kw: emphasis_jax.mae_loss(z, y, **kw)),
    ("gce0.3", emphasis.GCE(q=0.3), lambda z, y, **kw: emphasis_jax.gce_loss(z, y, q=0.3, **kw)),
    ("gce0", emphasis.GCE(q=0.0), lambda z, y, **kw: emphasis_jax.gce_loss(z, y, q=0.0, **kw)),
    ("gr", emphasis.GR(), lambda z, y, **kw: emphasis_jax.gr_loss(z, y, **kw)),
    (
        "gr16-1-eps0",
        emphasis.GR(beta=16.0, lam=1.0, eps=0.0),
        lambda z, y, **kw: emphasis_jax.gr_loss(z, y, beta=16.0, lam=1.0, eps=0.0, **kw),
    ),
    (
        "gr-identity-raw-mae",
        emphasis.GR(6.0, 2.0, transform="identity", normalize=False, reported_loss="mae"),
        lambda z, y, **kw: emphasis_jax.gr_loss(
            z,
            y,
            beta=6.0,
            lam=2.0,
            transform="identity",
            normalize=False,
            reported_loss="mae",
            **kw,
        ),
    ),
    (
        "gr-lam0-gce",
        emphasis.GR(12.0, 0.0, reported_loss=emphasis.GCE(q=0.5)),
        lambda z, y, **kw: emphasis_jax.gr_loss(
            z, y, beta=12.0, lam=0.0, reported_loss=emphasis.GCE(q=0.5), **kw
        ),
    ),
]
IDS = [case[0] for case in CASES]


def _value_and_rows(fn, logits, labels, *, eager=False, **kwargs):
    """Per-example losses and the gradient of their sum (the per-example gradient rows).

    Jitted by default (one compilation instead of one per primitive); ``eager=True`` runs
    op by op, where the value checks run.
    """

    def value_and_rows(logits, labels):
        losses = fn(logits, labels, **kwargs)
        return losses, jax.grad(lambda z: fn(z, labels, **kwargs).sum())(logits)

    run = value_and_rows if eager else jax.jit(value_and_rows)
    losses, grads = run(jnp.asarray(logits), jnp.asarray(labels))
    return np.asarray(losses), np.asarray(grads)


@functools.cache
def _jitted_value_and_rows(fn):
    """:func:`_value_and_rows` compiled once per loss (property tests call it many times)."""

    def value_and_rows(logits, labels):
        return fn(logits, labels), jax.grad(lambda z: fn(z, labels).sum())(logits)

    return jax.jit(value_and_rows)


def _reference(logits, labels, scheme, *, axis=-1, ignore_index=-100):
    return emphasis.loss_and_grad(
        np.asarray(logits, np.float64), labels, scheme, "none", axis=axis, ignore_index=ignore_index
    )


def _assert_close_rows(actual, expected, rtol, axis=-1):
    """Errors relative to the largest entry of each gradient row.

    Rows whose largest entry lies near the bottom of the dtype's range (weights like
    p^lam with p = e^-400) lose relative precision to gradual underflow; errors below
    1e-280 (float64) or 1e-30 (other dtypes) times rtol are accepted.
    """
    floor = 1e-280 if np.asarray(actual).dtype == np.float64 else 1e-30
    actual = np.asarray(actual, np.float64)
    scale = np.max(np.abs(expected), axis=axis, keepdims=True) if expected.ndim else abs(expected)
    err = np.abs(actual - expected) / np.maximum(scale, floor)
    assert np.all(np.isfinite(actual))
    assert np.max(err, initial=0.0) <= rtol, float(np.max(err))


def _assert_close_values(actual, expected, rtol, atol=0.0):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol)


def _batch(seed, n=8, c=5, scale=3.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, c)) * scale, rng.integers(0, c, size=n)


# -------------------------------------------------------------------------------------
# Against the float64 core
# -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "scheme", "fn"), CASES, ids=IDS)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.1, 1.0, 10.0, 100.0]))
def test_float64_matches_core(name, scheme, fn, seed, scale):
    logits, labels = _batch(seed, scale=scale)
    with jax.enable_x64(True):
        losses, grads = _jitted_value_and_rows(fn)(jnp.asarray(logits), labels)
        losses, grads = np.asarray(losses), np.asarray(grads)
    assert losses.dtype == np.float64 and grads.dtype == np.float64
    ref_losses, ref_grads = _reference(logits, labels, scheme)
    _assert_close_values(losses, ref_losses, rtol=1e-11, atol=1e-280)
    _assert_close_rows(grads, ref_grads, rtol=1e-11)


@pytest.mark.parametrize(("name", "scheme", "fn"), CASES, ids=IDS)
@given(seed=st.integers(0, 2**32 - 1), scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_float32_matches_core(name, scheme, fn, seed, scale):
    logits, labels = _batch(seed, scale=scale)
    logits = logits.astype(np.float32)
    losses, grads = _jitted_value_and_rows(fn)(jnp.asarray(logits), labels)
    losses, grads = np.asarray(losses), np.asarray(grads)
    assert losses.dtype == np.float32 and grads.dtype == np.float32
    ref_losses, ref_grads = _reference(logits, labels, scheme)
    _assert_close_values(losses, ref_losses, rtol=2e-5, atol=1e-6)
    _assert_close_rows(grads, ref_grads, rtol=2e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(("name", "scheme", "fn"), CASES[:1] + CASES[4:6], ids=IDS[:1] + IDS[4:6])
def test_half_precision_computes_in_float32(dtype, name, scheme, fn):
    logits, labels = _batch(3, scale=4.0)
    low = jnp.asarray(logits, dtype=dtype)
    losses, grads = _value_and_rows(fn, low, labels)
    assert losses.dtype == low.dtype and grads.dtype == low.dtype
    # The reference sees the same rounded inputs; the results differ by one 16-bit rounding.
    ref_losses, ref_grads = _reference(np.asarray(low.astype(jnp.float32)), labels, scheme)
    rtol = float(jnp.finfo(low.dtype).eps)
    _assert_close_values(losses, ref_losses, rtol=rtol, atol=rtol)
    _assert_close_rows(grads, ref_grads, rtol=rtol)


def test_half_precision_does_not_overflow_at_large_beta():
    # exp(beta h) with beta = 40 overflows float16 (max 65504) if computed in float16.
    logits, labels = _batch(4, scale=2.0)
    z = jnp.asarray(logits, jnp.float16)
    scheme = emphasis.GR(beta=40.0, lam=0.5)
    grads = jax.grad(lambda z: emphasis_jax.gr_loss(z, labels, beta=40.0, lam=0.5).sum())(z)
    assert grads.dtype == jnp.float16
    ref = _reference(np.asarray(z.astype(jnp.float32)), labels, scheme)[1]
    _assert_close_rows(grads, ref, rtol=2e-3)


@pytest.mark.parametrize(("name", "scheme", "fn"), CASES, ids=IDS)
def test_layouts_match_core(name, scheme, fn):
    rng = np.random.default_rng(5)
    with jax.enable_x64(True):
        # (N, C, d) with the class axis 1, as torch lays it out.
        logits = rng.normal(size=(2, 5, 3)) * 3
        labels = rng.integers(0, 5, size=(2, 3))
        losses, grads = _value_and_rows(fn, logits, labels, axis=1)
        ref_losses, ref_grads = _reference(logits, labels, scheme, axis=1)
        _assert_close_values(losses, ref_losses, rtol=1e-11, atol=1e-280)
        _assert_close_rows(grads, ref_grads, rtol=1e-11, axis=1)
        # One example: logits (C,), a scalar label.
        losses, grads = _value_and_rows(fn, logits[0, :, 0], labels[0, 0])
        assert losses.shape == ()
        ref_losses, ref_grads = _reference(logits[0, :, 0], labels[0, 0], scheme, axis=0)
        _assert_close_values(losses, ref_losses, rtol=1e-11)
        _assert_close_rows(grads, ref_grads, rtol=1e-11)


@pytest.mark.parametrize(("name", "scheme", "fn"), CASES, ids=IDS)
def test_where_and_ignore_index_match_core_ignore_index(name, scheme, fn):
    logits, labels = _batch(6, n=8)
    keep = np.array([True, False, True, True, False, True, True, True])
    core_labels = np.where(keep, labels, -100)
    ref_losses, ref_grads = _reference(logits, core_labels, scheme)
    padded = np.where(keep[:, None], logits, np.nan)  # excluded rows may hold garbage
    with jax.enable_x64(True):
        by_where = _value_and_rows(fn, padded, labels, eager=True, where=jnp.asarray(keep))
        by_index = _value_and_rows(fn, logits, core_labels, ignore_index=-100)
    for losses, grads in (by_where, by_index):
        _assert_close_values(losses, ref_losses, rtol=1e-11, atol=1e-280)
        _assert_close_rows(grads, ref_grads, rtol=1e-11)
        assert np.all(losses[~keep] == 0) and np.all(grads[~keep] == 0)


def test_excluded_examples_do_not_count_in_the_normaliser():
    logits, labels = _batch(7, n=6)
    keep = np.array([True, True, True, False, False, False])
    kept = _value_and_rows(emphasis_jax.gr_loss, logits[:3], labels[:3])[1]
    masked = _value_and_rows(emphasis_jax.gr_loss, logits, labels, where=jnp.asarray(keep))[1]
    np.testing.assert_allclose(masked[:3], kept, rtol=1e-6, atol=1e-7)


def test_nothing_kept_gives_zero_loss_and_gradient():
    logits, labels = _batch(8, n=4)
    losses, grads = _value_and_rows(emphasis_jax.gr_loss, logits, labels, where=jnp.zeros(4, bool))
    assert np.all(losses == 0) and np.all(grads == 0)


@pytest.mark.parametrize(("name", "scheme", "fn"), CASES[:1] + CASES[4:5], ids=IDS[:1] + IDS[4:5])
def test_empty_batch(name, scheme, fn):
    logits = jnp.zeros((0, 5), jnp.float32)
    labels = jnp.zeros((0,), jnp.int32)
    losses, grads = _value_and_rows(fn, logits, labels, eager=True)
    assert losses.shape == (0,) and grads.shape == (0, 5)


def test_identity_special_cases_reproduce_cce_mae_gce():
    logits, labels = _batch(9)
    exact = {"normalize": False, "eps": 0.0, "transform": "identity"}
    pairs = [
        ((2.0, 0.0), emphasis_jax.cce_loss, {}),
        ((4.0, 1.0), emphasis_jax.mae_loss, {}),
        ((2.0, 0.4), emphasis_jax.gce_loss, {"q": 0.4}),
    ]
    with jax.enable_x64(True):
        for (beta, lam), fn, kwargs in pairs:
            gr = _value_and_rows(emphasis_jax.gr_loss, logits, labels, beta=beta, lam=lam, **exact)
            other = _value_and_rows(fn, logits, labels, **kwargs)
            np.testing.assert_allclose(gr[1], other[1], rtol=1e-13, atol=1e-16)


# -------------------------------------------------------------------------------------
# Extreme logits
# -------------------------------------------------------------------------------------

EXTREME = np.array(
    [
        [1e4, -1e4, 0.0, 5.0],  # p = 1 to the last bit
        [-1e4, 1e4, 0.0, -5.0],  # p = 0 (target at -1e4)
        [20.0, 0.0, 0.0, 0.0],  # Eq. (6) computed literally gives NaN here in float32
        [3.0, -np.inf, -np.inf, -np.inf],  # no other class: zero gradient
        [-np.inf, 2.0, 1.0, -np.inf],  # the target ruled out: p = 0
        [1e4, 1e4, 1e4, 1e4],  # ties at a huge scale
    ]
)
EXTREME_LABELS = np.array([0, 0, 0, 0, 0, 2])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("name", "scheme", "fn"), CASES, ids=IDS)
def test_extreme_logits_never_nan(dtype, name, scheme, fn):
    with jax.enable_x64(dtype == "float64"):
        logits = jnp.asarray(EXTREME, dtype=dtype)
        losses, grads = _value_and_rows(fn, logits, EXTREME_LABELS)
        if name == "gr":
            eager = _value_and_rows(fn, logits, EXTREME_LABELS, eager=True)
            np.testing.assert_allclose(eager[1], grads, rtol=1e-6, atol=1e-30)
    ref_losses, ref_grads = _reference(EXTREME, EXTREME_LABELS, scheme)
    assert not np.isnan(losses).any() and np.all(np.isfinite(grads))
    # Losses are finite except the rows whose target is ruled out (CCE-like values: +inf).
    np.testing.assert_array_equal(np.isfinite(losses), np.isfinite(ref_losses))
    finite = np.isfinite(ref_losses)
    _assert_close_values(losses[finite], ref_losses[finite], rtol=1e-6, atol=1e-30)
    assert np.all(grads[3] == 0)
    # exp(z - logsumexp) at |z| = 1e4 carries the rounding of the log-sum-exp: an error up
    # to |z| ulp of the working precision, whatever the algorithm's care.
    z_scale = np.max(np.abs(np.where(np.isfinite(EXTREME), EXTREME, 0)), axis=1, keepdims=True)
    tol = 1e-6 + 4 * np.finfo(dtype).eps * z_scale
    l1 = np.abs(ref_grads).sum(axis=1, keepdims=True)
    assert np.all(np.abs(grads.sum(axis=1, keepdims=True)) <= tol * l1)
    assert np.all(np.abs(grads - ref_grads) <= tol * np.abs(ref_grads).max(axis=1, keepdims=True))


def test_gradient_l1_norm_is_the_weight():
    logits, labels = _batch(10, n=8, scale=5.0)
    scheme = emphasis.GR(beta=8.0, lam=0.5, normalize=False, eps=0.0)
    with jax.enable_x64(True):
        grads = _value_and_rows(
            emphasis_jax.gr_loss, logits, labels, beta=8.0, lam=0.5, normalize=False, eps=0.0
        )[1]
    p = np.exp(logits[np.arange(8), labels] - np.log(np.exp(logits).sum(axis=1)))
    np.testing.assert_allclose(np.abs(grads).sum(axis=1), scheme.weight(p), rtol=1e-12)


# -------------------------------------------------------------------------------------
# Against optax
# -------------------------------------------------------------------------------------


def _optax_ce(logits, labels, **kwargs):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"where": np.array([True, False, True, True, True, False, True, True])},
        {"where": np.random.default_rng(0).random((8, 5)) < 0.7},
    ],
    ids=["plain", "where-per-example", "where-per-logit"],
)
def test_cce_matches_optax(kwargs):
    logits, labels = _batch(11)
    where = kwargs.get("where")
    if where is not None and where.ndim == 2:
        where[np.arange(8), labels] = True  # keep the labelled class of every example
    logits = jnp.asarray(logits, jnp.float32)
    kwargs = {k: jnp.asarray(v) for k, v in kwargs.items()}
    ours = _value_and_rows(emphasis_jax.cce_loss, logits, labels, **kwargs)
    theirs = _value_and_rows(_optax_ce, logits, labels, **kwargs)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-6)


def test_cce_matches_optax_with_tuple_axis():
    rng = np.random.default_rng(12)
    logits = jnp.asarray(rng.normal(size=(2, 3, 4, 2)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 8, size=(2, 3)))
    ours = _value_and_rows(emphasis_jax.cce_loss, logits, labels, axis=(2, 3))
    theirs = _value_and_rows(_optax_ce, logits, labels, axis=(2, 3))
    assert ours[0].shape == (2, 3)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-6)


def test_class_axis_not_last():
    rng = np.random.default_rng(13)
    logits = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)  # (C, N)
    labels = jnp.asarray(rng.integers(0, 5, size=4))
    ours = _value_and_rows(emphasis_jax.gr_loss, logits, labels, axis=0)
    moved = _value_and_rows(emphasis_jax.gr_loss, logits.T, labels)
    np.testing.assert_allclose(ours[0], moved[0], rtol=1e-6)
    np.testing.assert_allclose(ours[1], moved[1].T, rtol=1e-6)


# -------------------------------------------------------------------------------------
# True losses: check_grads
# -------------------------------------------------------------------------------------

TRUE_LOSSES = [
    ("cce", lambda z, y: emphasis_jax.cce_loss(z, y)),
    ("mae", lambda z, y: emphasis_jax.mae_loss(z, y)),
    ("gce", lambda z, y: emphasis_jax.gce_loss(z, y, q=0.6)),
]


@pytest.mark.parametrize(("name", "fn"), TRUE_LOSSES, ids=[n for n, _ in TRUE_LOSSES])
def test_check_grads_first_order(name, fn):
    logits, labels = _batch(14, scale=2.0)
    check_grads(jax.jit(lambda z: fn(z, labels)), (jnp.asarray(logits, jnp.float32),), order=1)


@pytest.mark.parametrize(("name", "fn"), TRUE_LOSSES, ids=[n for n, _ in TRUE_LOSSES])
def test_check_grads_second_order_float64(name, fn):
    # Forward and reverse over the gradient rule itself: the true Hessian of the value.
    logits, labels = _batch(15, n=4, scale=2.0)
    with jax.enable_x64(True):
        check_grads(jax.jit(lambda z: fn(z, labels)), (jnp.asarray(logits),), order=2)


def test_gce_is_differentiable_in_q():
    logits, labels = _batch(16, n=4, scale=2.0)
    with jax.enable_x64(True):
        z = jnp.asarray(logits)
        # Jitted, as in the second-order checks: one compilation, not one per primitive.
        check_grads(jax.jit(lambda q: emphasis_jax.gce_loss(z, labels, q=q)), (0.4,), order=1)


def test_gr_value_does_not_depend_on_hyperparameters():
    logits, labels = _batch(17)
    z = jnp.asarray(logits, jnp.float32)

    def total(beta, lam, eps):
        return emphasis_jax.gr_loss(z, labels, beta=beta, lam=lam, eps=eps).sum()

    grads = jax.grad(total, argnums=(0, 1, 2))(8.0, 0.5, 1e-6)
    assert all(float(g) == 0.0 for g in grads)


# -------------------------------------------------------------------------------------
# JAX transformations
# -------------------------------------------------------------------------------------


def test_jit_value_and_grad_equal_eager():
    logits, labels = _batch(18)
    z = jnp.asarray(logits, jnp.float32)

    def mean_loss(z, labels):
        return emphasis_jax.gr_loss(z, labels, beta=8.0, lam=0.5).mean()

    value, grads = jax.jit(jax.value_and_grad(mean_loss))(z, labels)
    eager_value = mean_loss(z, labels)
    eager_grads = jax.grad(mean_loss)(z, labels)
    np.testing.assert_allclose(value, eager_value, rtol=1e-6)
    np.testing.assert_allclose(grads, eager_grads, rtol=1e-5, atol=1e-7)
    ref = emphasis.logit_grad(logits.astype(np.float32), labels, emphasis.GR(8.0, 0.5), axis=-1)
    _assert_close_rows(grads, ref, rtol=2e-5)


def test_vmap_normalises_each_call_separately():
    rng = np.random.default_rng(19)
    logits = jnp.asarray(rng.normal(size=(3, 6, 5)) * 3, jnp.float32)
    labels = jnp.asarray(rng.integers(0, 5, size=(3, 6)))

    def total(z, y):
        return emphasis_jax.gr_loss(z, y).sum()

    # Jitted, as _value_and_rows is: one compilation instead of one per primitive (the
    # inputs are valid, so no eager value check is at stake; vmap's semantics are the same).
    mapped = jax.jit(jax.vmap(jax.grad(total)))(logits, labels)
    alone = jax.jit(jax.grad(total))
    for k in range(3):
        np.testing.assert_allclose(mapped[k], alone(logits[k], labels[k]), rtol=1e-5, atol=1e-7)


def test_vmap_over_examples_with_axis_name_normalises_globally():
    logits, labels = _batch(20, n=8, scale=3.0)
    z = jnp.asarray(logits, jnp.float32)
    # Jitted (one compilation instead of one per primitive, as in _value_and_rows).
    batch_grads = jax.jit(jax.grad(lambda z: emphasis_jax.gr_loss(z, labels).sum()))(z)

    def one(zi, yi, axis_name):
        return emphasis_jax.gr_loss(zi, yi, axis_name=axis_name)

    per_example = jax.jit(
        jax.vmap(jax.grad(one), in_axes=(0, 0, None), axis_name="batch"), static_argnums=2
    )
    np.testing.assert_allclose(per_example(z, labels, "batch"), batch_grads, rtol=1e-5, atol=1e-7)
    # Without axis_name each example normalises by its own weight: a different gradient.
    alone = jax.jit(jax.vmap(jax.grad(one), in_axes=(0, 0, None)), static_argnums=2)(
        z, labels, None
    )
    assert np.max(np.abs(alone - batch_grads)) > 1e-2


def test_forward_mode_agrees_with_reverse_mode():
    logits, labels = _batch(21)
    z = jnp.asarray(logits, jnp.float32)
    tangent = jnp.asarray(np.random.default_rng(0).normal(size=z.shape), jnp.float32)

    def total(z):
        return emphasis_jax.gr_loss(z, labels, beta=12.0, lam=1.0).sum()

    # Jitted (one compilation instead of one per primitive, as in _value_and_rows).
    _, forward = jax.jit(lambda z, t: jax.jvp(total, (z,), (t,)))(z, tangent)
    reverse = jax.jit(jax.grad(total))(z)
    np.testing.assert_allclose(forward, jnp.sum(reverse * tangent), rtol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.jacfwd(total))(z), reverse, rtol=1e-5, atol=1e-7)


def test_traced_hyperparameters_compile_once():
    logits, labels = _batch(22)
    z = jnp.asarray(logits, jnp.float32)
    traces: list[None] = []

    @jax.jit
    def grads(z, beta, lam, eps):
        traces.append(None)
        return jax.grad(
            lambda z: emphasis_jax.gr_loss(z, labels, beta=beta, lam=lam, eps=eps).mean()
        )(z)

    settings = [(1.0, 0.5, 1e-6), (8.0, 0.0, 0.0), (16.0, 2.0, 1e-3)]
    for beta, lam, eps in settings:
        traced = grads(z, beta, lam, eps)
        eager = jax.grad(
            lambda z, b=beta, l=lam, e=eps: emphasis_jax.gr_loss(
                z, labels, beta=b, lam=l, eps=e
            ).mean()
        )(z)
        np.testing.assert_allclose(traced, eager, rtol=1e-5, atol=1e-7)
    assert len(traces) == 1


def test_schedule_for_beta_inside_jit():
    logits, labels = _batch(23)
    z = jnp.asarray(logits, jnp.float32)
    schedule = optax.linear_schedule(2.0, 16.0, transition_steps=10)

    @jax.jit
    def grads(z, step):
        return jax.grad(lambda z: emphasis_jax.gr_loss(z, labels, beta=schedule(step)).mean())(z)

    for step in (0, 5, 10):
        expected = emphasis.logit_grad(
            logits.astype(np.float32), labels, emphasis.GR(float(schedule(step)), 0.5), axis=-1
        )
        _assert_close_rows(grads(z, step), expected, rtol=2e-5)


def test_vmap_over_hyperparameters():
    logits, labels = _batch(24)
    z = jnp.asarray(logits, jnp.float32)
    betas = jnp.array([2.0, 8.0, 16.0])
    # Jitted (one compilation instead of one per primitive, as in _value_and_rows).
    swept = jax.jit(
        jax.vmap(lambda b: jax.grad(lambda z: emphasis_jax.gr_loss(z, labels, beta=b).sum())(z))
    )(betas)
    for k, beta in enumerate([2.0, 8.0, 16.0]):
        expected = _value_and_rows(emphasis_jax.gr_loss, z, labels, beta=beta)[1]
        np.testing.assert_allclose(swept[k], expected, rtol=1e-5, atol=1e-7)


def test_docstring_examples():
    options = np.get_printoptions()  # the examples set the precision, as optax's do
    try:
        result = doctest.testmod(_losses, optionflags=doctest.NORMALIZE_WHITESPACE)
    finally:
        np.set_printoptions(**options)
    assert result.attempted >= 10 and result.failed == 0


# -------------------------------------------------------------------------------------
# Bad input
# -------------------------------------------------------------------------------------

Z = np.zeros((3, 4), np.float32)
Y = np.array([0, 1, 2])
UNTYPED: Any = emphasis_jax  # for arguments of the wrong type, on purpose


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: emphasis_jax.gr_loss(Z.astype(int), Y), TypeError, "logits must be a floating"),
        (lambda: emphasis_jax.gr_loss(Z, Y.astype(float)), TypeError, "labels must be integer"),
        (lambda: emphasis_jax.gr_loss(Z, Y[:2]), ValueError, "labels must have shape"),
        (lambda: emphasis_jax.gr_loss(Z, np.array([0, 4, 1])), ValueError, r"labels .*got 4"),
        (lambda: emphasis_jax.cce_loss(Z, np.array([0, -1, 1])), ValueError, r"labels .*got -1"),
        (
            lambda: emphasis_jax.gr_loss(_nan_logits(), Y),
            ValueError,
            "logits contain NaN",
        ),
        (lambda: emphasis_jax.gr_loss(_inf_logits(), Y), ValueError, r"logits contain \+inf"),
        (lambda: emphasis_jax.gr_loss(_dead_logits(), Y), ValueError, "every logit -inf"),
        (lambda: emphasis_jax.gr_loss(np.float32(1.0), 0), ValueError, "class axis"),
        (lambda: emphasis_jax.gr_loss(Z, Y, beta=-1.0), ValueError, "beta must be >= 0"),
        (lambda: emphasis_jax.gr_loss(Z, Y, lam=-0.5), ValueError, "lam must be >= 0"),
        (lambda: emphasis_jax.gr_loss(Z, Y, eps=-1e-6), ValueError, "eps must be >= 0"),
        (lambda: emphasis_jax.gr_loss(Z, Y, beta=float("nan")), ValueError, "beta must be a fin"),
        (lambda: emphasis_jax.gr_loss(Z, Y, beta=jnp.array(-2.0)), ValueError, "beta must be >="),
        (lambda: emphasis_jax.gr_loss(Z, Y, beta=jnp.ones(2)), ValueError, "beta must be a scal"),
        (lambda: emphasis_jax.gr_loss(Z, Y, beta="8"), TypeError, "beta must be a real"),
        (lambda: emphasis_jax.gr_loss(Z, Y, lam=None), TypeError, "lam must be a real"),
        (lambda: emphasis_jax.gr_loss(Z, Y, beta=[8.0]), TypeError, "beta must be a real"),
        (lambda: emphasis_jax.gr_loss(Z, Y, transform="log"), ValueError, "transform must be"),
        (lambda: UNTYPED.gr_loss(Z, Y, normalize="yes"), TypeError, "normalize must be"),
        (lambda: emphasis_jax.gr_loss(Z, Y, reported_loss="hinge"), ValueError, "reported_loss"),
        (lambda: emphasis_jax.gce_loss(Z, Y, q=1.5), ValueError, r"q must be in \[0, 1\]"),
        (lambda: emphasis_jax.gce_loss(Z, Y, q=-0.1), ValueError, r"q must be in \[0, 1\]"),
        (lambda: emphasis_jax.gr_loss(Z, Y, axis=2), ValueError, "axis 2 is out of range"),
        (lambda: emphasis_jax.gr_loss(Z, Y, axis=1.0), TypeError, "axis must be an int"),
        (lambda: emphasis_jax.gr_loss(Z, Y, axis=(1, 1)), ValueError, "axis must not repeat"),
        (lambda: emphasis_jax.gr_loss(Z, Y, where=np.ones(3)), TypeError, "where must be a bool"),
        (
            lambda: emphasis_jax.gr_loss(Z, Y, where=np.ones(4, bool)),
            ValueError,
            "where must have the shape",
        ),
        (
            lambda: emphasis_jax.gr_loss(Z, Y, where=np.array([[True, True, False, True]] * 3)),
            ValueError,
            r"where excludes the labelled class",
        ),
        (lambda: UNTYPED.gr_loss(Z, Y, ignore_index=1.5), TypeError, "ignore_index must be"),
        (lambda: UNTYPED.gr_loss(Z, Y, axis_name=["d"]), TypeError, "axis_name must be"),
    ],
)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _nan_logits():
    return jnp.asarray(Z).at[1, 2].set(jnp.nan)


def _inf_logits():
    return jnp.asarray(Z).at[2, 0].set(jnp.inf)


def _dead_logits():
    return jnp.asarray(Z).at[0].set(-jnp.inf)


def test_labels_out_of_range_are_fine_where_excluded():
    labels = np.array([0, 99, 2])
    losses = emphasis_jax.gr_loss(Z, labels, where=jnp.array([True, False, True]))
    assert float(losses[1]) == 0.0
    losses = emphasis_jax.gr_loss(Z, np.array([0, -1, 2]), ignore_index=-1)
    assert float(losses[1]) == 0.0


def test_value_checks_run_under_eager_grad():
    with pytest.raises(ValueError, match="logits contain NaN"):
        jax.grad(lambda z: emphasis_jax.gr_loss(z, Y).sum())(_nan_logits())
    with pytest.raises(ValueError, match="labels must be class indices"):
        jax.grad(lambda z: emphasis_jax.gr_loss(z, np.array([0, 1, 7])).sum())(jnp.asarray(Z))


def test_checks_of_shapes_and_known_hyperparameters_run_under_jit():
    with pytest.raises(ValueError, match="labels must have shape"):
        jax.jit(lambda z, y: emphasis_jax.gr_loss(z, y))(Z, Y[:2])
    with pytest.raises(ValueError, match="beta must be >= 0"):
        jax.jit(lambda z, y: emphasis_jax.gr_loss(z, y, beta=-1.0))(Z, Y)


def test_labels_out_of_range_under_jit_give_nan_loss_and_no_gradient():
    # Values are unknown while tracing, so nothing raises; as in optax the loss is NaN.
    labels = np.array([0, 1, 9])

    def total(z):
        return emphasis_jax.gr_loss(z, labels).sum()

    losses = jax.jit(lambda z: emphasis_jax.gr_loss(z, labels))(Z)
    assert np.all(np.isfinite(losses[:2])) and np.isnan(losses[2])
    grads = jax.jit(jax.grad(total))(jnp.asarray(Z))
    assert np.all(grads[2] == 0)
    kept = jax.grad(lambda z: emphasis_jax.gr_loss(z, labels[:2]).sum())(jnp.asarray(Z[:2]))
    np.testing.assert_allclose(grads[:2], kept, rtol=1e-6)


@pytest.mark.parametrize(("name", "scheme", "fn"), CASES[:1] + CASES[4:5])
def test_where_removing_the_label_under_jit_gives_nan_loss_and_no_gradient(name, scheme, fn):
    # Eagerly refused ("where excludes the labelled class"); under jit nothing raises,
    # and the row is inert with a NaN loss, as a label out of range is (not an inf loss).
    z = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    labels = np.array([0, 1, 2])
    where = np.ones(z.shape, bool)
    where[1, 1] = False  # example 1's own class

    def total(z):
        return fn(z, labels, where=where).sum()

    losses = jax.jit(lambda z: fn(z, labels, where=where))(z)
    assert np.isnan(losses[1])
    grads = jax.jit(jax.grad(total))(jnp.asarray(z))
    assert np.all(grads[1] == 0)
    rows = np.array([0, 2])
    kept_losses = fn(z[rows], labels[rows], where=where[rows])
    kept = jax.grad(lambda z: fn(z, labels[rows], where=where[rows]).sum())(jnp.asarray(z[rows]))
    np.testing.assert_allclose(losses[rows], kept_losses, rtol=1e-6)
    np.testing.assert_allclose(grads[rows], kept, rtol=1e-6)


def test_unnormalised_overflow_keeps_minus_inf_classes_at_zero_gradient():
    # normalize=False, beta = 1000: w = exp(beta h) is beyond float32 (beta h > 88), so the
    # gradient is +-inf there, as the float64 value is beyond float32; a class at -inf
    # still has gradient exactly 0 (exp(-inf) * inf was NaN).
    z = np.array([[2.0, -np.inf, 0.0], [0.0, 1.0, -np.inf], [-np.inf, 3.0, 1.0]], np.float32)
    labels = np.array([0, 0, 0])
    kw = {"beta": 1000.0, "normalize": False}

    def mean(x):
        return emphasis_jax.gr_loss(x, labels, **kw).mean()

    grads = np.asarray(jax.grad(mean)(jnp.asarray(z)))
    expected = emphasis.logit_grad(z.astype(np.float64), labels, emphasis.GR(**kw))
    assert not np.isnan(grads).any()
    dead = np.isneginf(z) & (np.arange(3) != labels[:, None])
    assert np.all(grads[dead] == 0)
    big = np.abs(expected) > np.finfo(np.float32).max
    assert big.any()
    np.testing.assert_array_equal(grads[big], np.sign(expected[big]) * np.inf)
    np.testing.assert_allclose(grads[~big], expected[~big], rtol=1e-5, atol=1e-30)
