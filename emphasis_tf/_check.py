"""emphasis_tf's runners for ``emphasis-check`` (announced through an entry point).

Keras picks its backend once per process: ``tensorflow`` runs Keras on TensorFlow in
this process; ``keras`` runs it on whatever backend KERAS_BACKEND selected, which the
check uses in a child process per backend.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

import emphasis_tf
from emphasis.check import Backend, Case, Runner, combos, reduce_per_example


def runner() -> Runner:
    """Keras on its active backend, through emphasis_tf's functional forms."""
    backend = keras.backend.backend()

    def run(case: Case, dtype: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
        function = getattr(emphasis_tf, f"{case.scheme.name}_loss")
        valid = case.labels != case.ignore_index
        kwargs = case.scheme.kwargs()

        def loss_of(z: Any, y: Any) -> Any:
            losses = function(
                y, z, from_logits=True, axis=case.axis, ignore_class=case.ignore_index, **kwargs
            )
            return reduce_per_example(
                losses, valid, case.reduction, keras.ops.cast, dtype, keras.ops
            )

        return _value_and_grad(backend, mode, loss_of, case.logits, case.labels, dtype)

    return run


def _value_and_grad(
    backend: str, mode: str, loss_of: Any, logits: np.ndarray, labels: np.ndarray, dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    if backend == "tensorflow":
        import tensorflow as tf

        def step(z: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss = loss_of(z, y)
            return loss, tape.gradient(loss, z, output_gradients=tf.ones_like(loss))

        if mode in ("function", "xla"):
            step = tf.function(step, jit_compile=mode == "xla")
        loss, grad = step(tf.constant(logits, dtype=dtype), tf.constant(labels))
        return np.asarray(tf.cast(loss, tf.float64)), np.asarray(tf.cast(grad, tf.float64))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def total(z: Any, y: Any) -> Any:
            loss = loss_of(z, y)
            return jnp.sum(loss), loss

        value_and_grad = jax.grad(total, has_aux=True)
        if mode == "jit":  # as model.fit compiles on JAX (jit_compile=True by default)
            value_and_grad = jax.jit(value_and_grad)
        with jax.enable_x64(dtype == "float64"):
            grad, loss = value_and_grad(jnp.asarray(logits, dtype=dtype), jnp.asarray(labels))
            return np.asarray(loss, dtype=np.float64), np.asarray(grad, dtype=np.float64)
    import torch

    z = torch.tensor(logits, dtype=getattr(torch, dtype), requires_grad=True)
    loss = loss_of(z, torch.tensor(labels))
    loss.backward(torch.ones_like(loss))
    assert z.grad is not None
    return loss.detach().double().numpy(), z.grad.double().numpy()


def backends() -> list[Backend]:
    on_tensorflow = keras.backend.backend() == "tensorflow"
    on_jax = keras.backend.backend() == "jax"
    return [
        Backend(
            "tensorflow",
            "tensorflow",
            lambda: combos(("eager", "function", "xla")) if on_tensorflow else [],
            runner,
            main_modes=("eager",),  # function and xla trace each case anew (--full)
        ),
        Backend(
            "keras",
            "keras",
            lambda: combos(("eager", "jit") if on_jax else ("eager",)),
            runner,
            child_only=True,
            # On JAX, jit: what model.fit runs, and op-by-op eager dispatch is slow (--full).
            main_modes=("jit",) if on_jax else ("eager",),
        ),
    ]
