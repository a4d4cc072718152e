"""The array namespace through which :mod:`emphasis.kernel` runs on ``keras.ops`` tensors.

The functions are ``keras.ops``'s, except ``logaddexp``: on the JAX and torch
backends of Keras 3.15, ``ops.logaddexp`` of two float64 tensors returns float32,
which would silently compute float64 input in single precision (found by the
cross-backend check). Keras ships no type information, so mypy checks that every
function of :class:`emphasis.kernel.ArrayNamespace` is here; the two written out
also have their signatures checked.
"""

from __future__ import annotations

from typing import Any

from keras import ops

from emphasis.kernel import ArrayNamespace

__all__ = ["XP", "KerasNamespace"]


class KerasNamespace:
    """``keras.ops`` for the kernel, with a ``logaddexp`` that keeps float64."""

    where = staticmethod(ops.where)
    exp = staticmethod(ops.exp)
    expm1 = staticmethod(ops.expm1)
    log = staticmethod(ops.log)
    max = staticmethod(ops.max)
    sum = staticmethod(ops.sum)
    take_along_axis = staticmethod(ops.take_along_axis)
    zeros_like = staticmethod(ops.zeros_like)
    ones_like = staticmethod(ops.ones_like)
    full_like = staticmethod(ops.full_like)
    moveaxis = staticmethod(ops.moveaxis)
    reshape = staticmethod(ops.reshape)

    @staticmethod
    def arange(stop: int, dtype: Any = None) -> Any:
        return ops.arange(stop, dtype=dtype)  # keras's first argument is named start

    @staticmethod
    def logaddexp(a: Any, b: Any, /) -> Any:
        # log(e^a + e^b) = max + log1p(exp(-|a - b|)); equal infinities never reach here
        # (the kernel's first argument is always 0).
        larger = ops.where(a > b, a, b)
        return larger + ops.log1p(ops.exp(-ops.abs(a - b)))


XP: ArrayNamespace = KerasNamespace()  #: mypy checks the class against the kernel's protocol
