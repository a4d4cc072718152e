"""What differs between the Keras backends, in one object per backend (found lazily, kept).

Everything else in :mod:`emphasis_tf` is ``keras.ops``. TensorFlow, JAX or torch is
imported only when its object is first asked for, so ``import emphasis_tf`` on the
JAX or torch backend never imports TensorFlow.
"""

from __future__ import annotations

import functools
from typing import Any


class Backend:
    """The defaults, which serve Keras's NumPy backend: no autodiff, always eager."""

    autodiff = False
    #: What a compiled call raises when one of its graph asserts fails.
    errors: tuple[type[BaseException], ...] = ()

    def is_concrete(self, x: Any) -> bool:
        """Whether the values of ``x`` can be read now (eager), so bad input can raise."""
        return True

    def graph_assert(self, bad: Any, message: str) -> None:
        """Inside a graph: fail at run time when any entry of ``bad`` is True."""

    def all_reduce(self) -> Any:
        """The cross-replica reduction ``(x, "sum" | "max") -> x`` of a replica context
        with several replicas, or None (JAX data parallelism sees the global batch)."""
        return None

    def compiles_eager(self) -> bool:
        """Whether an eager call runs the whole computation as one compiled function."""
        return False


class TensorFlow(Backend):
    autodiff = True

    def __init__(self) -> None:
        import tensorflow as tf

        self.tf = tf
        self.errors = (tf.errors.InvalidArgumentError,)

    def is_concrete(self, x: Any) -> bool:
        return bool(self.tf.executing_eagerly())

    def graph_assert(self, bad: Any, message: str) -> None:
        # Under XLA (jit_compile=True) TensorFlow drops Assert; the NaN poisoning of
        # the offending examples still shows the problem.
        tf = self.tf
        tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [message])

    def _replicas(self) -> Any:
        context = self.tf.distribute.get_replica_context()
        return None if context is None or context.num_replicas_in_sync <= 1 else context

    def all_reduce(self) -> Any:
        tf, context = self.tf, self._replicas()
        if context is None:  # no strategy, one replica, or a cross-replica context
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

    def tensor_spec(self, shape: list[int | None], dtype: Any) -> Any:
        return self.tf.TensorSpec(shape, dtype)

    def function(self, compute: Any, specs: list[Any]) -> Any:
        return self.tf.function(compute, input_signature=specs)


class JAX(Backend):
    autodiff = True

    def __init__(self) -> None:
        import jax

        self.tracer = jax.core.Tracer

    def is_concrete(self, x: Any) -> bool:
        return not isinstance(x, self.tracer)


class Torch(Backend):
    autodiff = True

    def __init__(self) -> None:
        import torch

        self.is_compiling = torch.compiler.is_compiling

    def is_concrete(self, x: Any) -> bool:
        return not self.is_compiling()


@functools.cache
def backend(name: str) -> Backend:
    """The object of Keras backend ``name`` (``keras.backend.backend()``)."""
    return {"tensorflow": TensorFlow, "jax": JAX, "torch": Torch}.get(name, Backend)()
