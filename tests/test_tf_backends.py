"""emphasis_tf on every Keras backend, and under tf.distribute.MirroredStrategy.

Keras reads KERAS_BACKEND once, at import, and logical CPU devices must be set
before TensorFlow starts: each Keras backend runs in its own subprocess (helpers
tests/_tf_backend_check.py and tests/_tf_mirrored.py), each helper printing one JSON
line; on TensorFlow one child runs the strategy helper, then the backend check.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

if importlib.util.find_spec("keras") is None:
    pytest.skip("Keras is not installed", allow_module_level=True)


def _run_child(command: list[str], backend: str, results: int = 1) -> list[dict]:
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    result = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    ok = result.returncode == 0 and len(lines) == results
    assert ok, result.stdout[-3000:] + result.stderr[-3000:]
    return [json.loads(line[len("RESULT ") :]) for line in lines]


def _run_helper(script: str, backend: str) -> dict:
    return _run_child([str(TESTS / script)], backend)[0]


#: The TensorFlow backend's check and the MirroredStrategy check in one child: one
#: TensorFlow start-up instead of two (each tens of seconds on CI's 2 cores). The strategy
#: helper is imported first, as its own process would: the logical CPUs are set before
#: TensorFlow initialises; the backend check then runs on the default device as before.
_TF_CHILD = (
    "import sys; sys.path.insert(0, {tests!r}); "
    "import _tf_mirrored; _tf_mirrored.main(); "
    "import _tf_backend_check; _tf_backend_check.main()"
)


@pytest.fixture(scope="module")
def tensorflow_child() -> dict[str, dict]:
    pytest.importorskip("tensorflow")
    mirrored, check = _run_child(
        ["-c", _TF_CHILD.format(tests=str(TESTS))], "tensorflow", results=2
    )
    return {"mirrored": mirrored, "check": check}


BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch", "numpy": "numpy"}


@pytest.mark.parametrize("backend", ["jax", "torch", "tensorflow"])
def test_same_loss_gives_core_gradient_on_each_keras_backend(backend, request):
    """GRLoss/CCELoss/GCELoss (ignore_class, sample weights, a p -> 1 row, a -inf logit)
    differentiated by the backend's own autodiff (tf XLA, jax.jit(jax.grad), torch
    autograd) against the float64 core; then a short model.fit."""
    pytest.importorskip(BACKEND_MODULES[backend])
    if backend == "tensorflow":
        result = request.getfixturevalue("tensorflow_child")["check"]
    else:
        result = _run_helper("_tf_backend_check.py", backend)
    assert result["backend"] == backend
    if backend != "tensorflow":
        # emphasis_tf needs only Keras on the JAX and torch backends.
        assert "tensorflow" not in result["imported"]
    for case, error in result["errors"].items():
        assert math.isfinite(error) and error < 5e-7, (case, error)
    losses = result["fit_losses"]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


def test_numpy_backend_computes_values():
    """The NumPy backend has no autodiff: the losses still evaluate (model.evaluate)."""
    result = _run_helper("_tf_backend_check.py", "numpy")
    assert result["backend"] == "numpy"
    for case, error in result["errors"].items():
        assert error < 5e-7, (case, error)


def test_mirrored_strategy_global_normalisation(tensorflow_child):
    """Two logical CPUs: per-replica gradients summed equal the one-device gradient on
    the full batch with global normalisation, and differ without it (so the check can
    fail); model.fit under the strategy follows the one-device run."""
    result = tensorflow_child["mirrored"]
    assert result["replicas"] == 2
    scale = result["scale"]
    assert result["global_vs_single"] < 1e-6 * scale
    assert result["cce_vs_single"] < 1e-6 * scale
    assert result["local_vs_single"] > 1e-2 * scale
    assert result["fit_vs_single"] < 1e-5
