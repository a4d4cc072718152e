"""The JAX pattern for per-example dynamics: totals in the train state, updated under jit.

This is the code docs/label-issues.md shows (section "Recording the dynamics", JAX); it must
run as written there.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import emphasis  # noqa: E402
import emphasis_jax  # noqa: E402
from emphasis.dynamics import Totals, observations  # noqa: E402


def init_totals(num_examples):
    zeros = jnp.zeros(num_examples)
    never = jnp.full(num_examples, -1)
    return Totals(zeros.astype(int), zeros, zeros, zeros.astype(int), never, never)


@jax.jit
def record(totals, index, logits, labels):
    """Add one observation per example of the batch: jnp only, no host transfer."""
    p, margin = observations(logits, labels, jnp)
    predicted = jnp.argmax(logits, axis=-1)
    return Totals(
        totals.updates.at[index].add(1),
        totals.sum_p.at[index].add(p),
        totals.sum_margin.at[index].add(margin),
        totals.disagreements.at[index].add((predicted != labels).astype(int)),
        totals.labels.at[index].set(labels),
        totals.last_prediction.at[index].set(predicted),
    )


def test_totals_under_jit_match_the_core():
    rng = np.random.default_rng(0)
    n, c = 30, 4
    labels = rng.integers(0, c, n)
    totals = init_totals(n)
    core = emphasis.TrainingDynamics(n, c)
    for _ in range(5):
        index = rng.permutation(n)[:12]
        logits = rng.normal(size=(12, c)).astype("float32") * 3
        totals = record(totals, index, jnp.asarray(logits), jnp.asarray(labels[index]))
        core.update(index, logits, labels[index])
    ours = emphasis.TrainingDynamics.from_totals(c, Totals(*(np.asarray(t) for t in totals)))
    np.testing.assert_allclose(ours.scores(), core.scores(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ours.suggested_labels(), core.suggested_labels())


def test_in_an_optax_style_loop_it_finds_the_flipped_labels():
    rng = np.random.default_rng(1)
    n, c = 300, 3
    centres = rng.normal(size=(c, 5)) * 3
    clean = rng.integers(0, c, n)
    x = jnp.asarray(centres[clean] + rng.normal(size=(n, 5)), "float32")
    noisy = emphasis.symmetric_noise(clean, 0.3, seed=2)
    y = jnp.asarray(noisy.labels)
    params = (jnp.zeros((5, c)), jnp.zeros(c))

    @jax.jit
    def step(params, totals, index):
        def loss_fn(params):
            logits = x[index] @ params[0] + params[1]
            return emphasis_jax.gr_loss(logits, y[index], beta=8.0, lam=1.0).mean(), logits

        (_, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
        return params, record(totals, index, logits, y[index])

    totals = init_totals(n)
    for epoch in range(20):
        for index in np.array_split(np.random.default_rng(epoch).permutation(n), 6):
            params, totals = step(params, totals, jnp.asarray(index))
    dynamics = emphasis.TrainingDynamics.from_totals(c, Totals(*(np.asarray(t) for t in totals)))
    found = emphasis.find_label_issues(dynamics)
    assert noisy.flipped[found].mean() > 0.9
    assert abs(found.size / n - noisy.realised_rate) < 0.05


def test_the_readme_pattern_is_this_one():
    """The JAX block of docs/label-issues.md runs, given a train state's totals, and records like `record`."""
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "label-issues.md"
    section = page.read_text().split("## Recording the dynamics in each framework", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    (block,) = [b for b in blocks if "def record(" in b]
    namespace = {"jax": jax, "jnp": jnp, "np": np, "emphasis": emphasis, "C": 3}
    namespace["totals"] = init_totals(4)
    exec(compile(block, "docs/label-issues.md JAX dynamics", "exec"), namespace)
    logits = jnp.asarray([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    ours = namespace["record"](init_totals(4), jnp.asarray([0, 3]), logits, jnp.asarray([0, 2]))
    theirs = record(init_totals(4), jnp.asarray([0, 3]), logits, jnp.asarray([0, 2]))
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert namespace["dynamics"].num_classes == 3
