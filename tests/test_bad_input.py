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
