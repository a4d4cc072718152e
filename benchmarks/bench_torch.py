"""Forward + backward time and peak memory of emphasis_torch.gr_loss against F.cross_entropy.

Usage::

    python benchmarks/bench_torch.py                       # every shape, eager and compiled
    python benchmarks/bench_torch.py --shapes 1024x1000 --no-compile --repeats 30

For each (N, C) it times ``loss = fn(logits, labels); loss.backward()`` (float32
logits that require grad, random labels) and prints a Markdown table: the median
over ``--repeats`` runs (after warm-up; the two functions alternate run by run,
so that load on a shared machine hits both alike) and the ratio to
F.cross_entropy in the same mode. "compiled" wraps each function in
``torch.compile`` (default mode, fullgraph=True) and compares compiled with
compiled.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` above what was
allocated before the call; on CPU, the rise of the process's peak resident set
size (VmHWM, reset through /proc/self/clear_refs) during one forward + backward,
with glibc's mmap threshold fixed (MALLOC_MMAP_THRESHOLD_, set by re-executing the
script) so that freed tensors leave the resident set. Linux only.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import emphasis_torch

SHAPES = ((128, 10), (128, 100), (1024, 1000), (4096, 1000), (512, 32000))
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(fn: Loss, logits: torch.Tensor, labels: torch.Tensor) -> None:
    logits.grad = None
    fn(logits, labels).backward()


def time_pair(
    fns: dict[str, Loss], logits: torch.Tensor, labels: torch.Tensor, repeats: int, warmup: int
) -> dict[str, float]:
    """Median seconds per forward + backward of each function, runs interleaved."""
    for fn in fns.values():
        for _ in range(warmup):
            _step(fn, logits, labels)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(logits.device)
            start = time.perf_counter()
            _step(fn, logits, labels)
            _sync(logits.device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        match = re.search(field + r":\s+(\d+) kB", status.read())
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1))


def peak_memory_mib(fn: Loss, logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Extra peak memory of one forward + backward (after a warm-up call), MiB."""
    _step(fn, logits, labels)
    logits.grad = None
    if logits.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _step(fn, logits, labels)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        logits.grad = None
        return peak / 2**20
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current resident set
    base = _status_kb("VmRSS")
    _step(fn, logits, labels)
    peak = _status_kb("VmHWM") - base
    logits.grad = None
    return peak / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--shapes", nargs="*", default=[f"{n}x{c}" for n, c in SHAPES])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true", help="eager mode only")
    parser.add_argument("--no-validate", action="store_true", help="gr_loss(validate=False)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--beta", type=float, default=8.0)
    parser.add_argument("--lam", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: keep)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    validate = not args.no_validate

    def gr(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return emphasis_torch.gr_loss(
            logits, labels, beta=args.beta, lam=args.lam, validate=validate
        )

    def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    modes: list[tuple[str, dict[str, Loss]]] = [("eager", {"ce": cross_entropy, "gr": gr})]
    if not args.no_compile:
        modes.append(
            (
                "compiled",
                {
                    "ce": torch.compile(cross_entropy, fullgraph=True),
                    "gr": torch.compile(gr, fullgraph=True),
                },
            )
        )

    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, device "
        f"{device}, {torch.get_num_threads()} threads, float32, GR(beta={args.beta}, "
        f"lam={args.lam}), validate={validate}, median of {args.repeats}\n"
    )
    print(
        "| N x C | mode | F.cross_entropy ms | gr_loss ms | time ratio | CE peak MiB | GR peak MiB | memory ratio |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for shape in args.shapes:
        n, c = (int(part) for part in shape.lower().split("x"))
        generator = torch.Generator().manual_seed(0)
        logits = torch.randn(n, c, generator=generator).to(device).requires_grad_()
        labels = torch.randint(0, c, (n,), generator=generator).to(device)
        for mode, fns in modes:
            if mode == "compiled":
                torch._dynamo.reset()
                # Mark nothing dynamic: each shape compiles its own graph, as in a training loop.
            times = time_pair(fns, logits, labels, args.repeats, args.warmup)
            memory = {name: peak_memory_mib(fn, logits, labels) for name, fn in fns.items()}
            print(
                f"| {n} x {c} | {mode} | {times['ce'] * 1e3:.3f} | {times['gr'] * 1e3:.3f} | "
                f"{times['gr'] / times['ce']:.2f} | {memory['ce']:.1f} | {memory['gr']:.1f} | "
                f"{memory['gr'] / memory['ce'] if memory['ce'] > 0 else float('nan'):.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    if sys.platform == "linux" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # A fixed threshold makes glibc return large freed blocks at once (see module doc).
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    main()
