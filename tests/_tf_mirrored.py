"""Subprocess helper: GR under tf.distribute.MirroredStrategy on two logical CPUs.

Run by tests/test_tf_backends.py in a fresh process (logical devices must be set
before TensorFlow initialises). Prints one JSON line of measured differences.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import tensorflow as tf

cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import keras  # noqa: E402

import emphasis_tf  # noqa: E402

BATCH, FEATURES, CLASSES = 16, 6, 4
rng = np.random.default_rng(0)
x = rng.normal(size=(BATCH, FEATURES)).astype("float32")
y = rng.integers(0, CLASSES, size=BATCH).astype("int32")
# Make the two halves of the batch differ strongly, so per-replica normalisation
# visibly changes the gradient.
x[: BATCH // 2] *= 4.0


def build() -> keras.Model:
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)])


def single_device_grads(loss: keras.losses.Loss) -> list[np.ndarray]:
    model = build()
    with tf.GradientTape() as tape:
        value = loss(y, model(x))
    return [g.numpy() for g in tape.gradient(value, model.trainable_variables)]


def mirrored_grads(loss: keras.losses.Loss, strategy: tf.distribute.Strategy) -> list[np.ndarray]:
    with strategy.scope():
        model = build()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

    @tf.function
    def step(inputs):
        def replica_fn(features, labels):
            with tf.GradientTape() as tape:
                # The Keras loss scales itself by 1 / num_replicas (Keras's convention),
                # so the sum over replicas is the gradient of the global mean.
                value = loss(labels, model(features))
            return tape.gradient(value, model.trainable_variables)

        grads = strategy.run(replica_fn, args=inputs)
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in grads]

    return [g.numpy() for g in step(batch)]


def fit_weights(strategy: tf.distribute.Strategy | None) -> list[np.ndarray]:
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = build()
        model.compile(
            optimizer=keras.optimizers.SGD(0.5),
            loss=emphasis_tf.GRLoss(beta=8.0, lam=0.5, from_logits=True),
        )
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    return [w.numpy() for w in model.trainable_variables]


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(p - q).max()) for p, q in zip(a, b, strict=True))


def main() -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = {"replicas": strategy.num_replicas_in_sync}
    reference = single_device_grads(emphasis_tf.GRLoss(beta=8.0, lam=0.5, from_logits=True))
    result["scale"] = max(float(np.abs(g).max()) for g in reference)
    glob = mirrored_grads(emphasis_tf.GRLoss(beta=8.0, lam=0.5, from_logits=True), strategy)
    result["global_vs_single"] = max_diff(glob, reference)
    local = mirrored_grads(
        emphasis_tf.GRLoss(beta=8.0, lam=0.5, from_logits=True, global_normalize=False), strategy
    )
    result["local_vs_single"] = max_diff(local, reference)
    cce_ref = single_device_grads(emphasis_tf.CCELoss(from_logits=True))
    cce = mirrored_grads(emphasis_tf.CCELoss(from_logits=True), strategy)
    result["cce_vs_single"] = max_diff(cce, cce_ref)
    result["fit_vs_single"] = max_diff(fit_weights(strategy), fit_weights(None))
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
