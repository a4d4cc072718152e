"""What differs between the Keras backends: one object per backend, found lazily, kept.

Everything else in :mod:`emphasis_tf` is ``keras.ops``. A backend's framework is
imported when its object is first asked for: on the JAX or torch backend
``emphasis_tf`` never imports TensorFlow.
"""

from __future__ import annotations

import functools
from typing import Any


class Backend:
    """The defaults, which serve Keras's NumPy backend: no autodiff, always eager."""

    autodiff = False
    errors: tuple[type[BaseException], ...] = ()  #: a failed graph assert in a compiled call

    def is_concrete(self, x: Any) -> bool:
        """Whether the values of ``x`` can be read now (eager), so bad input can raise."""
        return True

    def graph_assert(self, bad: Any, message: str) -> None:
        """Inside a graph: fail at run time when any entry of ``bad`` is True."""

    def all_reduce(self) -> Any:
        """``(x, "sum" | "max") -> x`` across the replicas in sync, or None (one replica;
        JAX data parallelism sees the global batch already)."""
        return None

    def compiles_eager(self) -> bool:
        """Whether an eager call runs the whole computation as one compiled function."""
        return False

    def function(self, compute: Any, specs: dict[str, tuple[Any, Any]]) -> Any:
        """``compute(tensors)`` compiled for a dict of tensors of the given ``(shape, dtype)``
        (None: any size)."""
        return compute


class TensorFlow(Backend):
    autodiff = True

    def __init__(self) -> None:
        import tensorflow as tf

        self.tf = tf
        self.errors = (tf.errors.InvalidArgumentError,)

    def is_concrete(self, x: Any) -> bool:
        return bool(self.tf.executing_eagerly())

    def graph_assert(self, bad: Any, message: str) -> None:
        # XLA (jit_compile=True) drops Assert; the NaN poisoning still shows the problem.
        self.tf.debugging.Assert(self.tf.logical_not(self.tf.reduce_any(bad)), [message])

    def _replicas(self) -> Any:
        context = self.tf.distribute.get_replica_context()  # None: cross-replica context
        return None if context is None or context.num_replicas_in_sync <= 1 else context

    def all_reduce(self) -> Any:
        tf, context = self.tf, self._replicas()
        if context is None:
            return None

        def all_reduce(x: Any, op: str) -> Any:
            if op == "sum":
                return context.all_reduce(tf.distribute.ReduceOp.SUM, x)
            # ReduceOp has no MAX: gather the scalars of all replicas and take their max.
            return tf.reduce_max(context.all_gather(tf.reshape(x, [1]), axis=0))

        return all_reduce

    def compiles_eager(self) -> bool:
        """Eagerly, each of the ~200 small ops would cost Python dispatch time (tens of
        ms per call); one ``tf.function`` is differentiated through as usual (custom
        gradient included). Not with several replicas in sync: the all-reduce must run
        in the replica's own context."""
        return self.tf.executing_eagerly() and self._replicas() is None

    def function(self, compute: Any, specs: dict[str, tuple[Any, Any]]) -> Any:
        signature = {k: self.tf.TensorSpec(shape, dtype) for k, (shape, dtype) in specs.items()}
        return self.tf.function(compute, input_signature=[signature])


class JAX(Backend):
    autodiff = True

    def is_concrete(self, x: Any) -> bool:
        import jax

        return not isinstance(x, jax.core.Tracer)


class Torch(Backend):
    autodiff = True

    def is_concrete(self, x: Any) -> bool:
        import torch
        from keras.src.backend.common.symbolic_scope import in_symbolic_scope

        # Keras's symbolic build (compute_output_spec) calls the loss on meta tensors or
        # placeholders filled with one value: shapes only, no values to check.
        return not (torch.compiler.is_compiling() or in_symbolic_scope())


@functools.cache
def backend(name: str) -> Backend:
    """The object of Keras backend ``name`` (``keras.backend.backend()``)."""
    return {"tensorflow": TensorFlow, "jax": JAX, "torch": Torch}.get(name, Backend)()
