"""emphasis_torch against the float64 NumPy core, F.cross_entropy and gradcheck; every bad input."""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import emphasis  # noqa: E402
import emphasis_torch  # noqa: E402

pytestmark = pytest.mark.torch

EXAMPLES = int(os.environ.get("EMPHASIS_HYPOTHESIS_EXAMPLES", "25"))
SCHEMES = {
    "cce": (emphasis_torch.cce_loss, {}, emphasis.CCE()),
    "mae": (emphasis_torch.mae_loss, {}, emphasis.MAE()),
    "gce": (emphasis_torch.gce_loss, {"q": 0.4}, emphasis.GCE(q=0.4)),
    "gr": (emphasis_torch.gr_loss, {"beta": 8.0, "lam": 0.5}, emphasis.GR(beta=8.0, lam=0.5)),
}


def _core(logits, labels, scheme, reduction="mean", weight=None, ignore_index=-100):
    """The float64 reference: (loss, grad) as float64 NumPy arrays."""
    loss, grad = emphasis.loss_and_grad(
        np.asarray(logits.detach().double()),
        np.asarray(labels),
        scheme,
        reduction,
        ignore_index=ignore_index,
        weight=None if weight is None else np.asarray(weight.double()),
    )
    return loss.astype(np.float64), grad.astype(np.float64)


def _ours(fn, kwargs, logits, labels, **extra):
    z = logits.detach().clone().requires_grad_()
    loss = fn(z, labels, **kwargs, **extra)
    loss.sum().backward()
    return loss, z.grad


# -- agreement with the core ---------------------------------------------------------------


@st.composite
def batches(draw):
    shape_kind = draw(st.sampled_from(["1d", "2d", "nd"]))
    c = draw(st.integers(1, 6))
    n = draw(st.integers(1, 7))
    if shape_kind == "1d":
        shape, label_shape = (c,), ()
    elif shape_kind == "2d":
        shape, label_shape = (n, c), (n,)
    else:
        d = draw(st.integers(1, 3))
        shape, label_shape = (n, c, d), (n, d)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.1, 3.0, 30.0]))
    logits = rng.normal(scale=scale, size=shape)
    labels = rng.integers(0, c, size=label_shape)
    if label_shape and draw(st.booleans()):
        labels = np.where(rng.random(label_shape) < 0.3, -100, labels)
    weight = rng.uniform(0.2, 2.0, size=c) if draw(st.booleans()) else None
    return logits, labels, weight


@st.composite
def schemes(draw):
    kind = draw(st.sampled_from(["cce", "mae", "gce", "gr"]))
    if kind == "cce":
        return emphasis_torch.cce_loss, {}, emphasis.CCE()
    if kind == "mae":
        return emphasis_torch.mae_loss, {}, emphasis.MAE()
    if kind == "gce":
        q = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
        return emphasis_torch.gce_loss, {"q": q}, emphasis.GCE(q=q)
    kwargs = {
        "beta": draw(st.sampled_from([0.0, 2.0, 8.0, 40.0])),
        "lam": draw(st.sampled_from([0.0, 0.5, 2.0])),
        "transform": draw(st.sampled_from(["exp", "identity"])),
        "normalize": draw(st.booleans()),
        "eps": draw(st.sampled_from([0.0, 1e-6, 0.1])),
        "reported_loss": draw(st.sampled_from(["cce", "mae", emphasis.GCE(q=0.5)])),
    }
    return emphasis_torch.gr_loss, kwargs, emphasis.GR(**kwargs)


@settings(max_examples=EXAMPLES, deadline=None)
@given(batch=batches(), scheme=schemes(), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_float64_matches_core(batch, scheme, reduction):
    logits, labels, weight = batch
    fn, kwargs, core_scheme = scheme
    z = torch.tensor(logits, dtype=torch.float64)
    y = torch.tensor(labels)
    w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    ref_loss, ref_grad = _core(z, y, core_scheme, reduction, w)
    loss, grad = _ours(fn, kwargs, z, y, reduction=reduction, weight=w)
    assert loss.dtype == torch.float64 and grad.dtype == torch.float64
    assert loss.shape == ref_loss.shape
    np.testing.assert_allclose(loss.detach().numpy(), ref_loss, rtol=1e-12, atol=1e-12)
    # For "none" the core's gradient is that of the sum of the per-example losses.
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=1e-10, atol=1e-13)


