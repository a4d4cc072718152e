"""JAX adapter for :mod:`emphasis` (being written).

It will expose ``gr_loss`` (a pure, per-example loss function in the optax style) with the core's
stable logit gradient registered through ``jax.custom_vjp``. Importing this package imports JAX;
importing :mod:`emphasis` alone never does.
"""

try:
    import jax  # noqa: F401
except ImportError as err:
    raise ImportError('emphasis_jax needs JAX: pip install "emphasis[jax]"') from err

__all__: list[str] = []
