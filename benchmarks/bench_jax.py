"""Jitted forward + backward of ``emphasis_jax`` losses against optax's integer-label CE.

Times ``jax.jit(jax.value_and_grad(lambda z: loss(z, labels).mean()))`` at the shapes of
issue 6 and prints a Markdown table (the one in docs/jax.md). Each entry is the median of
``--repeats`` timed calls after a warm-up call that compiles; the ratio is to optax's
``softmax_cross_entropy_with_integer_labels`` on the same machine in the same run.

    python benchmarks/bench_jax.py                 # all shapes, float32
    python benchmarks/bench_jax.py --shapes 128x10 1024x1000 --repeats 50
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import emphasis_jax

SHAPES = ((128, 10), (128, 100), (1024, 1000), (4096, 1000), (512, 32000))


def losses() -> dict[str, Callable]:
    return {
        "optax CE": optax.softmax_cross_entropy_with_integer_labels,
        "cce_loss": emphasis_jax.cce_loss,
        "gr_loss": lambda z, y: emphasis_jax.gr_loss(z, y, beta=8.0, lam=0.5),
    }


def time_step(loss: Callable, logits: jax.Array, labels: jax.Array, repeats: int) -> float:
    """Median seconds of one jitted value-and-grad of the mean loss."""
    step = jax.jit(jax.value_and_grad(lambda z: loss(z, labels).mean()))
    jax.block_until_ready(step(logits))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(step(logits))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parse_shape(text: str) -> tuple[int, int]:
    n, c = text.lower().split("x")
    return int(n), int(c)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*", type=parse_shape, default=list(SHAPES))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args(argv)

    device = jax.devices()[0]
    print(
        f"JAX {jax.__version__}, optax {optax.__version__}, device {device.device_kind} "
        f"({platform.machine()}, {os.cpu_count()} CPUs visible), {args.dtype}, "
        f"median of {args.repeats}"
    )
    fns = losses()
    header = "| (N, C) | " + " | ".join(f"{name} (ms)" for name in fns) + " | GR / optax |"
    print(header)
    print("|" + "---|" * (len(fns) + 2))
    rng = np.random.default_rng(0)
    for n, c in args.shapes:
        logits = jnp.asarray(rng.normal(size=(n, c)) * 3, dtype=args.dtype)
        labels = jnp.asarray(rng.integers(0, c, size=n))
        ms = {name: 1e3 * time_step(fn, logits, labels, args.repeats) for name, fn in fns.items()}
        cells = " | ".join(f"{ms[name]:.3f}" for name in fns)
        print(f"| ({n}, {c}) | {cells} | {ms['gr_loss'] / ms['optax CE']:.2f}x |")


if __name__ == "__main__":
    main()
