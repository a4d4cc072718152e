"""emphasis_tf.TrainingDynamicsCallback: dynamics recorded during model.fit."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import emphasis  # noqa: E402
import emphasis_tf  # noqa: E402
import emphasis_tf.dynamics  # noqa: E402


def _data(seed=0, n=300, c=3, rate=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(c, 6)) * 3
    clean = rng.integers(0, c, n)
    x = (centres[clean] + rng.normal(size=(n, 6))).astype("float32")
    return x, clean, emphasis.symmetric_noise(clean, rate, seed=seed + 1)


@pytest.mark.parametrize("from_logits", [True, False])
def test_fit_with_jit_compile_finds_the_flipped_labels(from_logits):
    x, clean, noisy = _data()
    keras.utils.set_random_seed(0)
    layers = [keras.Input((6,)), keras.layers.Dense(3)]
    if not from_logits:
        layers.append(keras.layers.Softmax())
    model = keras.Sequential(layers)
    loss = emphasis_tf.GRLoss(beta=8.0, lam=1.0, from_logits=from_logits)
    model.compile(keras.optimizers.SGD(0.1), loss, jit_compile=True)
    callback = emphasis_tf.TrainingDynamicsCallback(x, noisy.labels, from_logits=from_logits)
    model.fit(x, noisy.labels, epochs=15, batch_size=50, verbose=0, callbacks=[callback])
    dynamics = callback.dynamics
    assert dynamics.count.tolist() == [15] * len(x)
    found = emphasis.find_label_issues(dynamics)
    assert noisy.flipped[found].mean() > 0.9
    assert abs(emphasis.estimate_noise_rate(dynamics).rate - noisy.realised_rate) < 0.05
    assert (dynamics.suggested_labels()[found] == clean[found]).mean() > 0.9


def test_every_records_some_epochs():
    x, _, noisy = _data(n=40)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    model.compile("sgd", emphasis_tf.CCELoss(from_logits=True))
    callback = emphasis_tf.TrainingDynamicsCallback(x, noisy.labels, from_logits=True, every=2)
    model.fit(x, noisy.labels, epochs=5, verbose=0, callbacks=[callback])
    assert callback.dynamics.count.tolist() == [2] * 40


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(labels=np.zeros(4)), TypeError, "labels must be a 1-d array of integer"),
        (dict(labels=np.zeros((4, 1), int)), TypeError, "labels must be a 1-d array"),
        (dict(every=0), ValueError, "every must be an int >= 1"),
        (dict(from_logits="yes"), TypeError, "from_logits must be True or False"),
    ],
)
def test_arguments_are_checked(kwargs, error, match):
    arguments = dict(x=np.zeros((4, 6), "float32"), labels=np.zeros(4, int)) | kwargs
    with pytest.raises(error, match=match):
        emphasis_tf.TrainingDynamicsCallback(**arguments)


def test_outputs_that_do_not_match_the_labels_are_refused():
    x = np.zeros((8, 6), "float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    model.compile("sgd", emphasis_tf.CCELoss(from_logits=True))
    callback = emphasis_tf.TrainingDynamicsCallback(x[:5], np.zeros(4, int), from_logits=True)
    with pytest.raises(ValueError, match=r"must have shape \(4, C\)"):
        model.fit(x, np.zeros(8, int), epochs=1, verbose=0, callbacks=[callback])


def test_docstring_example():
    assert doctest.testmod(emphasis_tf.dynamics).failed == 0
