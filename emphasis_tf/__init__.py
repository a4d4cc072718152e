"""Keras 3 / TensorFlow adapter of :mod:`emphasis`: gradient rescaling as a Keras loss.

    model.compile(optimizer, loss=emphasis_tf.GRLoss(beta=8.0, lam=0.5))

``GRLoss``, ``CCELoss``, ``MAELoss`` and ``GCELoss`` are serialisable
``keras.losses.Loss`` subclasses; ``gr_loss``, ``cce_loss``, ``mae_loss`` and
``gce_loss`` are their functional forms (per-example losses) for custom training
loops. The logit gradient is the core's (:mod:`emphasis.kernel`), registered with
``keras.ops.custom_gradient`` -- ``tf.custom_gradient`` on the TensorFlow backend.

One implementation serves every Keras backend: it is written with ``keras.ops``,
so with ``KERAS_BACKEND=jax`` or ``torch`` the same ``GRLoss`` runs on JAX or
torch tensors and this package does not import TensorFlow at all (only Keras).
TensorFlow is imported when it is the backend (Keras's default), for
``tf.distribute`` and graph-mode assertions.
"""

import importlib.util
import sys

if "tensorflow" not in sys.modules and importlib.util.find_spec("triton") is not None:
    # Triton's native library segfaults when it loads after TensorFlow's (both bundle
    # LLVM), and torch.compile imports it lazily: load it first while TensorFlow is not
    # loaded yet (once it is, loading Triton here would be the crash).
    import triton  # noqa: F401

try:
    import keras

    if not keras.__version__.startswith("3."):  # tf.keras 2 has no keras.ops
        raise ImportError(f"emphasis_tf needs Keras 3, found keras {keras.__version__}")
    if keras.backend.backend() == "tensorflow":
        import tensorflow  # noqa: F401
except ImportError as err:
    raise ImportError(
        "emphasis_tf needs Keras 3 with TensorFlow (Keras's default backend): pip install "
        '"emphasis[tf]"; with KERAS_BACKEND=jax or torch, Keras 3 alone: pip install '
        '"emphasis[keras]"'
    ) from err

from emphasis_tf import losses
from emphasis_tf.dynamics import TrainingDynamicsCallback
from emphasis_tf.losses import *  # noqa: F403

__all__ = [*losses.__all__, "TrainingDynamicsCallback"]