@settings(max_examples=EXAMPLES, deadline=None)
@given(batch=batches(), scheme=schemes())
def test_float32_matches_core(batch, scheme):
    logits, labels, weight = batch
    fn, kwargs, core_scheme = scheme
    z = torch.tensor(logits, dtype=torch.float32)
    y = torch.tensor(labels)
    w = None if weight is None else torch.tensor(weight, dtype=torch.float32)
    ref_loss, ref_grad = _core(z, y, core_scheme, "sum", w)
    loss, grad = _ours(fn, kwargs, z, y, reduction="sum", weight=w)
    assert loss.dtype == torch.float32 and grad.dtype == torch.float32
    scale = max(1.0, float(np.abs(ref_grad).max(initial=0.0)))
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=1e-4, atol=2e-6 * scale)
    np.testing.assert_allclose(loss.detach().numpy(), ref_loss, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_half_precision_computes_in_float32(dtype, name):
    fn, kwargs, scheme = SCHEMES[name]
    generator = torch.Generator().manual_seed(1)
    z = (torch.randn(16, 7, generator=generator) * 4).to(dtype)
    y = torch.randint(0, 7, (16,), generator=generator)
    # beta = 40 overflows exp in float16 (exp(40) > 65504) unless computed in float32.
    kwargs = {**kwargs, "beta": 40.0} if name == "gr" else kwargs
    scheme = emphasis.GR(beta=40.0, lam=0.5) if name == "gr" else scheme
    loss, grad = _ours(fn, kwargs, z, y)
    assert loss.dtype == dtype and grad.dtype == dtype
    ref_loss, ref_grad = _core(z.double(), y, scheme)  # the core on the same rounded inputs
    unit = 2.0**-10 if dtype == torch.float16 else 2.0**-7  # half an ulp at 1, plus the cast
    np.testing.assert_allclose(grad.double().numpy(), ref_grad, rtol=2 * unit, atol=unit / 16)
    np.testing.assert_allclose(float(loss.detach()), float(ref_loss), rtol=2 * unit)


def test_gr_special_cases_reproduce_cce_mae_gce():
    generator = torch.Generator().manual_seed(2)
    z = torch.randn(9, 5, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 5, (9,), generator=generator)
    cases = [
        ((2.0, 0.0), emphasis_torch.cce_loss, {}),
        ((4.0, 1.0), emphasis_torch.mae_loss, {}),
        ((2.0, 0.3), emphasis_torch.gce_loss, {"q": 0.3}),
    ]
    for (beta, lam), fn, kwargs in cases:
        _, grad_gr = _ours(
            emphasis_torch.gr_loss,
            {"beta": beta, "lam": lam, "transform": "identity", "normalize": False, "eps": 0.0},
            z,
            y,
        )
        _, grad = _ours(fn, kwargs, z, y)
        torch.testing.assert_close(grad_gr, grad, rtol=1e-12, atol=1e-15)


# -- extreme logits ------------------------------------------------------------------------


def _extreme_batch():
    big = 1e4
    ninf = -math.inf
    rows = [
        [big, -big, 0.0, 0.0],  # p = 1 to the last bit
        [-big, big, 0.0, 0.0],  # p = 0
        [big, big, -big, 0.0],  # two tied winners
        [0.0, ninf, ninf, ninf],  # the label is the only possible class
        [ninf, 0.0, 1.0, ninf],  # the label is ruled out (p = 0)
        [20.0, 0.0, 0.0, 0.0],  # float32 NaN for literal Eq. (6)
        [-big, -big, -big, -big],  # a constant row
        [big, big, big, big],
    ]
    labels = [0, 0, 0, 0, 0, 0, 1, 2]
    return torch.tensor(rows, dtype=torch.float64), torch.tensor(labels)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_extreme_logits_finite_and_exact(dtype, name):
    fn, kwargs, scheme = SCHEMES[name]
    z64, y = _extreme_batch()
    z = z64.to(dtype)
    loss, grad = _ours(fn, kwargs, z, y, reduction="none")
    grad64 = grad.double()
    assert torch.isfinite(grad64).all(), grad
    assert not torch.isnan(loss).any()
    # At |z| = 1e4 the log-sum-exp carries an absolute rounding of about 1e4 * 2^-24 = 6e-4
    # in float32, hence a relative error of that order in the softmax entries (the same in
    # F.cross_entropy); float64 is exact to ~1e-13, bfloat16 to its own precision.
    tolerance = {torch.float64: 1e-12, torch.float32: 5e-5, torch.bfloat16: 1e-2}[dtype]
    # Rows sum to zero; a row whose other classes are all -inf gets no gradient.
    zeros = torch.zeros(8, dtype=torch.float64)
    torch.testing.assert_close(grad64.sum(dim=1), zeros, atol=tolerance, rtol=0)
    assert (grad64[3] == 0).all()
    ref_loss, ref_grad = _core(z.double(), y, scheme, "none")
    np.testing.assert_allclose(grad64.numpy(), ref_grad, rtol=tolerance, atol=tolerance)
    finite = np.isfinite(ref_loss)
    np.testing.assert_allclose(
        loss.double().detach().numpy()[finite], ref_loss[finite], rtol=tolerance
    )


def test_extreme_logits_cce_matches_cross_entropy():
    z, y = _extreme_batch()
    z, y = z[[0, 1, 2, 5, 6, 7]], y[[0, 1, 2, 5, 6, 7]]  # F.cross_entropy cannot take -inf rows
    for dtype in (torch.float32, torch.float64):
        ours, grad = _ours(emphasis_torch.cce_loss, {}, z.to(dtype), y)
        zt = z.to(dtype).requires_grad_()
        expected = F.cross_entropy(zt, y)
        expected.backward()
        torch.testing.assert_close(ours, expected)
        torch.testing.assert_close(grad, zt.grad)


# -- against F.cross_entropy ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 5), (2, 3, 4, 2), (7,)])
@pytest.mark.parametrize("with_weight", [False, True])
def test_cce_matches_cross_entropy(dtype, reduction, shape, with_weight):
    generator = torch.Generator().manual_seed(3)
    z = torch.randn(*shape, generator=generator, dtype=dtype) * 3
    num_classes = shape[0] if len(shape) == 1 else shape[1]
    label_shape = () if len(shape) == 1 else (shape[0], *shape[2:])
    y = torch.randint(0, num_classes, label_shape, generator=generator)
    if label_shape:
        y = torch.where(torch.rand(label_shape, generator=generator) < 0.25, -100, y)
    weight = (
        torch.rand(num_classes, generator=generator, dtype=dtype) + 0.5 if with_weight else None
    )
    z1 = z.clone().requires_grad_()
    z2 = z.clone().requires_grad_()
    ours = emphasis_torch.cce_loss(z1, y, weight=weight, reduction=reduction)
    expected = F.cross_entropy(z2, y, weight=weight, reduction=reduction)
    torch.testing.assert_close(ours, expected, equal_nan=True)
    upstream = torch.rand(expected.shape, generator=generator, dtype=dtype)
    (ours * upstream).sum().backward()
    (expected * upstream).sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad)


