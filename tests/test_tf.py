"""emphasis_tf on the TensorFlow backend: agreement with the float64 core, with Keras's
own cross-entropies, extreme logits, mixed precision, model.fit, saving, bad input.

TensorFlow is imported once for this whole module; the other Keras backends and
tf.distribute run in subprocesses (tests/test_tf_backends.py).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":
    pytest.skip(
        "in-process tests need KERAS_BACKEND=tensorflow (others: test_tf_backends.py)",
        allow_module_level=True,
    )

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import emphasis  # noqa: E402
import emphasis_tf  # noqa: E402

pytestmark = pytest.mark.tf

MODES = ("eager", "function", "xla")
SCHEMES = {
    "cce": (lambda **kw: emphasis_tf.CCELoss(**kw), emphasis.CCE()),
    "mae": (lambda **kw: emphasis_tf.MAELoss(**kw), emphasis.MAE()),
    "gce": (lambda **kw: emphasis_tf.GCELoss(0.7, **kw), emphasis.GCE(0.7)),
    "gr": (lambda **kw: emphasis_tf.GRLoss(8.0, 0.5, **kw), emphasis.GR(8.0, 0.5)),
    "gr_mae_value": (
        lambda **kw: emphasis_tf.GRLoss(12.0, 1.0, eps=0.0, reported_loss="mae", **kw),
        emphasis.GR(12.0, 1.0, eps=0.0, reported_loss="mae"),
    ),
    "gr_identity": (
        lambda **kw: emphasis_tf.GRLoss(2.0, 0.3, "identity", normalize=False, **kw),
        emphasis.GR(2.0, 0.3, "identity", normalize=False),
    ),
}
# Keras reduction -> the core's reduction with the same gradient.
REDUCTIONS = {"sum_over_batch_size": "mean", "mean": "mean", "sum": "sum", "none": "none"}


def run(fn, mode: str):
    if mode == "eager":
        return fn
    return tf.function(fn, jit_compile=mode == "xla")


def loss_and_grad(loss, labels, logits, mode: str = "eager", **kwargs):
    """(value, d value / d logits) of a Keras loss, eager or in a (compiled) graph."""

    def compute(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            value = loss(labels, z, **kwargs)
            total = tf.reduce_sum(value)
        return value, tape.gradient(total, z)

    value, grad = run(compute, mode)(tf.constant(logits))
    return value.numpy(), grad.numpy()


def many(calls, logits, mode: str = "eager"):
    """``loss_and_grad`` of several ``(loss, labels, kwargs)`` in one trace (one XLA
    compilation instead of one per loss: the tests stay fast)."""

    def compute(z):
        out = []
        for loss, labels, kwargs in calls:
            with tf.GradientTape() as tape:
                tape.watch(z)
                value = loss(labels, z, **kwargs)
                total = tf.reduce_sum(value)
            out.append((value, tape.gradient(total, z)))
        return out

    return [(v.numpy(), g.numpy()) for v, g in run(compute, mode)(tf.constant(logits))]


def batch(rng, n=9, c=5, scale=3.0, dtype="float64"):
    logits = (rng.normal(size=(n, c)) * scale).astype(dtype)
    labels = rng.integers(0, c, size=n).astype("int32")
    return logits, labels


# ---------------------------------------------------------------------------------
# Agreement with the float64 core
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(SCHEMES))
def test_matches_core_float64(name, mode):
    make, scheme = SCHEMES[name]
    logits, labels = batch(np.random.default_rng(1))
    calls = [(make(from_logits=True, reduction=r, dtype="float64"), labels, {}) for r in REDUCTIONS]
    for (value, grad), core_reduction in zip(
        many(calls, logits, mode), REDUCTIONS.values(), strict=True
    ):
        ref_value, ref_grad = emphasis.loss_and_grad(logits, labels, scheme, core_reduction)
        np.testing.assert_allclose(value, ref_value, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-15)
        assert value.dtype == np.float64 and grad.dtype == np.float64


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["gr", "cce", "gce"])
def test_ignore_class_and_class_weights_match_core(name, mode):
    make, scheme = SCHEMES[name]
    rng = np.random.default_rng(2)
    logits, labels = batch(rng, n=10)
    labels[[1, 6]] = 255
    class_weight = rng.uniform(0.2, 3.0, size=5)
    sample_weight = class_weight[np.where(labels == 255, 0, labels)]
    # "sum_over_batch_size" with ignore_class is the mean over valid examples; class
    # weights through sample_weight with "mean_with_sample_weight" are torch's weighted
    # mean, and GR normalises with the same weights, as the core does.
    weighted = {"sample_weight": sample_weight}
    calls = [
        (make(from_logits=True, ignore_class=255, dtype="float64"), labels, {}),
        (
            make(
                from_logits=True,
                ignore_class=255,
                reduction="mean_with_sample_weight",
                dtype="float64",
            ),
            labels,
            weighted,
        ),
        (make(from_logits=True, reduction="sum", dtype="float64"), labels % 5, weighted),
    ]
    refs = [
        emphasis.loss_and_grad(logits, labels, scheme, "mean", ignore_index=255),
        emphasis.loss_and_grad(
            logits, labels, scheme, "mean", ignore_index=255, weight=class_weight
        ),
        emphasis.loss_and_grad(logits, labels % 5, scheme, "sum", weight=class_weight),
    ]
    results = many(calls, logits, mode)
    for (value, grad), (ref_value, ref_grad) in zip(results, refs, strict=True):
        np.testing.assert_allclose(value, ref_value, rtol=1e-12)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-15)
    assert not results[0][1][[1, 6]].any()


@pytest.mark.parametrize("mode", MODES)
def test_class_axis_and_spatial_labels_match_core(mode):
    rng = np.random.default_rng(3)
    scheme = emphasis.GR(6.0, 0.4)
    channels_last = rng.normal(size=(3, 4, 2, 5)) * 2  # (N, d1, d2, C)
    labels = rng.integers(0, 5, size=(3, 4, 2)).astype("int32")
    loss = emphasis_tf.GRLoss(6.0, 0.4, from_logits=True, dtype="float64")
    value, grad = loss_and_grad(loss, labels, channels_last, mode)
    ref = emphasis.loss_and_grad(channels_last, labels, scheme, axis=-1)
    np.testing.assert_allclose(value, ref[0], rtol=1e-12)
    np.testing.assert_allclose(grad, ref[1], rtol=1e-10, atol=1e-15)
    channels_first = np.moveaxis(channels_last, -1, 1)
    loss = emphasis_tf.GRLoss(6.0, 0.4, from_logits=True, axis=1, dtype="float64")
    value, grad = loss_and_grad(loss, labels, channels_first, mode)
    np.testing.assert_allclose(value, ref[0], rtol=1e-12)
    np.testing.assert_allclose(grad, np.moveaxis(ref[1], -1, 1), rtol=1e-10, atol=1e-15)
    # Per-example losses have the label shape.
    loss = emphasis_tf.GRLoss(6.0, 0.4, from_logits=True, reduction=None, dtype="float64")
    value, _ = loss_and_grad(loss, labels, channels_last, mode)
    assert value.shape == labels.shape


@pytest.mark.parametrize("mode", MODES)
def test_one_hot_and_column_labels_equal_sparse(mode):
    rng = np.random.default_rng(4)
    logits, labels = batch(rng)
    loss = emphasis_tf.GRLoss(10.0, 1.0, from_logits=True, dtype="float64")
    sparse = loss_and_grad(loss, labels, logits, mode)
    one_hot = loss_and_grad(loss, np.eye(5)[labels], logits, mode)
    column = loss_and_grad(loss, labels[:, None].astype("float32"), logits, mode)
    for other in (one_hot, column):
        np.testing.assert_array_equal(other[0], sparse[0])
        np.testing.assert_array_equal(other[1], sparse[1])


def test_keras_mask_on_predictions_acts_like_ignore_class():
    """A Keras mask on y_pred (Masking / mask_zero layers) leaves those examples out of
    the loss, the mean and GR's normalisation, as ignore_class does."""
    from emphasis_tf._core import set_keras_mask

    rng = np.random.default_rng(14)
    logits = rng.normal(size=(3, 4, 5)) * 3
    labels = rng.integers(0, 5, size=(3, 4)).astype("int32")
    mask = rng.uniform(size=(3, 4)) > 0.3
    z = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(z)
        masked = tf.identity(z)
        set_keras_mask(masked, tf.constant(mask))
        value = emphasis_tf.GRLoss(8.0, 0.5, from_logits=True, dtype="float64")(labels, masked)
    grad = tape.gradient(value, z).numpy()
    ignored = np.where(mask, labels, -100)
    ref_value, ref_grad = emphasis.loss_and_grad(logits, ignored, emphasis.GR(8.0, 0.5), axis=-1)
    np.testing.assert_allclose(value.numpy(), ref_value, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-15)


