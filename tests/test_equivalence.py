"""Every backend gives the core's loss values and logit gradients (property tests).

Hypothesis draws layouts (N-d, channels-last, unbatched), logit scales from 1e-3 to
1e4 with -inf entries, labels with ignored entries, schemes and hyperparameters,
reductions and dtypes; each backend and mode must agree with the NumPy core within
the tolerances derived in :func:`emphasis.check.tolerance`: ``(8 + 4 max(Z, Z0)) u``
normwise for logits up to Z in magnitude (the conditioning of the problem: 8.4e-14 in
float64 and 6.7e-6 in float32 at ordinary scales), plus two ulps of a 16-bit output.
Failures shrink to a small case. EMPHASIS_HYPOTHESIS_EXAMPLES raises the example count; the compiled
modes (torch.compile, XLA) compile once per example and run fewer.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import emphasis
from emphasis import check
from emphasis.check import DTYPES, Case, compare

EXAMPLES = int(os.environ.get("EMPHASIS_HYPOTHESIS_EXAMPLES", "40"))
COMPILED_EXAMPLES = max(3, EXAMPLES // 8)
#: JAX compiles every primitive of an eager example and the whole step of a jitted one
#: for each new shape (the slowest property test in CI: 40 examples cost 55 s of CPU,
#: 20 cost 39 s); its exact cases are in tests/test_jax.py (every scheme against the
#: core, extreme logits, layouts, transformations).
JAX_EXAMPLES = max(10, EXAMPLES // 2)


def available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def adapter_runner(adapter: str):
    """The check runner an adapter announces (imported only when its test runs)."""
    return importlib.import_module(f"{adapter}._check").runner()


def hyperparameter(high: float) -> st.SearchStrategy[float]:
    # 0 or a value float32 represents: 16-bit and float32 backends take hyperparameters in
    # float32, where q = 1e-200 is 0 (another scheme, not a rounding error).
    return st.one_of(st.just(0.0), st.floats(1e-4, high))


schemes = st.one_of(
    st.just(emphasis.CCE()),
    st.just(emphasis.MAE()),
    hyperparameter(1.0).map(lambda q: emphasis.GCE(q=q)),
    st.builds(
        emphasis.GR,
        beta=hyperparameter(40.0),
        lam=hyperparameter(3.0),
        transform=st.sampled_from(["exp", "identity"]),
        normalize=st.booleans(),
        eps=st.sampled_from([0.0, 1e-6, 1e-3]),
        reported_loss=st.sampled_from(["cce", "mae", emphasis.GCE(0.5)]),
    ),
)


@st.composite
def case_strategy(draw: st.DrawFn) -> Case:
    layout = draw(st.sampled_from(["rows", "nd", "channels_last", "unbatched"]))
    classes = draw(st.integers(2, 6))
    if layout == "rows":
        shape, axis = (draw(st.integers(1, 6)), classes), 1
    elif layout == "nd":
        shape, axis = (draw(st.integers(1, 3)), classes, draw(st.integers(1, 3)), 2), 1
    elif layout == "channels_last":
        shape, axis = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), classes), -1
    else:
        shape, axis = (classes,), 0
    scale = draw(st.sampled_from([1e-3, 1.0, 30.0, 1e4]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    logits = rng.normal(size=shape) * scale
    moved = np.moveaxis(logits, axis, -1).copy()
    if draw(st.booleans()):
        moved[rng.random(moved.shape) < 0.3] = -np.inf
    labels = rng.integers(0, classes, size=moved.shape[:-1])
    rows, flat = moved.reshape(-1, classes), labels.reshape(-1)
    dead = np.all(np.isneginf(rows), axis=1)
    rows[dead, flat[dead]] = 0.0
    if flat.size > 1 and draw(st.booleans()):
        flat[rng.random(flat.size) < 0.3] = -100
    logits = np.moveaxis(rows.reshape(moved.shape), -1, axis)
    scheme = draw(schemes)
    reduction = draw(st.sampled_from(["mean", "sum", "none"]))
    labels = flat.reshape(labels.shape)
    name = f"{shape} axis={axis} scale={scale:g} {scheme!r} {reduction}"
    return Case(name, logits, labels, scheme, reduction, axis)


dtypes = st.sampled_from(DTYPES)


def assert_agrees(runner, case: Case, dtype: str, mode: str) -> None:
    loss, grad = runner(case, dtype, mode)
    _, rel, tol = compare(case, dtype, loss, grad)
    assert rel <= tol, f"{mode} {dtype}: normwise error {rel:.3g} > {tol:.3g} on {case.name}"


@pytest.mark.torch
@pytest.mark.skipif(not available("torch"), reason="PyTorch is not installed")
@given(case_strategy(), dtypes)
def test_torch_eager_agrees_with_core(case, dtype):
    assert_agrees(adapter_runner("emphasis_torch"), case, dtype, "eager")


@pytest.mark.torch
@pytest.mark.skipif(not available("torch"), reason="PyTorch is not installed")
@settings(max_examples=COMPILED_EXAMPLES)
@given(case_strategy(), st.sampled_from(["float64", "float32"]))
def test_torch_compile_agrees_with_core(case, dtype):
    assert_agrees(adapter_runner("emphasis_torch"), case, dtype, "compile")


@pytest.mark.tf
@pytest.mark.skipif(not available("tensorflow"), reason="TensorFlow is not installed")
@given(case_strategy(), dtypes, st.sampled_from(["eager", "function"]))
def test_tensorflow_agrees_with_core(case, dtype, mode):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("Keras runs on another backend in this process")
    assert_agrees(adapter_runner("emphasis_tf"), case, dtype, mode)


@pytest.mark.tf
@pytest.mark.skipif(not available("tensorflow"), reason="TensorFlow is not installed")
@settings(max_examples=COMPILED_EXAMPLES)
@given(case_strategy(), dtypes)
def test_tensorflow_xla_agrees_with_core(case, dtype):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("Keras runs on another backend in this process")
    assert_agrees(adapter_runner("emphasis_tf"), case, dtype, "xla")


@pytest.mark.jax
@pytest.mark.skipif(not available("jax"), reason="JAX is not installed")
@settings(max_examples=JAX_EXAMPLES)
@given(case_strategy(), dtypes, st.sampled_from(["eager", "jit"]))
def test_jax_agrees_with_core(case, dtype, mode):
    assert_agrees(adapter_runner("emphasis_jax"), case, dtype, mode)


@pytest.mark.slow
@pytest.mark.parametrize("keras_backend", ["jax", "torch"])
def test_keras_on_other_backends_agrees_with_core(keras_backend):
    """Keras picks its backend per process: the user-facing check runs in a child."""
    if not (available("keras") and available(keras_backend)):
        pytest.skip(f"Keras or {keras_backend} is not installed")
    rows = check.run_keras_subprocess(keras_backend, seed=1, count=8)
    assert rows, "the child process returned no results"
    for row in rows:
        assert not row.get("error"), row
        assert row["verdict"] == "ok", row


def test_check_cli_reports_json_and_exit_status():
    pytest.importorskip("torch")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "emphasis.check",
            "--backends",
            "torch",
            "--cases",
            "4",
            "--json",
            "--modes",
            "eager",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    rows = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr[-2000:]
    # --modes picks from the whole matrix: the 16-bit dtypes too (torch.compile's agreement
    # is test_torch_compile_agrees_with_core's).
    assert {(r["mode"], r["dtype"]) for r in rows} == {
        ("eager", dtype) for dtype in ("float64", "float32", "float16", "bfloat16")
    }
    assert all(r["verdict"] == "ok" and r["cases"] == 4 for r in rows)


def test_check_of_one_backend_imports_no_other_framework():
    # Each adapter announces its backends through an entry point; only the chosen ones load.
    pytest.importorskip("torch")
    script = (
        "import sys; from emphasis import check; "
        "rows = check.run(backends=['torch'], count=2, modes=['eager'], edge=False); "
        "assert rows and all(r.ok for r in rows), rows; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_check_flags_a_wrong_backend(monkeypatch):
    """The comparison itself must be able to fail: a gradient off by 1e-6 in float64."""

    def wrong_runner():
        def run(case, dtype, mode):
            loss, grad = emphasis.loss_and_grad(
                case.logits, case.labels, case.scheme, case.reduction, axis=case.axis
            )
            return loss, grad * (1 + 1e-6)

        return run

    fake = check.Backend("fake", "numpy", lambda: [("eager", "float64")], wrong_runner)
    monkeypatch.setattr(check, "discover_backends", lambda *_: ([fake], []))
    monkeypatch.setattr(check, "KERAS_CHILD_BACKENDS", ())
    results = check.run(count=4)
    assert len(results) == 1 and not results[0].ok
    assert results[0].max_rel == pytest.approx(1e-6, rel=1e-3)
    assert results[0].max_ratio > 1
    monkeypatch.setattr(check, "run", lambda *a, **k: results)
    assert check.main([]) == 1
