"""Subprocess helper: ``emphasis_tf`` on the Keras backend named by KERAS_BACKEND.

Run by tests/test_tf_backends.py, one process per backend (Keras reads
KERAS_BACKEND once, at import). Computes the gradient of GRLoss / CCELoss with the
backend's own autodiff and prints one JSON line of the worst differences from the
float64 core, plus which frameworks got imported.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

import emphasis
from emphasis import kernel

BACKEND = os.environ["KERAS_BACKEND"]

import keras  # noqa: E402

import emphasis_tf  # noqa: E402

IMPORTED = sorted(m for m in ("tensorflow", "jax", "torch") if m in sys.modules)

rng = np.random.default_rng(0)
N, C = 12, 5
LOGITS = (rng.normal(size=(N, C)) * 3).astype("float32")
LOGITS[0] = [30.0, 0.0, 0.0, 0.0, 0.0]  # p -> 1 in float32
LOGITS[1, 2] = -np.inf
LABELS = rng.integers(0, C, size=N).astype("int32")
LABELS[0] = 0
LABELS[1] = 0  # its -inf logit is a non-target class
LABELS[3] = -1  # ignored
WEIGHTS = rng.uniform(0.5, 2.0, size=N).astype("float32")
CASES = {
    "gr": (
        emphasis_tf.GRLoss(beta=8.0, lam=0.5, from_logits=True, ignore_class=-1),
        emphasis.GR(8.0, 0.5),
    ),
    "gr_identity": (
        emphasis_tf.GRLoss(4.0, 1.0, "identity", False, 0.0, from_logits=True, ignore_class=-1),
        emphasis.GR(4.0, 1.0, "identity", False, 0.0),
    ),
    "cce": (emphasis_tf.CCELoss(from_logits=True, ignore_class=-1), emphasis.CCE()),
    "gce": (emphasis_tf.GCELoss(0.5, from_logits=True, ignore_class=-1), emphasis.GCE(0.5)),
    # Tensor hyperparameters (issue 13): a keras.Variable beta, a 0-d tensor q.
    "gr_variable_beta": (
        emphasis_tf.GRLoss(keras.Variable(6.0), 0.5, from_logits=True, ignore_class=-1),
        emphasis.GR(6.0, 0.5),
    ),
    "gce_tensor_q": (
        emphasis_tf.GCELoss(keras.ops.convert_to_tensor(0.3), from_logits=True, ignore_class=-1),
        emphasis.GCE(0.3),
    ),
}


def reference(scheme: emphasis.Scheme, sample_weight: np.ndarray | None) -> np.ndarray:
    """The float64 core's gradient of Keras's "sum_over_batch_size" with a mask.

    That reduction is sum_i(s_i l_i) / (number of valid examples); GR's normaliser is
    the s-weighted mean. The core's public API takes per-class weights, so per-example
    weights go through its kernel (the same call the core's API makes).
    """
    z = LOGITS.astype("float64")
    safe, valid = kernel.safe_labels(LABELS, -1, np)
    s = np.ones(N) if sample_weight is None else sample_weight.astype("float64")
    s = np.where(valid, s, 0.0)
    with np.errstate(all="ignore"):  # -inf logits: discarded branches of `where`
        out = kernel.forward(z, safe, scheme, np, valid=valid, example_weight=s)
        return kernel.grad_rows(z, safe, out.coef * s / valid.sum(), out.rest_max, out.rest_sum, np)


def gradient(loss, sample_weight) -> np.ndarray:
    if BACKEND == "tensorflow":
        import tensorflow as tf

        z = tf.constant(LOGITS)

        @tf.function(jit_compile=True)
        def grad(z):
            with tf.GradientTape() as tape:
                tape.watch(z)
                value = loss(LABELS, z, sample_weight=sample_weight)
            return tape.gradient(value, z)

        return grad(z).numpy()
    if BACKEND == "jax":
        import jax

        return np.asarray(
            jax.jit(jax.grad(lambda z: loss(LABELS, z, sample_weight=sample_weight)))(LOGITS)
        )
    if BACKEND == "torch":
        import torch

        z = torch.tensor(LOGITS, requires_grad=True)
        w = None if sample_weight is None else torch.tensor(sample_weight)
        loss(torch.tensor(LABELS), z, sample_weight=w).backward()
        return z.grad.numpy()
    raise ValueError(BACKEND)


def main() -> None:
    result: dict[str, object] = {"backend": keras.backend.backend(), "imported": IMPORTED}
    errors = {}
    if BACKEND == "numpy":  # no autodiff: values only
        for name, (loss, scheme) in CASES.items():
            value = float(keras.ops.convert_to_numpy(loss(LABELS, LOGITS)))
            ref = float(emphasis.loss(LOGITS.astype("float64"), LABELS, scheme, ignore_index=-1))
            errors[name] = abs(value - ref) / max(1.0, abs(ref))
    else:
        for name, (loss, scheme) in CASES.items():
            for weighted in (False, True):
                sample_weight = WEIGHTS if weighted else None
                grad = gradient(loss, sample_weight)
                ref = reference(scheme, sample_weight)
                finite = bool(np.isfinite(grad).all())
                errors[f"{name}{'_weighted' if weighted else ''}"] = (
                    float(np.abs(grad - ref).max()) if finite else float("nan")
                )
        # A short model.fit: the loss trains a model on this backend.
        keras.utils.set_random_seed(0)
        x = rng.normal(size=(64, 8)).astype("float32")
        y = (x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0).astype("int32")
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="softmax")])
        model.compile(keras.optimizers.SGD(0.5), loss=emphasis_tf.GRLoss(beta=4.0, lam=0.5))
        history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
        result["fit_losses"] = [float(v) for v in history.history["loss"]]
    result["errors"] = errors
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
