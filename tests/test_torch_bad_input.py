"""emphasis_torch: bad input is refused by name, never turned into a wrong number (issue 13).

The torch section of tests/test_bad_input.py, kept in its own file.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import emphasis

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

import emphasis_torch  # noqa: E402

LOSSES = [emphasis_torch.gr_loss, emphasis_torch.cce_loss, emphasis_torch.mae_loss]


# -- item 1: float one-hot targets follow F.cross_entropy's probability targets -------------


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_float_one_hot_target_with_weight_matches_cross_entropy(shape, reduction):
    torch.manual_seed(0)
    z = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (shape[0], *shape[2:]))
    one_hot = torch.movedim(F.one_hot(labels, 4), -1, 1).double()
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    expected = F.cross_entropy(z, one_hot, weight=weight, reduction=reduction)
    loss = emphasis_torch.cce_loss(z, one_hot, weight=weight, reduction=reduction)
    torch.testing.assert_close(loss, expected)
    (grad,) = torch.autograd.grad(loss.sum(), z)
    (expected_grad,) = torch.autograd.grad(expected.sum(), z)
    torch.testing.assert_close(grad, expected_grad)
    # Integer targets keep dividing "mean" by the weight sum, as F.cross_entropy does.
    torch.testing.assert_close(
        emphasis_torch.cce_loss(z, labels, weight=weight, reduction=reduction),
        F.cross_entropy(z, labels, weight=weight, reduction=reduction),
    )


def test_float_one_hot_target_refuses_ignore_index_as_cross_entropy():
    z = torch.randn(4, 3)
    one_hot = F.one_hot(torch.tensor([0, 1, 2, 0]), 3).float()
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        F.cross_entropy(z, one_hot, ignore_index=0)
    for loss in LOSSES:
        with pytest.raises(ValueError, match="ignore_index is not supported with a floating"):
            loss(z, one_hot, ignore_index=0)
    # A negative ignore_index matches no class: both ignore nothing.
    torch.testing.assert_close(
        emphasis_torch.cce_loss(z, one_hot, ignore_index=-1),
        F.cross_entropy(z, one_hot, ignore_index=-1),
    )


# -- item 2: meta tensors, bool one-hot targets, no classes ---------------------------------


def test_meta_tensors_with_validate_skip_the_value_checks():
    z = torch.randn(8, 5, device="meta", requires_grad=True)
    y = torch.randint(0, 5, (8,), device="meta")
    weight = torch.ones(5, device="meta")
    loss = emphasis_torch.gr_loss(z, y, weight=weight, beta=torch.tensor(8.0, device="meta"))
    loss.backward()
    assert loss.device.type == "meta" and z.grad.shape == z.shape
    module = emphasis_torch.GRLoss(weight=weight, lam=torch.tensor(0.5, device="meta"))
    assert module(z, y).device.type == "meta"


def test_bool_one_hot_target_is_read_as_its_labels():
    z = torch.randn(4, 3, dtype=torch.float64)
    labels = torch.tensor([0, 2, 1, 2])
    one_hot = F.one_hot(labels, 3).bool()
    weight = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    for loss in LOSSES:
        torch.testing.assert_close(
            loss(z, one_hot, weight=weight, ignore_index=2),
            loss(z, labels, weight=weight, ignore_index=2),
        )
    with pytest.raises(ValueError, match="example 1 is not one-hot"):
        emphasis_torch.gr_loss(z, torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]]).bool())


@pytest.mark.parametrize("one_hot", [False, True])
def test_no_classes_is_refused_by_name(one_hot):
    z = torch.zeros(4, 0)
    target = torch.zeros(4, 0) if one_hot else torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="input must have at least one class"):
        emphasis_torch.gr_loss(z, target)


# -- item 3: a class weight of the wrong shape is reported as that ------------------------


def test_weight_of_wrong_shape_and_negative_entry_is_a_shape_error():
    z, y = torch.zeros(2, 3), torch.tensor([0, 1])
    weight = torch.tensor([1.0, -1.0])
    shape_error = r"weight must have shape \(3,\) \(one per class\), got \(2,\)"
    with pytest.raises(ValueError, match=shape_error):
        emphasis_torch.cce_loss(z, y, weight=weight)
    loss_fn = emphasis_torch.CCELoss(weight=weight)  # the number of classes is not known yet
    with pytest.raises(ValueError, match=shape_error):
        loss_fn(z, y)
    with pytest.raises(ValueError, match="weight must be finite and non-negative"):
        loss_fn(torch.zeros(2, 2), y)


# -- item 4: hyperparameters the compute dtype cannot hold ---------------------------------

Z_MINUS_INF = [[0.0, 1.0, -math.inf], [0.5, 0.0, 0.0]]
CONFIDENT = [[30.0, 0.0, 0.0], [0.5, 0.0, 0.0]]


def _grad(rows, dtype, **kwargs):
    z = torch.tensor(rows, dtype=dtype, requires_grad=True)
    emphasis_torch.gr_loss(z, torch.tensor([0, 0]), **kwargs).backward()
    return z.grad


def _core_grad(rows, **kwargs):
    return emphasis.logit_grad(np.array(rows), np.array([0, 0]), emphasis.GR(**kwargs))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weights_beyond_the_exp_range_without_normalisation_are_refused(dtype):
    with pytest.raises(ValueError, match=r"beta must be at most 230.5 for normalize=False"):
        _grad(Z_MINUS_INF, dtype, beta=1000.0, normalize=False)
    with pytest.raises(ValueError, match=r"beta must be at most 230.5 for normalize=False"):
        _grad(Z_MINUS_INF, dtype, beta=torch.tensor(1000.0), normalize=False)
    # Within the range the gradient is the core's, and exactly 0 at the -inf logit.
    grad = _grad(Z_MINUS_INF, dtype, beta=230.0, normalize=False)
    expected = _core_grad(Z_MINUS_INF, beta=230.0, normalize=False)
    assert torch.isfinite(grad).all() and grad[0, 2] == 0
    np.testing.assert_allclose(
        grad.double().numpy(), expected, rtol=2e-2 if dtype == torch.bfloat16 else 1e-4
    )


def test_float64_keeps_its_own_exp_range():
    grad = _grad(Z_MINUS_INF, torch.float64, beta=1000.0, normalize=False)
    expected = _core_grad(Z_MINUS_INF, beta=1000.0, normalize=False)
    assert grad[0, 2] == 0
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-9)
    with pytest.raises(ValueError, match=r"beta must be at most 1844 for normalize=False"):
        _grad(Z_MINUS_INF, torch.float64, beta=2000.0, normalize=False)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"beta": 1e39}, "beta"), ({"lam": 1e300}, "lam"), ({"eps": 1e39}, "eps")],
)
def test_hyperparameters_beyond_float32_are_refused_by_name(kwargs, name):
    match = rf"{name} must be at most 3.4e\+38 to compute in float32, got"
    with pytest.raises(ValueError, match=match):
        _grad(CONFIDENT, torch.float32, **kwargs)
    tensor = {name: torch.tensor(kwargs[name], dtype=torch.float64)}
    with pytest.raises(ValueError, match=match):
        _grad(CONFIDENT, torch.float32, **tensor)
    with pytest.raises(ValueError, match=match):
        emphasis_torch.GRLoss(**tensor)(torch.tensor(CONFIDENT), torch.tensor([0, 0]))
    # float64 holds them: the core's gradient, finite.
    grad = _grad(CONFIDENT, torch.float64, **kwargs)
    np.testing.assert_allclose(
        grad.numpy(), _core_grad(CONFIDENT, **kwargs), rtol=1e-9, atol=1e-300
    )


def test_compiled_tensor_beta_beyond_the_exp_range_fails_in_graph():
    def loss_fn(z, y, beta):
        return emphasis_torch.gr_loss(z, y, beta=beta, normalize=False)

    compiled = torch.compile(loss_fn, fullgraph=True)
    z, y = torch.randn(4, 3, requires_grad=True), torch.tensor([0, 1, 2, 0])
    compiled(z, y, torch.tensor(8.0)).backward()
    assert torch.isfinite(z.grad).all()
    with pytest.raises(RuntimeError, match=r"beta: exp\(beta max h\) overflows float32"):
        compiled(z, y, torch.tensor(1000.0))
