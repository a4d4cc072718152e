"""Backend runners for :mod:`emphasis.check`; each imports its framework only when called.

A runner takes a :class:`~emphasis.check.Case`, a dtype name and a mode and returns
``(loss, grad)`` as float64 NumPy arrays in the case's layout, computed through the
adapter's public API with the framework's own autodiff.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from emphasis.schemes import CCE, GCE, GR, MAE, Scheme

if TYPE_CHECKING:
    from emphasis.check import Backend, Case, Runner


def _kwargs(scheme: Scheme) -> tuple[str, dict[str, Any]]:
    """The adapter function name and hyperparameters for a scheme."""
    if isinstance(scheme, GR):
        return "gr_loss", {
            "beta": scheme.beta,
            "lam": scheme.lam,
            "transform": scheme.transform,
            "normalize": scheme.normalize,
            "eps": scheme.eps,
            "reported_loss": scheme.reported_loss,
        }
    if isinstance(scheme, GCE):
        return "gce_loss", {"q": scheme.q}
    if isinstance(scheme, MAE):
        return "mae_loss", {}
    if isinstance(scheme, CCE):
        return "cce_loss", {}
    raise TypeError(f"unknown scheme {scheme!r}")


def _reduce_per_example(
    losses: Any, valid: np.ndarray, reduction: str, cast: Any, dtype: str, xp: Any
) -> Any:
    """Reduce per-example losses (already 0 where ignored) as the core does.

    Sums run in the compute dtype (float32 for 16-bit losses), as Keras's reductions
    and torch's do: a float16 sum of losses in the thousands overflows.
    """
    losses = cast(losses, "float64" if dtype == "float64" else "float32")
    if reduction == "none":
        return losses
    total = xp.sum(losses)
    if reduction == "sum":
        return total
    count = int(valid.sum())
    # The core's convention (torch's): a mean over no valid example is NaN, gradient 0.
    return total / count if count else total * 0.0 + math.nan


# -- PyTorch -----------------------------------------------------------------------------
def _torch_runner() -> Runner:
    import torch

    emphasis_torch = importlib.import_module("emphasis_torch")  # not followed by mypy

    dtypes = {
        "float64": torch.float64,
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
    }

    def run(case: Case, dtype: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
        name, kwargs = _kwargs(case.scheme)
        function = getattr(emphasis_torch, name)
        device = "cuda" if mode.endswith("cuda") else "cpu"
        logits = np.moveaxis(case.logits, case.axis, 1) if case.logits.ndim > 1 else case.logits
        z = torch.tensor(logits, dtype=dtypes[dtype], device=device, requires_grad=True)
        y = torch.tensor(case.labels, device=device)

        def loss_of(z: Any, y: Any) -> Any:
            return function(
                z, y, reduction=case.reduction, ignore_index=case.ignore_index, **kwargs
            )

        if mode.startswith("compile"):
            # Each case is a new specialisation: start afresh so that the recompile limit
            # never silently sends a case back to eager; fullgraph proves there is no break.
            torch._dynamo.reset()
            loss_of = torch.compile(loss_of, fullgraph=True)
        loss = loss_of(z, y)
        loss.backward(torch.ones_like(loss))
        assert z.grad is not None
        grad = z.grad.detach().to(torch.float64).cpu().numpy()
        if case.logits.ndim > 1:
            grad = np.moveaxis(grad, 1, case.axis)
        return loss.detach().to(torch.float64).cpu().numpy(), grad

    return run


# -- TensorFlow and Keras ----------------------------------------------------------------
def _keras_runner() -> Runner:
    """Keras on its active backend, through emphasis_tf's functional forms."""
    import keras

    emphasis_tf = importlib.import_module("emphasis_tf")

    backend = keras.backend.backend()

    def run(case: Case, dtype: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
        name, kwargs = _kwargs(case.scheme)
        function = getattr(emphasis_tf, name)
        labels = case.labels
        valid = labels != case.ignore_index
        dtype_name = dtype

        def loss_of(z: Any, y: Any) -> Any:
            losses = function(
                y, z, from_logits=True, axis=case.axis, ignore_class=case.ignore_index, **kwargs
            )
            return _reduce_per_example(
                losses, valid, case.reduction, keras.ops.cast, dtype, keras.ops
            )

        return _keras_value_and_grad(backend, mode, loss_of, case.logits, labels, dtype_name)

    return run


def _keras_value_and_grad(
    backend: str, mode: str, loss_of: Any, logits: np.ndarray, labels: np.ndarray, dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    if backend == "tensorflow":
        import tensorflow as tf

        z = tf.constant(logits, dtype=dtype)
        y = tf.constant(labels)

        def step(z: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss = loss_of(z, y)
            return loss, tape.gradient(loss, z, output_gradients=tf.ones_like(loss))

        if mode == "function":
            step = tf.function(step)
        elif mode == "xla":
            step = tf.function(step, jit_compile=True)
        loss, grad = step(z, y)
        return (np.asarray(tf.cast(loss, tf.float64)), np.asarray(tf.cast(grad, tf.float64)))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def total(z: Any, y: Any) -> Any:
            loss = loss_of(z, y)
            return jnp.sum(loss), loss

        with jax.enable_x64(dtype == "float64"):
            function = jax.grad(total, has_aux=True)
            grad, loss = function(jnp.asarray(logits, dtype=dtype), jnp.asarray(labels))
            return (np.asarray(loss, dtype=np.float64), np.asarray(grad, dtype=np.float64))
    import torch

    z = torch.tensor(logits, dtype=getattr(torch, dtype), requires_grad=True)
    loss = loss_of(z, torch.tensor(labels))
    loss.backward(torch.ones_like(loss))
    assert z.grad is not None
    return (loss.detach().double().numpy(), z.grad.double().numpy())


def run_keras_subprocess(keras_backend: str, seed: int, count: int) -> list[dict[str, Any]]:
    """The JSON results of ``emphasis.check`` for Keras on ``keras_backend``."""
    env = dict(os.environ, KERAS_BACKEND=keras_backend)
    command = [
        sys.executable,
        "-m",
        "emphasis.check",
        "--json",
        "--backends",
        "keras",
        "--seed",
        str(seed),
        "--cases",
        str(count),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    try:
        return list(json.loads(done.stdout))
    except json.JSONDecodeError:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return [
            {
                "backend": f"keras[{keras_backend}]",
                "mode": "-",
                "dtype": "-",
                "error": " | ".join(tail) or f"exit status {done.returncode}",
            }
        ]


# -- JAX ---------------------------------------------------------------------------------
def _jax_runner() -> Runner:
    import jax
    import jax.numpy as jnp

    emphasis_jax = importlib.import_module("emphasis_jax")

    def run(case: Case, dtype: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
        name, kwargs = _kwargs(case.scheme)
        function = getattr(emphasis_jax, name)
        valid = case.labels != case.ignore_index
        axis = case.axis if case.logits.ndim > 1 else -1
        if axis != -1 and axis != case.logits.ndim - 1:
            logits = np.moveaxis(case.logits, axis, -1)  # optax puts classes last
        else:
            logits = case.logits

        def total(z: Any, y: Any) -> Any:
            losses = function(z, y, ignore_index=case.ignore_index, **kwargs)
            loss = _reduce_per_example(
                losses, valid, case.reduction, lambda x, t: x.astype(t), dtype, jnp
            )
            return jnp.sum(loss), loss

        with jax.enable_x64(dtype == "float64"):
            step = jax.grad(total, has_aux=True)
            if mode == "jit":
                step = jax.jit(step)
            grad, loss = step(jnp.asarray(logits, dtype=dtype), jnp.asarray(case.labels))
            grad = np.asarray(grad, dtype=np.float64)
            loss = np.asarray(loss, dtype=np.float64)
        if logits is not case.logits:
            grad = np.moveaxis(grad, -1, axis)
        return loss, grad

    return run


ALL_DTYPES = ("float64", "float32", "float16", "bfloat16")


def _combos(modes: tuple[str, ...], dtypes: tuple[str, ...] = ALL_DTYPES) -> list[tuple[str, str]]:
    return [(mode, dtype) for mode in modes for dtype in dtypes]


def _torch_combos() -> list[tuple[str, str]]:
    import torch

    # torch.compile specialises on every scheme and layout; two dtypes keep it to minutes.
    combos = _combos(("eager",)) + _combos(("compile",), ("float64", "float32"))
    if torch.cuda.is_available():
        combos += _combos(("eager-cuda",)) + _combos(("compile-cuda",), ("float32",))
    return combos


def _keras_is(name: str) -> bool:
    import keras

    return bool(keras.backend.backend() == name)


def in_process_backends() -> list[Backend]:
    """The backends compared in this process (Keras's other backends run in children)."""
    from emphasis.check import Backend

    return [
        Backend("torch", "torch", _torch_combos, _torch_runner),
        Backend(
            "tensorflow",
            "tensorflow",
            lambda: _combos(("eager", "function", "xla")) if _keras_is("tensorflow") else [],
            _keras_runner,
        ),
        Backend("jax", "jax", lambda: _combos(("eager", "jit")), _jax_runner),
    ]


def keras_backend() -> Backend:
    """Keras on the backend this process selected with KERAS_BACKEND."""
    from emphasis.check import Backend

    return Backend("keras", "keras", lambda: _combos(("eager",)), _keras_runner)
