"""Forward + backward time of emphasis_tf.GRLoss against TensorFlow's fused cross entropy.

For each (N, C) it times ``d mean(loss) / d logits`` with a ``tf.GradientTape``:

* baseline: ``tf.nn.sparse_softmax_cross_entropy_with_logits`` (one fused kernel),
* ``emphasis_tf.GRLoss(beta=8, lam=0.5, from_logits=True)`` (the Keras loss a user
  compiles, Keras's reduction included),

eagerly, inside ``tf.function`` and inside ``tf.function(jit_compile=True)`` (XLA).
Measurements of the two losses are interleaved and the median of several repeats is
reported, so that a busy machine affects both alike. Prints a Markdown table.

    python benchmarks/bench_tf.py                 # every shape, 2 threads
    python benchmarks/bench_tf.py --shapes 128x10 1024x1000 --threads 4
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

SHAPES = [(128, 10), (128, 100), (1024, 1000), (4096, 1000), (512, 32000)]
MODES = ("eager", "function", "xla")


def parse_shape(text: str) -> tuple[int, int]:
    n, c = text.lower().split("x")
    return int(n), int(c)


def make_step(loss_fn, mode: str):
    import tensorflow as tf

    def step(labels, logits):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss_fn(labels, logits)
        return value, tape.gradient(value, logits)

    if mode == "eager":
        return step
    return tf.function(step, jit_compile=mode == "xla")


def time_call(step, labels, logits, budget_s: float) -> float:
    """Seconds per call: run repeatedly for about budget_s, synchronise on the result."""
    count = 0
    start = time.perf_counter()
    while True:
        _, grad = step(labels, logits)
        grad.numpy()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s and count >= 3:
            return elapsed / count


def bench_shape(n: int, c: int, modes, repeats: int, budget_s: float) -> dict:
    import numpy as np
    import tensorflow as tf

    import emphasis_tf

    rng = np.random.default_rng(0)
    logits = tf.constant((rng.normal(size=(n, c)) * 3).astype("float32"))
    labels = tf.constant(rng.integers(0, c, size=n).astype("int32"))

    def baseline(y, z):
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z))

    gr = emphasis_tf.GRLoss(beta=8.0, lam=0.5, from_logits=True)
    row = {}
    for mode in modes:
        steps = {"base": make_step(baseline, mode), "gr": make_step(gr, mode)}
        for step in steps.values():  # trace / compile / warm up
            time_call(step, labels, logits, 0.0)
        samples: dict[str, list[float]] = {"base": [], "gr": []}
        for _ in range(repeats):
            for name, step in steps.items():
                samples[name].append(time_call(step, labels, logits, budget_s))
        row[mode] = {name: statistics.median(v) for name, v in samples.items()}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*", type=parse_shape, default=SHAPES, metavar="NxC")
    parser.add_argument("--modes", nargs="*", choices=MODES, default=list(MODES))
    parser.add_argument("--threads", type=int, default=2, help="TF intra/inter-op threads")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (median)")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per measurement")
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    import keras

    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} threads; forward+backward of the mean loss; median of {args.repeats}\n"
    )
    header = "| N x C |"
    rule = "|---|"
    for mode in args.modes:
        header += f" tf.nn {mode} (ms) | GRLoss {mode} (ms) | ratio |"
        rule += "---:|---:|---:|"
    print(header)
    print(rule, flush=True)
    for n, c in args.shapes:
        row = bench_shape(n, c, args.modes, args.repeats, args.budget)
        line = f"| {n} x {c} |"
        for mode in args.modes:
            base, gr = row[mode]["base"] * 1e3, row[mode]["gr"] * 1e3
            line += f" {base:.3f} | {gr:.3f} | {gr / base:.2f}x |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
