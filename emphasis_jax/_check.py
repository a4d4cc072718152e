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
        options = {"axis": axis, "ignore_index": case.ignore_index, **case.scheme.kwargs()}

        def total(z: Any, y: Any) -> Any:
            losses = function(z, y, **options)
            loss = reduce_per_example(losses, valid, case.reduction, jnp.asarray, dtype, jnp)
            return jnp.sum(loss), loss

        with jax.enable_x64(dtype == "float64"):
            step = jax.grad(total, has_aux=True)
            step = jax.jit(step) if mode == "jit" else step
            grad, loss = step(jnp.asarray(case.logits, dtype=dtype), jnp.asarray(case.labels))
            return np.asarray(loss, dtype=np.float64), np.asarray(grad, dtype=np.float64)

    return run


def backends() -> list[Backend]:
    # jit is how JAX is used in training; eager dispatches op by op (--full).
    return [Backend("jax", "jax", lambda: combos(("eager", "jit")), runner, main_modes=("jit",))]