def test_dynamic_batch_dimension():
    """model.fit retraces with an unknown batch size; the loss must accept None dims."""
    loss = emphasis_tf.GRLoss(8.0, 0.5, from_logits=True, ignore_class=-1)
    spec = (tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, 5], tf.float32))

    @tf.function(input_signature=spec)
    def grad(labels, logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss(labels, logits)
        return tape.gradient(value, logits)

    logits, labels = batch(np.random.default_rng(5), dtype="float32")
    labels[2] = -1
    ref = emphasis.logit_grad(
        logits.astype("float64"), labels, emphasis.GR(8.0, 0.5), ignore_index=-1
    )
    np.testing.assert_allclose(grad(labels, logits).numpy(), ref, rtol=1e-5, atol=1e-7)


# Each new (beta, lam) compiles the loss once (eager TF runs it as a tf.function): fewer
# examples by default than the suite's profile; EMPHASIS_HYPOTHESIS_EXAMPLES raises it.
@settings(max_examples=int(os.environ.get("EMPHASIS_HYPOTHESIS_EXAMPLES", "12")))
@given(
    n=st.integers(1, 6),
    c=st.integers(2, 7),
    beta=st.floats(0.0, 30.0),
    lam=st.floats(0.0, 3.0),
    scale=st.sampled_from([0.1, 3.0, 30.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_gr_gradient_matches_core(n, c, beta, lam, scale, seed):
    logits, labels = batch(np.random.default_rng(seed), n=n, c=c, scale=scale)
    loss = emphasis_tf.GRLoss(beta, lam, from_logits=True, dtype="float64")
    _, grad = loss_and_grad(loss, labels, logits)
    ref = emphasis.logit_grad(logits, labels, emphasis.GR(beta, lam))
    np.testing.assert_allclose(grad, ref, rtol=1e-9, atol=1e-14)


# ---------------------------------------------------------------------------------
# Extreme logits: an exact reference, never NaN
# ---------------------------------------------------------------------------------
EXTREME = np.array(
    [
        [20.0, 0.0, 0.0, 0.0],  # literal Eq. (6) is NaN here in float32
        [1e4, -1e4, 0.0, 3.0],
        [-1e4, 1e4, 0.0, -3.0],  # p = 0
        [0.0, -np.inf, 2.0, 1.0],
        [5.0, -np.inf, -np.inf, -np.inf],  # only the target: zero gradient
        [88.0, -88.0, 0.0, 40.0],
    ]
)
EXTREME_LABELS = np.array([0, 0, 0, 0, 0, 2], dtype="int32")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_logits_match_exact_reference(dtype, mode):
    names = ["gr", "gr_mae_value", "cce", "mae", "gce"]
    logits = EXTREME.astype(dtype)
    calls = [
        (SCHEMES[n][0](from_logits=True, reduction="none", dtype=dtype), EXTREME_LABELS, {})
        for n in names
    ]
    for name, (value, grad) in zip(names, many(calls, logits, mode), strict=True):
        ref_value, ref_grad = emphasis.loss_and_grad(
            logits.astype("float64"), EXTREME_LABELS, SCHEMES[name][1], "none"
        )
        assert not np.isnan(grad).any() and not np.isnan(value).any(), name
        rtol = 1e-11 if dtype == "float64" else 2e-5
        np.testing.assert_allclose(value, ref_value, rtol=rtol, atol=1e-30, err_msg=name)
        atol = 1e-7 if dtype == "float32" else 0
        np.testing.assert_allclose(grad, ref_grad, rtol=rtol, atol=atol, err_msg=name)
        np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-6)
        assert not grad[4].any()


# ---------------------------------------------------------------------------------
# Against Keras's own losses
# ---------------------------------------------------------------------------------
KERAS_REDUCTIONS = ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None]


@pytest.mark.parametrize("mode", MODES)
def test_cce_matches_keras_sparse_categorical_crossentropy(mode):
    rng = np.random.default_rng(6)
    logits = (rng.normal(size=(4, 3, 6)) * 4).astype("float32")
    labels = rng.integers(0, 6, size=(4, 3)).astype("int32")
    labels[0, 1] = labels[2, 2] = 5
    sample_weight = rng.uniform(0.0, 2.0, size=(4, 3)).astype("float32")
    calls = []
    # Every reduction eagerly; in graphs the two that differ most (one trace each mode).
    reductions = (
        KERAS_REDUCTIONS if mode == "eager" else ["sum_over_batch_size", "mean_with_sample_weight"]
    )
    for reduction in reductions:
        for kwargs in ({}, {"ignore_class": 5}):
            for weights in ({}, {"sample_weight": sample_weight}):
                ours = emphasis_tf.CCELoss(from_logits=True, reduction=reduction, **kwargs)
                theirs = keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True, reduction=reduction, **kwargs
                )
                calls += [(ours, labels, weights), (theirs, labels, weights)]
    results = many(calls, logits, mode)
    for (value, grad), (ref_value, ref_grad) in zip(results[::2], results[1::2], strict=True):
        np.testing.assert_allclose(value, ref_value, rtol=2e-6, atol=1e-7)
        np.testing.assert_allclose(grad, ref_grad, rtol=2e-5, atol=2e-8)


@pytest.mark.parametrize("mode", MODES)
def test_cce_matches_keras_on_one_hot_and_probabilities(mode):
    rng = np.random.default_rng(7)
    logits = (rng.normal(size=(8, 5)) * 2).astype("float32")
    labels = rng.integers(0, 5, size=8)
    one_hot = np.eye(5, dtype="float32")[labels]
    ours = emphasis_tf.CCELoss(from_logits=True)
    theirs = keras.losses.CategoricalCrossentropy(from_logits=True)
    for a, b in zip(
        loss_and_grad(ours, one_hot, logits, mode),
        loss_and_grad(theirs, one_hot, logits, mode),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-8)
    # Probabilities in (from_logits=False, Keras's default): same value and gradient
    # w.r.t. the probabilities as Keras, away from Keras's clipping at 1e-7.
    probs = tf.nn.softmax(logits).numpy()
    ours = emphasis_tf.CCELoss()
    theirs = keras.losses.SparseCategoricalCrossentropy()
    for a, b in zip(
        loss_and_grad(ours, labels, probs, mode),
        loss_and_grad(theirs, labels, probs, mode),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-7)


@pytest.mark.parametrize("q", [0.3, 0.7])
def test_gce_matches_keras_categorical_generalized_cross_entropy(q):
    """Same value; same gradient for the logits behind the probabilities.

    Keras differentiates (1 - p_y^q) / q with every probability free; ours is the
    gradient on the simplex (through log p). The two differ by a multiple of
    (1, ..., 1) per row, which a softmax does not pass on: compare J_softmax^T g.
    """
    rng = np.random.default_rng(8)
    logits = (rng.normal(size=(7, 4)) * 2).astype("float64")
    labels = rng.integers(0, 4, size=7)
    probs = tf.nn.softmax(logits).numpy()
    ours = emphasis_tf.GCELoss(q, dtype="float64")
    theirs = keras.losses.CategoricalGeneralizedCrossEntropy(q=q, dtype="float64")
    (value, grad), (ref_value, ref_grad) = many([(ours, labels, {}), (theirs, labels, {})], probs)

    def through_softmax(g):
        return probs * (g - np.sum(probs * g, axis=1, keepdims=True))

    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(through_softmax(grad), through_softmax(ref_grad), rtol=1e-9)
    ref = emphasis.logit_grad(logits, labels, emphasis.GCE(q))
    np.testing.assert_allclose(through_softmax(grad), ref, rtol=1e-9)


# ---------------------------------------------------------------------------------
# from_logits=False: the model's logits get exactly the core's gradient
# ---------------------------------------------------------------------------------
def _dense_kernel_grad(loss, activation, x, y):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((x.shape[1],)), keras.layers.Dense(5, activation)])
    with tf.GradientTape() as tape:
        value = loss(y, model(x))
    return tape.gradient(value, model.trainable_variables[0]).numpy()