def test_cce_ignore_index_other_value_and_all_ignored():
    z = torch.randn(4, 3, requires_grad=True)
    y = torch.tensor([0, 7, 2, 7])
    ours = emphasis_torch.cce_loss(z, y, ignore_index=7)
    expected = F.cross_entropy(z, y, ignore_index=7)
    torch.testing.assert_close(ours, expected)
    # No valid example: NaN, as F.cross_entropy, and a zero gradient.
    z = torch.randn(3, 4, requires_grad=True)
    for fn in (emphasis_torch.cce_loss, emphasis_torch.gr_loss):
        z.grad = None
        loss = fn(z, torch.full((3,), -100))
        assert torch.isnan(loss)
        loss.backward()
        assert (z.grad == 0).all()


def test_gr_class_weight_scales_examples_and_normaliser():
    generator = torch.Generator().manual_seed(4)
    z = torch.randn(10, 4, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 4, (10,), generator=generator)
    weight = torch.tensor([0.5, 1.0, 2.0, 0.0], dtype=torch.float64)
    for reduction in ("mean", "sum", "none"):
        ref_loss, ref_grad = _core(z, y, emphasis.GR(8.0, 0.5), reduction, weight)
        loss, grad = _ours(emphasis_torch.gr_loss, {}, z, y, weight=weight, reduction=reduction)
        np.testing.assert_allclose(loss.detach().numpy(), ref_loss, rtol=1e-12)
        np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=1e-10, atol=1e-14)


# -- gradcheck (CCE, MAE, GCE have a true loss) --------------------------------------------


