"""Bad input is refused by name, never turned into a wrong number (issue 13).

Each case here once gave a silently wrong number or an error that did not name the
argument; the adapters' own test files hold their framework-specific cases.
"""

from __future__ import annotations

import decimal
import importlib.util

import numpy as np
import pytest

import emphasis

Z = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
Y = np.array([0, 0])

NOT_REAL_SCALARS = [
    (np.array([-5.0]), ValueError, "must be a real scalar, got an array of shape"),
    (np.zeros((1, 1)), ValueError, "must be a real scalar"),
    ([8.0], TypeError, "must be a real number, got"),
    ((8.0,), TypeError, "must be a real number"),
    (1j, TypeError, "must be a real number"),
    (np.complex128(1.0), TypeError, "must be a real number, got dtype complex128"),
    (decimal.Decimal("8"), TypeError, "must be a real number"),
    (np.True_, TypeError, "must be a real number"),
]


@pytest.mark.parametrize(("value", "error", "match"), NOT_REAL_SCALARS)
@pytest.mark.parametrize("name", ["beta", "lam", "eps"])
def test_gr_hyperparameters_must_be_real_scalars(name, value, error, match):
    with pytest.raises(error, match=f"{name} {match}"):
        emphasis.GR(**{name: value})


@pytest.mark.parametrize(("value", "error", "match"), NOT_REAL_SCALARS)
def test_gce_q_must_be_a_real_scalar(value, error, match):
    with pytest.raises(error, match=f"q {match}"):
        emphasis.GCE(q=value)


def test_real_scalars_are_accepted_as_floats():
    scheme = emphasis.GR(beta=np.float32(4.0), lam=np.array(1.0), eps=np.int64(0))
    assert (scheme.beta, scheme.lam, scheme.eps) == (4.0, 1.0, 0.0)
    assert all(type(v) is float for v in (scheme.beta, scheme.lam, scheme.eps))


@pytest.mark.parametrize("ignore_index", [1.5, "x", None, True])
def test_core_ignore_index_must_be_an_int(ignore_index):
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        emphasis.logit_grad(Z, Y, emphasis.CCE(), ignore_index=ignore_index)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_torch_refuses_a_numpy_array_hyperparameter():
    import torch

    import emphasis_torch

    with pytest.raises(ValueError, match="beta must be a real scalar"):
        emphasis_torch.gr_loss(torch.tensor(Z), torch.tensor(Y), beta=np.array([-5.0]))
    with pytest.raises(ValueError, match="beta must be a real scalar"):
        emphasis_torch.GRLoss(beta=np.array([-5.0]))


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="needs keras")
def test_keras_config_with_a_list_hyperparameter_is_refused():
    """A saved model whose config says "beta": [-5.0] must not load and train with -5."""
    import emphasis_tf

    config = emphasis_tf.GRLoss(beta=8.0).get_config()
    config["beta"] = [-5.0]
    with pytest.raises(TypeError, match="beta must be a real number, got"):
        emphasis_tf.GRLoss.from_config(config)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax")
def test_jax_refuses_a_one_element_array_hyperparameter():
    import emphasis_jax

    with pytest.raises(ValueError, match="beta must be a"):
        emphasis_jax.gr_loss(Z.astype("float32"), Y, beta=np.array([-5.0]))


# -- labels that a cast would change (issue 13, items 2, 3 and 9) --------------------------

BIG = np.array([0, 2**32 + 1], dtype=np.int64)  # int32 would read 2**32 + 1 as class 1


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax")
def test_jax_refuses_int64_labels_beyond_int32():
    import emphasis_jax

    with pytest.raises(
        ValueError, match=r"labels must be class indices; example 1 holds 4294967297"
    ):
        emphasis_jax.cce_loss(Z.astype("float32"), BIG)


@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="needs keras")
def test_keras_refuses_int64_labels_beyond_int32():
    import emphasis_tf

    with pytest.raises(
        ValueError, match="y_true must be class indices; example 1 holds 4294967297"
    ):
        emphasis_tf.cce_loss(BIG, Z.astype("float32"), from_logits=True)
    with pytest.raises(ValueError, match="y_true"):
        emphasis_tf.CCELoss(from_logits=True)(BIG, Z.astype("float32"))


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax")
def test_jax_ignore_index_is_not_cast_to_the_label_dtype():
    import emphasis_jax

    z = np.zeros((2, 200), "float32")
    with pytest.raises(ValueError, match="got 156"):  # not ignored as -100 cast to uint8
        emphasis_jax.cce_loss(z[:, :3], np.array([156, 0], "uint8"), ignore_index=-100)
    losses = emphasis_jax.cce_loss(z, np.array([156, 0], "uint8"), ignore_index=-100)
    assert float(losses[0]) > 0  # class 156 of 200 counts
    with pytest.raises(ValueError, match="got -1"):  # int8 -1 is not ignore_index=255
        emphasis_jax.cce_loss(z[:, :3], np.array([-1, 0], "int8"), ignore_index=255)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "int64"])
def test_torch_accepts_every_integer_target_dtype(dtype):
    import torch
    import torch.nn.functional as F

    import emphasis_torch

    z = torch.randn(4, 5, dtype=torch.float64)
    target = torch.tensor([0, 4, 2, 1]).to(getattr(torch, dtype))
    expected = F.cross_entropy(z, target.to(torch.int64))
    torch.testing.assert_close(emphasis_torch.cce_loss(z, target), expected)
    if dtype == "uint8":  # a segmentation mask with 255 = ignore
        mask = torch.tensor([0, 255, 2, 1], dtype=torch.uint8)
        loss = emphasis_torch.cce_loss(z, mask, ignore_index=255)
        torch.testing.assert_close(loss, F.cross_entropy(z, mask.long(), ignore_index=255))
        with pytest.raises(ValueError, match="got 255"):  # -100 is not 255 cast to uint8
            emphasis_torch.cce_loss(z, mask)


# -- JAX (issue 13: bad input never becomes a wrong number) ---------------------------------

Z32 = np.array([[200.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "float32")  # row 0: p = 1 in float32


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs jax")
@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [("beta", 1e39, "1e+39"), ("lam", 1e300, "1e+300"), ("eps", 1e39, "1e+39")],
)
def test_jax_refuses_hyperparameters_float32_cannot_hold(name, value, shown):
    """float32 would make them inf, and the gradient NaN where the float64 core is finite."""
    import re

    import jax

    import emphasis_jax

    match = re.escape(f"{name} must be at most 3.4e+38 to compute in float32, got {shown}")
    with pytest.raises(ValueError, match=match):
        emphasis_jax.gr_loss(Z32, Y, **{name: value})
    with pytest.raises(ValueError, match=match):  # checked under jit too: the value is known
        jax.jit(jax.grad(lambda z: emphasis_jax.gr_loss(z, Y, **{name: value}).sum()))(Z32)
    with jax.enable_x64(True):  # a concrete float64 JAX scalar, float32 logits
        with pytest.raises(ValueError, match=match):
            emphasis_jax.gr_loss(Z32, Y, **{name: jax.numpy.asarray(value, "float64")})
        # float64 logits compute in float64, which holds the value: finite, as the core
        z64 = Z32.astype("float64")
        grad = jax.grad(lambda z: emphasis_jax.gr_loss(z, Y, **{name: value}).mean())(z64)
        expected = emphasis.logit_grad(z64, Y, emphasis.GR(**{name: value}))
        np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-300)
