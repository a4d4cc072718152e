"""emphasis_torch under torch.compile (fullgraph), torch.func.grad / vmap, and double backward."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch._dynamo.testing import CompileCounterWithBackend  # noqa: E402

import emphasis  # noqa: E402
import emphasis_torch  # noqa: E402

pytestmark = pytest.mark.torch

LOSSES = [
    (emphasis_torch.gr_loss, {"beta": 8.0, "lam": 0.5}),
    (emphasis_torch.cce_loss, {}),
    (emphasis_torch.mae_loss, {}),
    (emphasis_torch.gce_loss, {"q": 0.7}),
]


def _batch(n=16, c=5, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=generator, dtype=dtype) * 2
    y = torch.randint(0, c, (n,), generator=generator)
    y[1] = -100
    return z, y


def _grad(fn, z, y):
    z = z.detach().clone().requires_grad_()
    loss = fn(z, y)
    loss.backward()
    return loss.detach(), z.grad


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# -- torch.compile ---------------------------------------------------------------------------


@pytest.mark.parametrize(("fn", "kwargs"), LOSSES, ids=["gr", "cce", "mae", "gce"])
def test_fullgraph_aot_matches_eager(fn, kwargs):
    weight = torch.linspace(0.5, 2.0, 5)

    def loss(z, y):
        return fn(z, y, weight=weight, **kwargs)

    counter = CompileCounterWithBackend("aot_eager")  # dynamo + AOTAutograd (traces backward)
    compiled = torch.compile(loss, backend=counter, fullgraph=True)
    z, y = _batch()
    eager_loss, eager_grad = _grad(loss, z, y)
    loss_c, grad_c = _grad(compiled, z, y)
    torch.testing.assert_close(loss_c, eager_loss)
    torch.testing.assert_close(grad_c, eager_grad)
    assert counter.frame_count == 1


def test_inductor_fullgraph_matches_core_nd_input():
    # The real compiler once (about 10 s here); the other compile tests use aot_eager.
    def loss(z, y, beta):
        return emphasis_torch.gr_loss(
            z, y, beta=beta, lam=1.0, weight=torch.tensor([1.0, 2.0, 0.5])
        )

    compiled = torch.compile(loss, fullgraph=True)
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(4, 3, 6, generator=generator) * 3
    y = torch.randint(0, 3, (4, 6), generator=generator)
    value, grad = _grad(lambda a, b: compiled(a, b, torch.tensor(12.0)), z, y)
    ref_value, ref_grad = emphasis.loss_and_grad(
        z.double().numpy(), y.numpy(), emphasis.GR(12.0, 1.0), weight=np.array([1.0, 2.0, 0.5])
    )
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(value), float(ref_value), rtol=1e-6)


def test_tensor_hyperparameters_never_recompile():
    counter = CompileCounterWithBackend("aot_eager")
    loss_fn = emphasis_torch.GRLoss(
        beta=torch.tensor(8.0), lam=torch.tensor(0.5), eps=torch.tensor(1e-6)
    )
    compiled = torch.compile(lambda z, y: loss_fn(z, y), backend=counter, fullgraph=True)
    z, y = _batch(dtype=torch.float64)
    for beta in (8.0, 10.0, 12.0, 16.0):
        loss_fn.beta.fill_(beta)
        _, grad = _grad(compiled, z, y)
        _, reference = _grad(lambda a, b, beta=beta: emphasis_torch.gr_loss(a, b, beta=beta), z, y)
        torch.testing.assert_close(grad, reference)
    assert counter.frame_count == 1


def test_stats_under_compile():
    counter = CompileCounterWithBackend("aot_eager")
    loss_fn = emphasis_torch.GRLoss(beta=12.0, lam=1.0, track_stats=True)
    compiled = torch.compile(lambda z, y: loss_fn(z, y), backend=counter, fullgraph=True)
    z, y = _batch()
    compiled(z.requires_grad_(), y).backward()
    stats = loss_fn.last_stats
    expected = emphasis.batch_stats(z.detach().numpy(), y.numpy(), emphasis.GR(12.0, 1.0))
    np.testing.assert_allclose(stats.weights.numpy(), expected.weights, rtol=1e-5)
    assert float(stats.spread) == pytest.approx(expected.spread, rel=1e-5)
    assert stats.focus == 0.5
    # The functional form, returning the statistics, compiles in one graph too.
    f = torch.compile(
        lambda a, b: emphasis_torch.gr_loss(a, b, return_stats=True),
        backend=counter,
        fullgraph=True,
    )
    _, stats = f(z, y)
    assert math.isnan(float(stats.p[1])) and counter.frame_count == 2


@pytest.mark.parametrize(
    ("z", "y", "match"),
    [
        (torch.zeros(3, 4), torch.tensor([0, 4, 1]), "target: class index out of range"),
        (torch.tensor([[0.0, math.nan], [0.0, 0.0]]), torch.tensor([0, 1]), "NaN or \\+inf"),
        (torch.tensor([[math.inf, 0.0], [0.0, 0.0]]), torch.tensor([0, 1]), "NaN or \\+inf"),
    ],
)
def test_checks_under_compile_are_in_graph_asserts(z, y, match):
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(emphasis_torch.gr_loss, backend=counter, fullgraph=True)
    with pytest.raises(RuntimeError, match=match):
        compiled(z, y)
    unchecked = torch.compile(
        lambda a, b: emphasis_torch.gr_loss(a, b, validate=False), backend=counter, fullgraph=True
    )
    unchecked(z, y)  # no assert in this graph


def test_tensor_hyperparameter_checked_under_compile():
    compiled = torch.compile(emphasis_torch.gr_loss, backend="aot_eager", fullgraph=True)
    z, y = _batch()
    with pytest.raises(RuntimeError, match="beta must be >= 0"):
        compiled(z, y, beta=torch.tensor(-1.0))


# -- torch.func ------------------------------------------------------------------------------


@pytest.mark.parametrize(("fn", "kwargs"), LOSSES, ids=["gr", "cce", "mae", "gce"])
def test_func_grad_matches_autograd(fn, kwargs):
    z, y = _batch(dtype=torch.float64)
    _, expected = _grad(lambda a, b: fn(a, b, **kwargs), z, y)
    grad = torch.func.grad(lambda a: fn(a, y, **kwargs))(z)
    torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize(("fn", "kwargs"), LOSSES, ids=["gr", "cce", "mae", "gce"])
def test_vmap_over_batches_matches_loop(fn, kwargs):
    generator = torch.Generator().manual_seed(2)
    zs = torch.randn(3, 8, 4, generator=generator, dtype=torch.float64)
    ys = torch.randint(0, 4, (3, 8), generator=generator)

    def loss(a, b):
        return fn(a, b, **kwargs)

    with warnings.catch_warnings():  # no op falls back to vmap's slow loop (a UserWarning)
        warnings.simplefilter("error", UserWarning)
        values = torch.func.vmap(loss)(zs, ys)
        grads = torch.func.vmap(torch.func.grad(loss))(zs, ys)
    for i in range(3):
        value, grad = _grad(loss, zs[i], ys[i])
        torch.testing.assert_close(values[i], value)
        torch.testing.assert_close(grads[i], grad)


def test_vmap_with_tensor_beta_and_reduction_none():
    zs, ys = torch.randn(2, 6, 3, dtype=torch.float64), torch.randint(0, 3, (2, 6))
    beta = torch.tensor(6.0, dtype=torch.float64)
    out = torch.func.vmap(lambda a, b: emphasis_torch.gr_loss(a, b, beta=beta, reduction="none"))(
        zs, ys
    )
    assert out.shape == (2, 6)
    torch.testing.assert_close(out[1], emphasis_torch.cce_loss(zs[1], ys[1], reduction="none"))


# -- double backward -------------------------------------------------------------------------


@pytest.mark.parametrize(("fn", "kwargs"), LOSSES, ids=["gr", "cce", "mae", "gce"])
def test_double_backward_raises_clear_error(fn, kwargs):
    z, y = _batch(dtype=torch.float64)
    z.requires_grad_()
    (grad,) = torch.autograd.grad(fn(z, y, **kwargs), z, create_graph=True)
    # The first derivative is still right with create_graph=True ...
    _, expected = _grad(lambda a, b: fn(a, b, **kwargs), z, y)
    torch.testing.assert_close(grad, expected)
    # ... but differentiating it again raises instead of returning a wrong answer.
    with pytest.raises(RuntimeError, match="support one backward pass only"):
        grad.pow(2).sum().backward()
    with pytest.raises(RuntimeError, match="support one backward pass only"):
        torch.func.grad(lambda a: torch.func.grad(lambda b: fn(b, y, **kwargs))(a).pow(2).sum())(
            z.detach()
        )
    # Forward mode (hessian = jacfwd(jacrev)) is refused by torch itself: no jvp rule (a custom
    # jvp would make torch.compile graph-break).
    with pytest.raises(RuntimeError, match="forward mode AD"):
        torch.func.hessian(lambda a: fn(a, y, **kwargs))(z.detach())
    with pytest.raises(RuntimeError, match="forward mode AD"):
        torch.func.jvp(lambda a: fn(a, y, **kwargs), (z.detach(),), (torch.ones_like(z),))


def test_double_backward_through_a_model_raises():
    # The gradient penalty pattern: the parameter gradient depends on the logits through
    # this op's backward; that dependence must not be silently dropped.
    torch.manual_seed(3)
    layer = torch.nn.Linear(4, 3)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    grads = torch.autograd.grad(
        emphasis_torch.gr_loss(layer(x), y), layer.weight, create_graph=True
    )
    with pytest.raises(RuntimeError, match="support one backward pass only"):
        grads[0].pow(2).sum().backward()


def test_compiling_warns_nothing():
    # A functools cache in the kernel choice made Dynamo warn (UserWarning) at every
    # compilation. (torch 2.13's Dynamo itself raises a DeprecationWarning about
    # instantiating autograd Functions: not ours, eager calls never instantiate them.)
    import warnings

    torch._dynamo.reset()
    compiled = torch.compile(emphasis_torch.gr_loss, fullgraph=True, backend="eager")
    z, y = _batch()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _grad(compiled, z, y)