@pytest.mark.parametrize("name", ["cce", "mae", "gce"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_gradcheck(name, reduction):
    fn, kwargs, _ = SCHEMES[name]
    generator = torch.Generator().manual_seed(5)
    z = torch.randn(5, 4, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[0, 1], [2, -100], [3, 3], [1, 0], [-100, 2]])
    weight = torch.tensor([1.0, 0.5, 2.0, 1.5], dtype=torch.float64)

    def loss(logits):
        return fn(logits, y, weight=weight, reduction=reduction, **kwargs)

    assert torch.autograd.gradcheck(loss, (z,), eps=1e-6, atol=1e-7, rtol=1e-5)


def test_gradcheck_tensor_q():
    z = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    q = torch.tensor(0.3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: emphasis_torch.gce_loss(t, y, q=q), (z,))


def test_gr_value_is_reported_loss_and_gradient_is_not_its_gradient():
    z = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    gr, grad = _ours(emphasis_torch.gr_loss, {"beta": 8.0, "lam": 0.5}, z, y)
    cce, cce_grad = _ours(emphasis_torch.cce_loss, {}, z, y)
    torch.testing.assert_close(gr, cce)
    assert not torch.allclose(grad, cce_grad)
    mae = emphasis_torch.mae_loss(z, y)
    torch.testing.assert_close(emphasis_torch.gr_loss(z, y, reported_loss="mae"), mae)
    gce = emphasis_torch.gce_loss(z, y, q=0.5)
    torch.testing.assert_close(emphasis_torch.gr_loss(z, y, reported_loss=emphasis.GCE(0.5)), gce)


# -- one-hot targets -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_one_hot_targets_equal_indices(name):
    fn, kwargs, _ = SCHEMES[name]
    generator = torch.Generator().manual_seed(6)
    z = torch.randn(5, 4, 3, generator=generator)
    y = torch.randint(0, 4, (5, 3), generator=generator)
    one_hot = F.one_hot(y, 4).movedim(-1, 1)
    for target in (one_hot, one_hot.float()):
        loss_a, grad_a = _ours(fn, kwargs, z, y)
        loss_b, grad_b = _ours(fn, kwargs, z, target)
        torch.testing.assert_close(loss_a, loss_b)
        torch.testing.assert_close(grad_a, grad_b)


def test_soft_targets_raise():
    z = torch.randn(3, 4)
    soft = torch.softmax(torch.randn(3, 4), dim=1)
    with pytest.raises(ValueError, match="not one-hot"):
        emphasis_torch.gr_loss(z, soft)
    smoothed = F.one_hot(torch.tensor([0, 1, 2]), 4).float() * 0.9 + 0.025
    with pytest.raises(ValueError, match="example 0 is not one-hot"):
        emphasis_torch.cce_loss(z, smoothed)


# -- bad input -----------------------------------------------------------------------------


def _z():
    return torch.randn(4, 3)


def _y():
    return torch.tensor([0, 1, 2, 0])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: emphasis_torch.gr_loss(_z(), torch.tensor([0, 1, 3, 0])),
            ValueError,
            r"target must hold class indices in \[0, 2\].*got 3",
        ),
        (lambda: emphasis_torch.gr_loss(_z(), torch.tensor([0, -1, 2, 0])), ValueError, "got -1"),
        (
            lambda: emphasis_torch.cce_loss(_z(), torch.tensor([0, 1, 2, 5]), weight=torch.ones(3)),
            ValueError,
            "got 5",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z().index_fill(0, torch.tensor([2]), math.nan), _y()),
            ValueError,
            r"input contains NaN \(example 2\)",
        ),
        (
            lambda: emphasis_torch.mae_loss(_z().index_fill(1, torch.tensor([1]), math.inf), _y()),
            ValueError,
            r"input contains \+inf \(example 0\)",
        ),
        (
            lambda: emphasis_torch.cce_loss(torch.tensor([[math.inf, 0.0]]), torch.tensor([0])),
            ValueError,
            r"\+inf",
        ),
        (
            lambda: emphasis_torch.gr_loss(torch.full((2, 3), -math.inf), torch.tensor([0, 1])),
            ValueError,
            "every logit -inf",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), torch.tensor([0, 1, 2])),
            ValueError,
            r"target must have shape \(4,\)",
        ),
        (
            lambda: emphasis_torch.gr_loss(torch.randn(4, 3, 2), _y()),
            ValueError,
            r"target must have shape \(4, 2\)",
        ),
        (
            lambda: emphasis_torch.gr_loss(torch.tensor(1.0), torch.tensor(0)),
            ValueError,
            "class axis",
        ),
        (
            lambda: emphasis_torch.gr_loss(torch.ones(4, 3, dtype=torch.long), _y()),
            TypeError,
            "input must be a floating-point",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y().float()),
            TypeError,
            "target must hold integer class indices",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z().numpy(), _y()),
            TypeError,
            "input must be a torch.Tensor",
        ),
        (lambda: emphasis_torch.gr_loss(_z(), _y(), beta=-1.0), ValueError, "beta must be >= 0"),
        (lambda: emphasis_torch.gr_loss(_z(), _y(), lam=-0.5), ValueError, "lam must be >= 0"),
        (lambda: emphasis_torch.gr_loss(_z(), _y(), eps=-1e-3), ValueError, "eps must be >= 0"),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), beta=math.nan),
            ValueError,
            "beta must be a finite number",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), beta=torch.tensor(-2.0)),
            ValueError,
            "beta must be >= 0, got -2",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), lam=torch.tensor([1.0, 2.0])),
            ValueError,
            "lam must be a number or a 0-d tensor",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), beta=torch.tensor(8)),
            TypeError,
            "beta must be a floating-point tensor",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), beta="8"),
            TypeError,
            "beta must be a real number",
        ),
        (lambda: emphasis_torch.gce_loss(_z(), _y(), q=1.5), ValueError, r"q must be in \[0, 1\]"),
        (
            lambda: emphasis_torch.gce_loss(_z(), _y(), q=torch.tensor(-0.1)),
            ValueError,
            r"q must be in \[0, 1\], got -0.1",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), reduction="avg"),
            ValueError,
            "reduction must be one of",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), transform="tanh"),
            ValueError,
            "transform must be one of",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), normalize="yes"),
            TypeError,
            "normalize must be True or False",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), reported_loss="focal"),
            ValueError,
            "reported_loss must be",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), weight=torch.ones(4)),
            ValueError,
            r"weight must have shape \(3,\)",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), weight=torch.tensor([1.0, -1.0, 1.0])),
            ValueError,
            "weight must be finite and non-negative",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), weight=torch.ones(3, dtype=torch.long)),
            TypeError,
            "weight must be a floating-point",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), ignore_index=1.5),
            TypeError,
            "ignore_index must be an int",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), global_normalize=True),
            RuntimeError,
            "init_process_group",
        ),
        (
            lambda: emphasis_torch.gr_loss(_z(), _y(), normalize=False, global_normalize=True),
            ValueError,
            "needs normalize=True",
        ),
        (lambda: emphasis_torch.GRLoss(beta=-1.0), ValueError, "beta must be >= 0"),
        (lambda: emphasis_torch.GRLoss(lam=torch.tensor(-1.0)), ValueError, "lam must be >= 0"),
        (
            lambda: emphasis_torch.GRLoss(reduction="batchmean"),
            ValueError,
            "reduction must be one of",
        ),
        (lambda: emphasis_torch.GCELoss(q=2.0), ValueError, r"q must be in \[0, 1\]"),
        (
            lambda: emphasis_torch.CCELoss(weight=torch.tensor([1.0, -2.0, 1.0]))(_z(), _y()),
            ValueError,
            "weight must be finite and non-negative",
        ),
        (
            lambda: emphasis_torch.GRLoss(normalize=False, global_normalize=True),
            ValueError,
            "needs normalize=True",
        ),
    ],
)
def test_bad_input_raises_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_ignored_rows_may_be_all_minus_inf():
    z = torch.tensor([[0.0, 1.0, 2.0], [-math.inf, -math.inf, -math.inf]], requires_grad=True)
    loss = emphasis_torch.gr_loss(z, torch.tensor([2, -100]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all() and (z.grad[1] == 0).all()


def test_validate_false_skips_value_checks():
    z = torch.randn(3, 4)
    # Out of range labels are no longer reported (the result is meaningless, not a crash).
    emphasis_torch.gr_loss(z, torch.tensor([0, 9, 1]), validate=False)
    emphasis_torch.gr_loss(z, torch.tensor([0, 9, 1]), weight=torch.ones(4), validate=False)


# -- dtypes, autocast, devices ---------------------------------------------------------------


def test_autocast_loss_is_float32_and_gradient_matches():
    torch.manual_seed(7)
    layer = torch.nn.Linear(8, 5)
    x = torch.randn(12, 8)
    y = torch.randint(0, 5, (12,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(x)
        assert logits.dtype == torch.bfloat16
        logits.retain_grad()
        loss = emphasis_torch.gr_loss(logits, y)
        expected = F.cross_entropy(logits, y)
    assert loss.dtype == expected.dtype == torch.float32
    loss.backward()
    assert logits.grad.dtype == torch.bfloat16
    _, reference = _core(logits.detach().double(), y, emphasis.GR(8.0, 0.5))
    np.testing.assert_allclose(logits.grad.double().numpy(), reference, rtol=2e-2, atol=1e-3)
    torch.testing.assert_close(loss, emphasis_torch.cce_loss(logits.detach().float(), y))


def test_meta_tensors_no_host_round_trip():
    # Meta tensors hold no data: any NumPy conversion, .item() or host read would fail.
    z = torch.randn(64, 10, device="meta", requires_grad=True)
    y = torch.randint(0, 10, (64,), device="meta")
    w = torch.ones(10, device="meta")
    for fn, kwargs, _ in SCHEMES.values():
        loss = fn(z, y, weight=w, validate=False, return_stats=True, **kwargs)[0]
        loss.backward()
        assert z.grad.shape == z.shape and z.grad.device.type == "meta"
        z.grad = None
    beta = torch.tensor(8.0, device="meta")
    emphasis_torch.gr_loss(z, y, beta=beta, validate=False).backward()


def _saved_sizes(fn):
    """Element counts of the distinct storages saved for backward during fn()."""
    sizes = {}

    def pack(tensor):
        sizes[tensor.untyped_storage().data_ptr()] = tensor.numel()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return list(sizes.values())


@pytest.mark.parametrize("shape", [(32, 10), (8, 10, 4)])
def test_saves_no_more_full_tensors_than_cross_entropy(shape):
    z = torch.randn(*shape, requires_grad=True)
    y = torch.randint(0, 10, (shape[0], *shape[2:]))
    full = z.numel()
    ours = _saved_sizes(lambda: emphasis_torch.gr_loss(z, y, weight=torch.ones(10)))
    theirs = _saved_sizes(lambda: F.cross_entropy(z, y, weight=torch.ones(10)))
    assert sum(n >= full for n in theirs) == 1
    assert sum(n >= full for n in ours) == 1
    assert all(n == full or n <= full // 10 for n in ours)  # the rest are (M,) vectors


# -- statistics ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_stats_match_core(name):
    fn, kwargs, scheme = SCHEMES[name]
    generator = torch.Generator().manual_seed(8)
    z = torch.randn(12, 5, generator=generator, dtype=torch.float64) * 2
    y = torch.randint(0, 5, (12,), generator=generator)
    y[3] = -100
    weight = torch.linspace(0.5, 2.0, 5, dtype=torch.float64)
    _, stats = fn(z, y, weight=weight, return_stats=True, **kwargs)
    expected = emphasis.batch_stats(z.numpy(), y.numpy(), scheme, weight=weight.numpy())
    for field in ("p", "raw_weights", "weights"):
        np.testing.assert_allclose(
            getattr(stats, field).numpy(), getattr(expected, field), rtol=1e-12
        )
    assert math.isnan(float(stats.p[3]))
    assert float(stats.focus) == pytest.approx(expected.focus)
    assert float(stats.spread) == pytest.approx(expected.spread, rel=1e-12)
    assert float(stats.effective_sample_size) == pytest.approx(
        expected.effective_sample_size, rel=1e-12
    )
    assert not stats.p.requires_grad


def test_module_track_stats_and_tensor_focus():
    loss_fn = emphasis_torch.GRLoss(beta=8.0, lam=torch.tensor(1.0), track_stats=True)
    assert loss_fn.last_stats is None
    z = torch.randn(6, 4, requires_grad=True)
    loss_fn(z, torch.tensor([0, 1, 2, 3, 0, 1])).backward()
    stats = loss_fn.last_stats
    assert stats.p.shape == (6,) and float(stats.focus) == 0.5
    assert stats.weights.mean().item() == pytest.approx(1.0, rel=1e-6)


# -- Modules -------------------------------------------------------------------------------


def test_modules_equal_functionals_and_store_config():
    z = torch.randn(7, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, -100, 1, 2])
    weight = torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=torch.float64)
    pairs = [
        (
            emphasis_torch.GRLoss(beta=12.0, lam=1.0, weight=weight),
            emphasis_torch.gr_loss,
            {"beta": 12.0, "lam": 1.0},
        ),
        (emphasis_torch.CCELoss(weight=weight), emphasis_torch.cce_loss, {}),
        (emphasis_torch.MAELoss(weight=weight), emphasis_torch.mae_loss, {}),
        (emphasis_torch.GCELoss(q=0.3, weight=weight), emphasis_torch.gce_loss, {"q": 0.3}),
    ]
    for module, fn, kwargs in pairs:
        assert "weight" in dict(module.named_buffers())
        assert "weight" in module.state_dict()
        assert not list(module.parameters())
        _, grad_module = _ours(lambda a, b, m=module: m(a, b), {}, z, y)
        _, grad_fn = _ours(fn, kwargs, z, y, weight=weight)
        torch.testing.assert_close(grad_module, grad_fn)
    gr = pairs[0][0]
    assert repr(gr).startswith("GRLoss(beta=12, lam=1, transform='exp', normalize=True, eps=1e-06")
    assert "weight=<(4,)>" in repr(gr)
    assert isinstance(gr.scheme, emphasis.GR) and gr.scheme.beta == 12.0
    assert (
        repr(emphasis_torch.GCELoss(q=0.3)) == "GCELoss(q=0.3, reduction='mean', ignore_index=-100)"
    )
    # The class weight follows .to() like any buffer.
    assert gr.to(torch.float32).weight.dtype == torch.float32


def test_module_tensor_hyperparameters_are_buffers_updated_in_place():
    loss_fn = emphasis_torch.GRLoss(
        beta=torch.tensor(2.0), lam=0.0, transform="identity", normalize=False, eps=0.0
    )
    assert set(dict(loss_fn.named_buffers())) == {"beta"}
    z = torch.randn(5, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    _, grad_cce = _ours(emphasis_torch.cce_loss, {}, z, y)
    _, grad = _ours(lambda a, b: loss_fn(a, b), {}, z, y)
    torch.testing.assert_close(grad, grad_cce)
    loss_fn.beta.fill_(4.0)  # a schedule: w doubles
    _, grad = _ours(lambda a, b: loss_fn(a, b), {}, z, y)
    torch.testing.assert_close(grad, 2 * grad_cce)


def test_drop_in_for_cross_entropy_loss_in_a_training_step():
    torch.manual_seed(9)
    model = torch.nn.Linear(6, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = emphasis_torch.GRLoss(beta=8.0, lam=0.5)
    x = torch.randn(32, 6)
    y = torch.randint(0, 3, (32,))
    before = model.weight.detach().clone()
    for _ in range(3):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    assert loss.shape == () and loss.requires_grad
    assert not torch.equal(model.weight, before)


def test_global_normalize_and_its_deprecated_alias_global_batch():
    with pytest.raises(RuntimeError, match="init_process_group"):
        emphasis_torch.gr_loss(_z(), _y(), global_normalize=True)
    with pytest.raises(ValueError, match="needs normalize=True"):
        emphasis_torch.gr_loss(_z(), _y(), normalize=False, global_normalize=True)
    with pytest.raises(ValueError, match="needs normalize=True"):
        emphasis_torch.GRLoss(normalize=False, global_normalize=True)
    loss_fn = emphasis_torch.GRLoss(global_normalize=True)
    assert loss_fn.global_normalize is True and "global_normalize=True" in repr(loss_fn)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name and the defaults do not warn
        emphasis_torch.gr_loss(_z(), _y(), global_normalize=False)
        assert "global_" not in repr(emphasis_torch.GRLoss())
    z = _z()
    with pytest.warns(DeprecationWarning, match="use global_normalize"):
        expected = emphasis_torch.gr_loss(z, _y(), global_batch=False)
    torch.testing.assert_close(expected, emphasis_torch.gr_loss(z, _y()))
    with pytest.warns(DeprecationWarning, match="use global_normalize"):
        old = emphasis_torch.GRLoss(global_batch=True)
    # Same behaviour as before the rename, its repr included.
    assert old.global_normalize is True and "global_batch=True" in repr(old)
