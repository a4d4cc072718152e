"""JAX adapter for :mod:`emphasis`: per-example losses in the optax style.

``gr_loss``, ``cce_loss``, ``mae_loss`` and ``gce_loss`` are pure functions of logits and
integer labels returning one loss per example, like
``optax.softmax_cross_entropy_with_integer_labels``; the logit gradient is the core's,
registered with ``jax.custom_jvp`` (so ``grad``, ``jit``, ``vmap``, ``jvp``, ``pmap`` and
``shard_map`` all work)::

    import emphasis_jax

    loss = emphasis_jax.gr_loss(logits, labels, beta=8.0, lam=0.5).mean()

Importing this package imports JAX; importing :mod:`emphasis` alone never does.
"""

try:
    import jax  # noqa: F401
except ImportError as err:
    raise ImportError('emphasis_jax needs JAX: pip install "emphasis[jax]"') from err

from emphasis_jax._losses import cce_loss, gce_loss, gr_loss, mae_loss

__all__ = ["cce_loss", "gce_loss", "gr_loss", "mae_loss"]