def test_probabilities_give_the_logit_gradient():
    rng = np.random.default_rng(9)
    x = (rng.normal(size=(16, 6)) * 3).astype("float32")
    y = rng.integers(0, 5, size=16)
    from_logits = _dense_kernel_grad(emphasis_tf.GRLoss(8.0, 0.5, from_logits=True), None, x, y)
    # A softmax layer: Keras caches its logits, the loss uses them (exact).
    cached = _dense_kernel_grad(emphasis_tf.GRLoss(8.0, 0.5), "softmax", x, y)
    np.testing.assert_array_equal(cached, from_logits)
    # tf.nn.softmax has no cache: the loss works on log(p), and the chain rule through
    # log and softmax hands back GR's gradient (rows of the kernel sum to zero).
    logits = tf.constant((rng.normal(size=(16, 5)) * 4).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(logits)
        value = emphasis_tf.GRLoss(8.0, 0.5)(y, tf.nn.softmax(logits))
    grad = tape.gradient(value, logits).numpy()
    ref = emphasis.logit_grad(logits.numpy().astype("float64"), y, emphasis.GR(8.0, 0.5))
    np.testing.assert_allclose(grad, ref, rtol=1e-4, atol=1e-7)


def test_probabilities_with_underflow_never_nan():
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], "float32")
    loss = emphasis_tf.GRLoss(8.0, 0.5)
    value, grad = loss_and_grad(loss, np.array([0, 0, 1]), probs)
    assert np.isfinite(value) and np.isfinite(grad).all()


