"""The Flax + optax training step of the JAX docs runs as written and learns.

The code block under the marker ``<!-- emphasis_jax:flax-example -->`` is read from the
docs/jax.md and executed. It trains a small
nnx MLP with GR and a traced beta schedule on 4 Gaussian classes with 40% of the labels
flipped. The checks: the loss is finite, the parameters moved, the model classifies the
intact labels well above chance (0.25), and the step compiled once over 200 steps.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")
pytest.importorskip("flax")

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- emphasis_jax:flax-example -->"

pytestmark = pytest.mark.jax


def _example_code() -> str:
    page = (ROOT / "docs" / "jax.md").read_text()
    assert MARKER in page, f"the Flax example ({MARKER}) is not in docs/jax.md"
    match = re.match(r"\s*```python\n(.*?)```", page.split(MARKER, 1)[1], re.S)
    assert match, f"no python block after {MARKER} in docs/jax.md"
    return match.group(1)


def test_flax_training_step_example_runs_and_learns(capsys, monkeypatch):
    import emphasis_jax

    traces: list[None] = []
    gr_loss = emphasis_jax.gr_loss

    def counting_gr_loss(*args, **kwargs):
        traces.append(None)  # runs once per trace of the jitted step, not per call
        return gr_loss(*args, **kwargs)

    monkeypatch.setattr(emphasis_jax, "gr_loss", counting_gr_loss)
    namespace: dict = {"__name__": "flax_example"}
    exec(compile(_example_code(), "flax_example", "exec"), namespace)
    out = capsys.readouterr().out
    assert "accuracy on the intact labels" in out
    assert np.isfinite(float(namespace["loss"]))
    assert namespace["accuracy"] > 0.6, namespace["accuracy"]
    kernel = np.asarray(namespace["model"].hidden.kernel[...])
    fresh = type(namespace["model"])(16, 64, 4, rngs=namespace["nnx"].Rngs(0))
    assert not np.allclose(kernel, np.asarray(fresh.hidden.kernel[...]))
    assert len(traces) == 1  # 200 steps, a new beta each: traced once
