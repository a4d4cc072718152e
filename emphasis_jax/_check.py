"""emphasis_jax's runner for ``emphasis-check`` (announced through an entry point)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import emphasis_jax
from emphasis.check import Backend, Case, Runner, combos, reduce_per_example


def runner() -> Runner:
    def run(case: Case, dtype: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
        function = getattr(emphasis_jax, f"{case.scheme.name}_loss")
        valid = case.labels != case.ignore_index
        axis = case.axis if case.logits.ndim > 1 else -1
        if axis != -1 and axis != case.logits.ndim - 1:
            logits = np.moveaxis(case.logits, axis, -1)  # optax puts classes last
        else:
            logits = case.logits

        def total(z: Any, y: Any) -> Any:
            losses = function(z, y, ignore_index=case.ignore_index, **case.scheme.kwargs())
            loss = reduce_per_example(
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


def backends() -> list[Backend]:
    return [Backend("jax", "jax", lambda: combos(("eager", "jit")), runner)]