# ---------------------------------------------------------------------------------
# Mixed precision
# ---------------------------------------------------------------------------------
@pytest.fixture(params=["mixed_float16", "mixed_bfloat16"])
def mixed_policy(request):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(request.param)
    yield request.param
    keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("mode", MODES)
def test_mixed_precision_gradients(mixed_policy, mode):
    half = "float16" if mixed_policy == "mixed_float16" else "bfloat16"
    rng = np.random.default_rng(10)
    logits32 = (rng.normal(size=(12, 10)) * 6).astype("float32")
    labels = rng.integers(0, 10, size=12)
    logits = tf.cast(logits32, half)
    rounded = tf.cast(logits, "float64").numpy()
    ref_value, ref_grad = emphasis.loss_and_grad(rounded, labels, emphasis.GR(16.0, 1.0))
    # The Keras loss computes in its dtype (float32, floatx) as Keras's losses do.
    loss = emphasis_tf.GRLoss(16.0, 1.0, from_logits=True)
    value, grad = loss_and_grad(loss, labels, logits, mode)
    assert value.dtype == np.float32 and grad.dtype == np.dtype(half)
    # The functional form returns the input dtype (computing in float32).
    values, grad_f = loss_and_grad(
        lambda y, z: emphasis_tf.gr_loss(y, z, 16.0, 1.0, from_logits=True), labels, logits, mode
    )
    assert values.dtype == np.dtype(half) and grad_f.dtype == np.dtype(half)
    # Value: float32 arithmetic on the rounded inputs; gradient: rounded to 16 bits.
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    precision = 1e-3 if half == "float16" else 8e-3
    np.testing.assert_allclose(values.astype("float64").mean(), ref_value, rtol=precision)
    # loss_and_grad differentiates the sum of the per-example losses.
    for g, ref in ((grad, ref_grad), (grad_f, ref_grad * len(labels))):
        g = g.astype("float64")
        assert np.isfinite(g).all()
        np.testing.assert_allclose(g, ref, rtol=precision, atol=np.abs(ref).max() * 1e-3)


