"""Data-parallel GR on 4 host CPU devices (run by tests/test_jax_parallel.py in a subprocess).

XLA_FLAGS=--xla_force_host_platform_device_count=4 must be set before JAX starts, which is
why this runs in its own process. Each check compares the gradient that 4 devices compute
for B/4 examples each, with GR's normaliser all-reduced over ``axis_name``, against the
gradient one device computes for the whole batch. Prints one line per check and "OK".
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import emphasis_jax

DEVICES = 4
BATCH, CLASSES, FEATURES = 16, 5, 3
RTOL, ATOL = 2e-5, 1e-7


def close(name: str, actual, expected) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=RTOL, atol=ATOL)
    print(f"{name}: max abs difference {np.max(np.abs(np.asarray(actual) - expected)):.2e}")


def main() -> None:
    assert jax.device_count() == DEVICES, jax.devices()
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(BATCH, CLASSES)) * 3, jnp.float32)
    labels = jnp.asarray(rng.integers(0, CLASSES, size=BATCH))
    keep = jnp.asarray(rng.random(BATCH) < 0.75)
    sharded = (DEVICES, BATCH // DEVICES)

    def total(z, y, axis_name=None, beta=8.0, where=None):
        return emphasis_jax.gr_loss(z, y, beta=beta, where=where, axis_name=axis_name).sum()

    full = jax.grad(total)(logits, labels)

    # pmap: each device differentiates the sum over its own examples.
    per_device = jax.pmap(jax.grad(lambda z, y: total(z, y, "data")), axis_name="data")(
        logits.reshape(*sharded, CLASSES), labels.reshape(sharded)
    )
    close("pmap, global normaliser", per_device.reshape(BATCH, CLASSES), full)
    local = jax.pmap(jax.grad(total), axis_name="data")(
        logits.reshape(*sharded, CLASSES), labels.reshape(sharded)
    )
    gap = float(jnp.max(jnp.abs(local.reshape(BATCH, CLASSES) - full)))
    assert gap > 1e-2, gap  # each device normalising alone is a different objective
    print(f"pmap, per-device normaliser differs by {gap:.2e}")

    # pmap with `where` and a traced beta: excluded examples count nowhere.
    full_masked = jax.grad(total)(logits, labels, None, 12.0, keep)
    masked = jax.pmap(
        jax.grad(lambda z, y, b, w: total(z, y, "data", b, w)),
        axis_name="data",
        in_axes=(0, 0, None, 0),
    )(logits.reshape(*sharded, CLASSES), labels.reshape(sharded), 12.0, keep.reshape(sharded))
    close("pmap, where + traced beta", masked.reshape(BATCH, CLASSES), full_masked)

    # shard_map under jit, gradient taken inside each shard.
    mesh = jax.make_mesh((DEVICES,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    inside = jax.jit(
        jax.shard_map(
            jax.grad(lambda z, y: total(z, y, "data")),
            mesh=mesh,
            in_specs=(P("data"), P("data")),
            out_specs=P("data"),
        )
    )
    close("shard_map, grad inside", inside(logits, labels), full)

    # shard_map for the per-example losses, gradient of the global mean taken outside.
    def global_mean(z):
        losses = jax.shard_map(
            lambda z, y: emphasis_jax.gr_loss(z, y, axis_name="data"),
            mesh=mesh,
            in_specs=(P("data"), P("data")),
            out_specs=P("data"),
        )(z, labels)
        return losses.mean()

    z_sharded = jax.device_put(logits, NamedSharding(mesh, P("data")))
    outside = jax.jit(jax.grad(global_mean))(z_sharded)
    close("shard_map, grad outside", outside, full / BATCH)

    # A linear model trained data-parallel: pmean of per-device gradients of local means
    # equals the full-batch gradient of the mean.
    x = jnp.asarray(rng.normal(size=(BATCH, FEATURES)), jnp.float32)
    weights = jnp.asarray(rng.normal(size=(FEATURES, CLASSES)), jnp.float32)

    def model_loss(w, x, y, axis_name=None):
        return emphasis_jax.gr_loss(x @ w, y, axis_name=axis_name).mean()

    expected = jax.grad(model_loss)(weights, x, labels)
    averaged = jax.pmap(
        lambda w, x, y: jax.lax.pmean(jax.grad(model_loss)(w, x, y, "data"), "data"),
        axis_name="data",
        in_axes=(None, 0, 0),
    )(weights, x.reshape(*sharded, FEATURES), labels.reshape(sharded))
    close("pmap, linear model parameters", averaged[0], expected)
    print("OK")


if __name__ == "__main__":
    main()
    sys.exit(0)
