"""Jitted forward + backward of ``emphasis_jax`` losses against optax's integer-label CE.

Times ``jax.jit(jax.value_and_grad(lambda z: loss(z, labels).mean()))`` at the shapes of
issue 6 and prints a Markdown table (the one in docs/jax.md). Each entry is the median of
at least ``--repeats`` timed calls (and at least ``--min-seconds`` of them), the losses
taking turns, after a warm-up call that compiles; the ratio is to optax's
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


def time_steps(
    fns: dict[str, Callable],
    logits: jax.Array,
    labels: jax.Array,
    repeats: int,
    min_seconds: float,
) -> dict[str, float]:
    """Median seconds of one jitted value-and-grad of each mean loss.

    The losses take turns, one call each per round, so that a change in the load of a
    shared machine falls on all of them alike. At least ``repeats`` rounds, and more until
    ``min_seconds`` have passed, so that microsecond-scale shapes get enough samples.
    """
    steps = {
        name: jax.jit(jax.value_and_grad(lambda z, fn=fn: fn(z, labels).mean()))
        for name, fn in fns.items()
    }
    for step in steps.values():
        jax.block_until_ready(step(logits))  # compile
    times: dict[str, list[float]] = {name: [] for name in steps}
    begin = time.perf_counter()
    rounds = 0
    while rounds < repeats or time.perf_counter() - begin < min_seconds:
        for name, step in steps.items():
            start = time.perf_counter()
            jax.block_until_ready(step(logits))
            times[name].append(time.perf_counter() - start)
        rounds += 1
    return {name: statistics.median(t) for name, t in times.items()}


def parse_shape(text: str) -> tuple[int, int]:
    n, c = text.lower().split("x")
    return int(n), int(c)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*", type=parse_shape, default=list(SHAPES))
    parser.add_argument("--repeats", type=int, default=30, help="at least this many calls")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="and at least this long")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args(argv)

    device = jax.devices()[0]
    print(
        f"JAX {jax.__version__}, optax {optax.__version__}, device {device.device_kind} "
        f"({platform.machine()}, {os.cpu_count()} CPUs visible), {args.dtype}, "
        f"median of >= {args.repeats} interleaved calls and >= {args.min_seconds:g} s"
    )
    fns = losses()
    header = "| (N, C) | " + " | ".join(f"{name} (ms)" for name in fns) + " | GR / optax |"
    print(header)
    print("|" + "---|" * (len(fns) + 2))
    rng = np.random.default_rng(0)
    for n, c in args.shapes:
        logits = jnp.asarray(rng.normal(size=(n, c)) * 3, dtype=args.dtype)
        labels = jnp.asarray(rng.integers(0, c, size=n))
        seconds = time_steps(fns, logits, labels, args.repeats, args.min_seconds)
        ms = {name: 1e3 * t for name, t in seconds.items()}
        cells = " | ".join(f"{ms[name]:.3f}" for name in fns)
        print(f"| ({n}, {c}) | {cells} | {ms['gr_loss'] / ms['optax CE']:.2f}x |")


if __name__ == "__main__":
    main()