def test_mixed_precision_model_fit(mixed_policy):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + 2 * (x[:, 1] > 0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(4),  # float16 / bfloat16 logits
        ]
    )
    model.compile(keras.optimizers.SGD(0.3), loss=emphasis_tf.GRLoss(12.0, 1.0, from_logits=True))
    losses = model.fit(x, y, batch_size=16, epochs=4, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


# ---------------------------------------------------------------------------------
# model.fit and saving
# ---------------------------------------------------------------------------------
def _digits():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    order = np.random.default_rng(0).permutation(len(y))
    return x[order[:1200]], y[order[:1200]], x[order[1200:]], y[order[1200:]]


def _fit_accuracy(loss, data) -> float:
    x, y, x_test, y_test = data
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9), loss=loss, metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=12, verbose=0)
    return model.evaluate(x_test, y_test, verbose=0)[1]


def test_model_fit_accuracy_on_clean_digits_matches_cce():
    """Clean labels (scikit-learn digits, 64-64-10 MLP, 12 epochs of SGD).

    GR(beta=2, lam=0) is the paper's clean-data setting (Table 2: it matches CCE);
    GR(8, 0.5) focuses on medium examples and learns clean data a little slower.
    """
    data = _digits()
    cce = _fit_accuracy(keras.losses.SparseCategoricalCrossentropy(), data)
    gr_clean = _fit_accuracy(emphasis_tf.GRLoss(2.0, 0.0), data)
    gr = _fit_accuracy(emphasis_tf.GRLoss(8.0, 0.5), data)
    assert cce > 0.95
    assert abs(gr_clean - cce) < 0.015
    assert gr > 0.9


@pytest.mark.parametrize(
    "loss",
    [
        emphasis_tf.GRLoss(
            12.0,
            1.5,
            "identity",
            False,
            1e-7,
            {"name": "gce", "q": 0.4},
            from_logits=True,
            axis=-1,
            ignore_class=-1,
            global_normalize=False,
            reduction="sum",
            name="my_gr",
            dtype="float64",
        ),
        emphasis_tf.GRLoss(beta=6.0, lam=0.2, reported_loss="mae"),
        emphasis_tf.CCELoss(from_logits=True, ignore_class=3, reduction="mean"),
        emphasis_tf.MAELoss(reduction=None),
        emphasis_tf.GCELoss(q=0.25, axis=1, reduction="mean_with_sample_weight"),
    ],
    ids=["gr_all_options", "gr_mae", "cce", "mae", "gce"],
)
def test_config_round_trip(loss):
    config = loss.get_config()
    clone = type(loss).from_config(config)
    assert clone.get_config() == config
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss) and restored.get_config() == config
    if isinstance(loss, emphasis_tf.GRLoss):
        assert restored.scheme == loss.scheme
        assert set(config) >= {"beta", "lam", "transform", "normalize", "eps", "reported_loss"}


def test_save_and_load_compiled_model(tmp_path):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.integers(0, 3, size=32)
    y[:4] = -1
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    loss = emphasis_tf.GRLoss(
        12.0,
        1.0,
        eps=1e-7,
        reported_loss={"name": "gce", "q": 0.5},
        from_logits=True,
        ignore_class=-1,
    )
    model.compile(keras.optimizers.SGD(0.1), loss=loss)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.loss
    assert isinstance(restored, emphasis_tf.GRLoss)
    assert restored.get_config() == loss.get_config()
    assert restored.scheme == loss.scheme
    np.testing.assert_allclose(
        loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6
    )
    # Training goes on with the restored loss (and its custom gradient).
    ref = model.train_on_batch(x, y)
    np.testing.assert_allclose(loaded.train_on_batch(x, y), ref, rtol=1e-5)


# ---------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------
def test_bad_hyperparameters_are_named():
    with pytest.raises(ValueError, match="beta"):
        emphasis_tf.GRLoss(beta=-1.0)
    with pytest.raises(ValueError, match="lam"):
        emphasis_tf.GRLoss(lam=-0.5)
    with pytest.raises(ValueError, match="eps"):
        emphasis_tf.GRLoss(eps=-1e-6)
    with pytest.raises(ValueError, match="beta"):
        emphasis_tf.gr_loss([0], np.zeros((1, 2), "float32"), beta=math.nan)
    for q in (-0.1, 1.5):
        with pytest.raises(ValueError, match="q"):
            emphasis_tf.GCELoss(q=q)
        with pytest.raises(ValueError, match="q"):
            emphasis_tf.gce_loss([0], np.zeros((1, 2), "float32"), q=q)
    with pytest.raises(ValueError, match="transform"):
        emphasis_tf.GRLoss(transform="log")
    with pytest.raises(ValueError, match="reported_loss"):
        emphasis_tf.GRLoss(reported_loss="hinge")
    with pytest.raises(ValueError, match="reported_loss"):
        emphasis_tf.GRLoss(reported_loss={"name": "hinge"})
    with pytest.raises(ValueError, match="reduction"):
        emphasis_tf.GRLoss(reduction="average")
    with pytest.raises(TypeError, match="from_logits"):
        emphasis_tf.CCELoss(from_logits="yes")
    with pytest.raises(TypeError, match="axis"):
        emphasis_tf.CCELoss(axis=1.0)
    with pytest.raises(TypeError, match="ignore_class"):
        emphasis_tf.CCELoss(ignore_class=1.5)
    with pytest.raises(TypeError, match="global_normalize"):
        emphasis_tf.GRLoss(global_normalize=None)
    with pytest.raises(TypeError, match="normalize"):
        emphasis_tf.GRLoss(normalize="no")


BAD_INPUTS = [
    # (labels, logits, kwargs, error, pattern)
    (
        [0, 3],
        np.zeros((2, 3)),
        {},
        ValueError,
        r"y_true must hold integer class indices in \[0, 2\].*got 3",
    ),
    ([0, -1], np.zeros((2, 3)), {}, ValueError, "got -1"),
    ([0, 1, 2], np.zeros((2, 3)), {}, ValueError, "y_true must hold .* shape"),
    ([[0, 1]], np.zeros((2, 3)), {}, ValueError, "y_true must hold .* shape"),
    ([0.5, 1.0], np.zeros((2, 3)), {}, ValueError, "integer class indices.*0.5"),
    ([[0.5, 0.5, 0.0]], np.zeros((1, 3)), {}, ValueError, "one-hot"),
    ([[0.0, 0.0, 0.0]], np.zeros((1, 3)), {}, ValueError, "one-hot"),
    (
        [0, 1],
        np.array([[0.0, math.nan, 1.0], [0.0, 0.0, 0.0]]),
        {},
        ValueError,
        "example 0 has NaN",
    ),
    (
        [0, 1],
        np.array([[0.0, 0.0, 1.0], [0.0, 0.0, math.inf]]),
        {},
        ValueError,
        r"example 1 has \+inf",
    ),
    ([1], np.array([[0.0, math.inf, 1.0]]), {}, ValueError, r"\+inf"),
    ([0], np.full((1, 3), -math.inf), {}, ValueError, "every logit -inf"),
    ([0], np.zeros((1, 3)), {"axis": 2}, ValueError, "axis 2 is out of range"),
    ([0], np.array(0.0), {}, ValueError, "class axis"),
    ([True], np.zeros((1, 3)), {}, TypeError, "y_true"),
    ([0], np.array([[0.5, 0.7, -0.2]]), {"from_logits": False}, ValueError, "probabilities"),
    ([0, 1], np.zeros((2, 3)), {"sample_weight": [1.0, -2.0]}, ValueError, "sample_weight"),
    ([0, 1], np.zeros((2, 3)), {"sample_weight": np.ones((2, 3, 4))}, ValueError, "sample_weight"),
]


@pytest.mark.parametrize(("labels", "logits", "kwargs", "error", "pattern"), BAD_INPUTS)
@pytest.mark.parametrize("form", ["class", "functional"])
def test_bad_input_raises_a_named_error(labels, logits, kwargs, error, pattern, form):
    kwargs = dict(kwargs)
    from_logits = kwargs.pop("from_logits", True)
    sample_weight = kwargs.pop("sample_weight", None)
    logits = np.asarray(logits)
    logits = logits.astype("float32") if logits.dtype.kind == "f" else logits
    with pytest.raises(error, match=pattern):
        if form == "class":
            loss = emphasis_tf.GRLoss(from_logits=from_logits, **kwargs)
            loss(np.asarray(labels), logits, sample_weight=sample_weight)
        else:
            emphasis_tf.gr_loss(
                np.asarray(labels),
                logits,
                from_logits=from_logits,
                sample_weight=sample_weight,
                **kwargs,
            )


def test_integer_logits():
    """The functional forms want floats; the Keras losses cast y_pred to their dtype
    first, as Keras's own losses do."""
    with pytest.raises(TypeError, match="floating-point"):
        emphasis_tf.gr_loss(np.array([0]), np.array([[1, 2]], "int32"), from_logits=True)
    loss = emphasis_tf.GRLoss(from_logits=True)
    as_int = loss(np.array([0]), np.array([[1, 2]], "int32"))
    np.testing.assert_array_equal(as_int, loss(np.array([0]), np.array([[1.0, 2.0]], "float32")))


def test_bad_labels_in_graphs_fail_loudly():
    """A tf.function asserts (a named error); XLA drops asserts, so the loss and the
    gradient of that example are NaN instead of quietly wrong."""
    loss = emphasis_tf.GRLoss(from_logits=True)
    labels = np.array([0, 7, 1], "int32")
    logits = np.zeros((3, 4), "float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="y_true must hold integer class"):
        loss_and_grad(loss, labels, logits, "function")
    value, grad = loss_and_grad(loss, labels, logits, "xla")
    assert np.isnan(value)
    assert np.isnan(grad[1]).all() and np.isfinite(grad[[0, 2]]).all()


def test_keyword_call_pitfall_is_avoided():
    """tf.custom_gradient called with keywords silently differentiates the forward
    (tensorflow#65839): GR's gradient would then be CCE's. Ours is GR's, in graphs too."""
    rng = np.random.default_rng(13)
    logits, labels = batch(rng, dtype="float32")
    gr = emphasis.logit_grad(logits.astype("float64"), labels, emphasis.GR(8.0, 0.5))
    cce = emphasis.logit_grad(logits.astype("float64"), labels, emphasis.CCE())
    assert np.abs(gr - cce).max() > 1e-2
    for mode in MODES:
        _, grad = loss_and_grad(
            emphasis_tf.GRLoss(8.0, 0.5, from_logits=True), labels, logits, mode
        )
        np.testing.assert_allclose(grad, gr, rtol=1e-5, atol=1e-7)


def test_doctests():
    import doctest

    import emphasis_tf.losses

    failures, tried = doctest.testmod(emphasis_tf.losses, verbose=False)
    assert tried >= 9 and failures == 0


# ---------------------------------------------------------------------------------
# Issue 13: tensor hyperparameters, 0 classes, probability rows, float32 range
# ---------------------------------------------------------------------------------
Z3 = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]], "float32")
Y3 = np.array([0, 1])


@pytest.mark.parametrize("mode", MODES)
def test_tensor_hyperparameters_compute_with_their_value(mode):
    """A 0-d tensor or keras.Variable hyperparameter computes as the float would: eager
    (the compiled eager path takes it as an input) and inside (XLA-compiled) graphs."""
    betas = (tf.constant(8.0), tf.constant(8.0, tf.float64), keras.Variable(8.0))
    # The float beta and the three tensor betas in one trace (one compilation, not six).
    calls = [(emphasis_tf.GRLoss(b, 0.25, from_logits=True), Y3, {}) for b in (8.0, *betas)]
    want, *gots = many(calls, Z3, mode)
    assert len(gots) == len(betas)
    for got in gots:
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
    functional = run(
        lambda: emphasis_tf.gr_loss(Y3, Z3, beta=tf.constant(8.0), from_logits=True), mode
    )
    np.testing.assert_allclose(
        functional(), emphasis_tf.gr_loss(Y3, Z3, from_logits=True), rtol=1e-6
    )
    gce = run(lambda: emphasis_tf.gce_loss(Y3, Z3, q=tf.constant(0.5), from_logits=True), mode)
    np.testing.assert_allclose(
        gce(), emphasis_tf.gce_loss(Y3, Z3, q=0.5, from_logits=True), rtol=1e-6
    )


def test_variable_hyperparameter_follows_its_value_and_config_stores_a_float():
    beta = keras.Variable(8.0)
    loss = emphasis_tf.GRLoss(beta, from_logits=True)
    assert loss.get_config()["beta"] == 8.0
    beta.assign(2.0)
    np.testing.assert_allclose(loss(Y3, Z3), emphasis_tf.GRLoss(2.0, from_logits=True)(Y3, Z3))
    config = loss.get_config()
    assert config["beta"] == 2.0 and isinstance(config["beta"], float)
    assert emphasis_tf.GRLoss.from_config(config).scheme == emphasis.GR(2.0)


def test_variable_beta_changed_between_epochs_under_xla_without_retracing():
    """model.fit(jit_compile=True): a callback sets beta each epoch; each epoch's step
    uses the new value (SGD with lr 1: the weights move by GR's gradient at that beta),
    and the loss is traced once."""
    rng = np.random.default_rng(21)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = rng.integers(0, 3, size=8)
    betas = [8.0, 1.0, 20.0]
    traces = []

    class Counted(emphasis_tf.GRLoss):
        def call(self, y_true, y_pred):
            traces.append(1)  # Python side effect: runs once per trace
            return super().call(y_true, y_pred)

    def build():
        keras.utils.set_random_seed(5)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])

    beta = keras.Variable(betas[0], trainable=False)
    model = build()
    model.compile(keras.optimizers.SGD(1.0), Counted(beta, from_logits=True), jit_compile=True)
    setter = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: beta.assign(betas[epoch])
    )
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[setter])
    after_one = len(traces)
    model.fit(
        x, y, batch_size=8, epochs=3, initial_epoch=1, shuffle=False, verbose=0, callbacks=[setter]
    )
    assert len(traces) == after_one  # no retracing when beta changes

    reference = build()
    for b in betas:
        with tf.GradientTape() as tape:
            value = emphasis_tf.GRLoss(b, from_logits=True)(y, reference(x))
        grads = tape.gradient(value, reference.trainable_variables)
        for var, g in zip(reference.trainable_variables, grads, strict=True):
            var.assign_sub(g)
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_tensor_hyperparameters_are_refused_by_name():
    with pytest.raises(
        ValueError, match=r"beta must be a number or a 0-d tensor, got shape \(1,\)"
    ):
        emphasis_tf.GRLoss(beta=tf.constant([8.0]))
    with pytest.raises(ValueError, match="q must be a number or a 0-d tensor"):
        emphasis_tf.gce_loss(Y3, Z3, q=tf.ones((2,)), from_logits=True)
    with pytest.raises(TypeError, match="lam must be a number or a floating-point tensor"):
        emphasis_tf.GRLoss(lam=tf.constant(1))
    with pytest.raises(ValueError, match="beta must be >= 0, got -1"):
        emphasis_tf.gr_loss(Y3, Z3, beta=tf.constant(-1.0), from_logits=True)
    with pytest.raises(ValueError, match=r"q must be in \[0, 1\], got 1.5"):
        emphasis_tf.GCELoss(q=keras.Variable(1.5), from_logits=True)(Y3, Z3)
    with pytest.raises(ValueError, match="eps must be >= 0, got nan"):
        emphasis_tf.GRLoss(eps=tf.constant(math.nan), from_logits=True)(Y3, Z3)
    loss = emphasis_tf.GRLoss(beta=keras.Variable(-1.0), from_logits=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="beta must be >= 0"):
        loss_and_grad(loss, Y3, Z3, "function")
    value, grad = loss_and_grad(loss, Y3, Z3, "xla")  # XLA drops the assert: NaN
    assert np.isnan(value) and np.isnan(grad).all()


def test_huge_hyperparameters_are_refused_in_float32():
    """float32 cannot hold them: the gradient would be NaN where float64 is finite."""
    with pytest.raises(
        ValueError, match=r"beta must be at most 3.4e\+38 to compute in float32, got 1e\+39"
    ):
        emphasis_tf.gr_loss(Y3, Z3, beta=1e39, from_logits=True)
    with pytest.raises(
        ValueError, match=r"lam must be at most 3.4e\+38 to compute in float32, got 1e\+300"
    ):
        emphasis_tf.GRLoss(lam=1e300, from_logits=True)(Y3, Z3.astype("float16"))
    with pytest.raises(ValueError, match=r"beta must be at most 3.4e\+38 to compute in float32"):
        emphasis_tf.gr_loss(Y3, Z3, beta=tf.constant(1e39, tf.float64), from_logits=True)
    # float64 holds them: finite, as in the core.
    value, grad = loss_and_grad(
        emphasis_tf.GRLoss(1e39, from_logits=True, dtype="float64"), Y3, Z3.astype("float64")
    )
    assert np.isfinite(value) and np.isfinite(grad).all()


@pytest.mark.parametrize("form", ["class", "functional"])
def test_zero_classes_are_refused_by_name(form):
    with pytest.raises(
        ValueError, match=r"y_pred must have at least one class, got shape \(2, 0\)"
    ):
        if form == "class":
            emphasis_tf.CCELoss(from_logits=True)(np.array([0, 0]), np.zeros((2, 0), "float32"))
        else:
            emphasis_tf.cce_loss(np.array([0, 0]), np.zeros((2, 0), "float32"))


@pytest.mark.parametrize("loss", ["cce", "mae", "gce", "gr"])
def test_probability_rows_must_sum_to_one(loss):
    """Keras's CategoricalGeneralizedCrossEntropy uses [.5, .89, .6] as it is (0.1132);
    a softmax would renormalise it (0.6625): refused instead, by name, for every loss."""
    make = SCHEMES[loss][0]
    probs = np.array([[0.2, 0.3, 0.5], [0.5, 0.89, 0.6]], "float32")
    labels = np.array([2, 0])
    with pytest.raises(
        ValueError,
        match=r"y_pred must hold probability rows that sum to 1 .*example 1 sums to 1.99",
    ):
        make()(labels, probs)
    with pytest.raises(tf.errors.InvalidArgumentError, match="sum to 1"):
        loss_and_grad(make(), labels, probs, "function")
    value, grad = loss_and_grad(make(reduction="none"), labels, probs, "xla")
    assert np.isfinite(value[0]) and np.isnan(value[1])
    assert np.isfinite(grad[0]).all() and np.isnan(grad[1]).all()
    # Ignored rows are not checked.
    make(ignore_class=0)(labels, probs)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_low_precision_softmax_rows_are_accepted(dtype):
    rng = np.random.default_rng(22)
    logits = tf.cast(
        rng.normal(size=(64, 1000)) * rng.choice([0.1, 5.0, 20.0], size=(64, 1)), dtype
    )
    probs = tf.nn.softmax(logits)
    labels = rng.integers(0, 1000, size=64)
    assert np.isfinite(emphasis_tf.gce_loss(labels, probs).numpy().astype("float32")).all()
    assert np.isfinite(float(emphasis_tf.GRLoss()(labels, probs)))
