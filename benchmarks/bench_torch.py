"""Forward + backward time, bandwidth and peak memory of emphasis_torch.gr_loss against
F.cross_entropy (eager and compiled) and, on CUDA, Liger-Kernel's cross entropy.

Usage::

    python benchmarks/bench_torch.py                       # CPU: every default shape, eager and compiled
    python benchmarks/bench_torch.py --shapes 1024x1000 --no-compile --repeats 30 --threads 1
    python benchmarks/bench_torch.py --device cuda         # the GPU table (benchmarks/gpu_session.sh)
    python benchmarks/bench_torch.py --quick               # tiny shapes, a smoke test of every path

Shapes are ``NxC`` (rows of logits) or ``NxCxd1x...`` (N-d logits, classes on dim 1, as
F.cross_entropy takes them), optionally with a dtype: ``8192x128256:bfloat16``.

For each shape it times ``loss = fn(logits, labels); loss.backward()`` (logits that
require grad, random labels) for each function, the functions alternating run by run
so that load on a shared machine hits them alike, and prints a Markdown table: the
median over ``--repeats`` samples (after warm-up; on CUDA a sample is ``--inner`` steps
between two synchronisations), the ratio to eager F.cross_entropy, the achieved
bandwidth and the peak memory. Functions:

- ``ce``: F.cross_entropy; ``ce-compiled``: it under ``torch.compile(fullgraph=True)``;
- ``gr``: emphasis_torch.gr_loss (``kernel="auto"``: the Triton kernels on CUDA when
  Triton imports, torch ops otherwise); ``gr-compiled``: it compiled;
- ``gr-torch`` (CUDA only): ``kernel="torch"``, the torch-ops path on the GPU;
- ``liger`` (CUDA only, when ``liger_kernel`` imports): LigerCrossEntropyLoss. It writes
  the gradient into its input's buffer during the forward, so it gets its own copy of
  the logits; N-d logits are first moved to rows (a copy it needs, timed with it).

Bandwidth: ``2 * numel * itemsize / time``, the one read of the logits and one write of
their gradient that any forward + backward must do, over the measured time (so a
method that moves more bytes shows a lower figure, not a higher one).

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` above what was allocated
before the call; on CPU, the rise of the process's peak resident set size (VmHWM, reset
through /proc/self/clear_refs) during one forward + backward, with glibc's mmap
threshold fixed (MALLOC_MMAP_THRESHOLD_, set by re-executing the script) so that freed
tensors leave the resident set. Linux only.

``--json PATH`` writes the rows as JSON as well (rewritten after each shape, so a run
stopped by a time limit keeps what it measured).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import emphasis_torch

SHAPES = ("128x10", "128x100", "1024x1000", "4096x1000", "512x32000")
CUDA_SHAPES = ("4096x1000", "512x32000", "8192x128256:bfloat16", "8x150x256x256")
QUICK_SHAPES = ("64x10", "16x1000", "8x300:bfloat16", "2x5x4x4")
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def parse_shape(spec: str) -> tuple[tuple[int, ...], torch.dtype]:
    """``"8x150x256x256"`` -> ((8, 150, 256, 256), float32); ``"NxC:bfloat16"`` sets the dtype."""
    dims, _, dtype = spec.lower().partition(":")
    shape = tuple(int(part) for part in dims.split("x"))
    if len(shape) < 2:
        raise ValueError(f"a shape needs N and C at least, got {spec!r}")
    return shape, getattr(torch, dtype or "float32")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step(fn: Loss, logits: torch.Tensor, labels: torch.Tensor) -> None:
    logits.grad = None
    fn(logits, labels).backward()


def time_interleaved(
    fns: dict[str, Loss],
    inputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    repeats: int,
    warmup: int,
    inner: int = 1,
) -> dict[str, float]:
    """Median seconds per forward + backward of each function, samples interleaved."""
    device = labels.device
    for name, fn in fns.items():
        for _ in range(warmup):
            _step(fn, inputs[name], labels)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            for _ in range(inner):
                _step(fn, inputs[name], labels)
            _sync(device)
            times[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(values) for name, values in times.items()}


def time_pair(
    fns: dict[str, Loss], logits: torch.Tensor, labels: torch.Tensor, repeats: int, warmup: int
) -> dict[str, float]:
    """:func:`time_interleaved` with one input shared by every function."""
    return time_interleaved(fns, dict.fromkeys(fns, logits), labels, repeats, warmup)


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
    if not os.path.exists("/proc/self/clear_refs"):
        return math.nan
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current resident set
    base = _status_kb("VmRSS")
    _step(fn, logits, labels)
    peak = _status_kb("VmHWM") - base
    logits.grad = None
    return peak / 1024


def liger_loss() -> Loss | None:
    """Liger-Kernel's fused cross entropy on rows, or None when it does not import."""
    try:
        from liger_kernel.transformers import LigerCrossEntropyLoss
    except Exception:  # not installed, or no usable Triton/CUDA
        return None
    module = LigerCrossEntropyLoss()

    def liger(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if logits.ndim > 2:  # Liger takes rows (M, C)
            classes = logits.shape[1]
            logits = logits.movedim(1, -1).reshape(-1, classes)
            labels = labels.reshape(-1)
        return module(logits, labels)

    return liger


def functions(
    device: torch.device, beta: float, lam: float, validate: bool, compile: bool
) -> dict[str, Loss]:
    """The functions to time, by name (see the module docstring)."""

    def gr(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return emphasis_torch.gr_loss(logits, labels, beta=beta, lam=lam, validate=validate)

    def gr_torch(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return emphasis_torch.gr_loss(
            logits, labels, beta=beta, lam=lam, validate=validate, kernel="torch"
        )

    def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    fns: dict[str, Loss] = {"ce": cross_entropy, "gr": gr}
    if device.type == "cuda":
        fns["gr-torch"] = gr_torch
        liger = liger_loss()
        if liger is not None:
            fns["liger"] = liger
    if compile:
        fns["ce-compiled"] = torch.compile(cross_entropy, fullgraph=True)
        fns["gr-compiled"] = torch.compile(gr, fullgraph=True)
    return fns


def bench_shape(
    spec: str, fns: dict[str, Loss], device: torch.device, repeats: int, warmup: int, inner: int
) -> list[dict[str, Any]]:
    """One table row per function for the shape ``spec``."""
    shape, dtype = parse_shape(spec)
    generator = torch.Generator().manual_seed(0)
    classes = shape[1]
    base = torch.randn(shape, generator=generator).to(device=device, dtype=dtype)
    label_shape = (shape[0], *shape[2:])
    labels = torch.randint(0, classes, label_shape, generator=generator).to(device)
    shared = base.requires_grad_()
    # Liger overwrites its input with the gradient: it gets a copy of its own.
    inputs = {
        name: base.detach().clone().requires_grad_() if name == "liger" else shared for name in fns
    }
    torch._dynamo.reset()  # each shape compiles its own graphs, as in a training loop
    times = time_interleaved(fns, inputs, labels, repeats, warmup, inner)
    memory = {name: peak_memory_mib(fn, inputs[name], labels) for name, fn in fns.items()}
    moved = 2 * base.numel() * base.element_size()  # one read of the logits, one write
    rows = []
    for name in fns:
        # None (JSON null) where F.cross_entropy's rise is below what the measure resolves
        ratio_memory = memory[name] / memory["ce"] if memory["ce"] > 0 else None
        rows.append(
            {
                "shape": "x".join(map(str, shape)),
                "dtype": str(dtype).removeprefix("torch."),
                "function": name,
                "ms": times[name] * 1e3,
                "ratio_to_ce": times[name] / times["ce"],
                "gb_per_s": moved / times[name] / 1e9,
                "peak_mib": memory[name],
                "memory_ratio_to_ce": ratio_memory,
            }
        )
    return rows


def _ratio(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.2f}"


def _describe(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--shapes", nargs="*", default=None)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 repeats: a smoke test")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--inner", type=int, default=0, help="steps per sample (0: 5 on CUDA, 1)")
    parser.add_argument("--no-compile", action="store_true", help="eager mode only")
    parser.add_argument("--no-validate", action="store_true", help="gr_loss(validate=False)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--beta", type=float, default=8.0)
    parser.add_argument("--lam", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: keep)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 2), min(args.warmup, 1)
    shapes = args.shapes or (
        QUICK_SHAPES if args.quick else CUDA_SHAPES if device.type == "cuda" else SHAPES
    )
    inner = args.inner or (5 if device.type == "cuda" and not args.quick else 1)
    validate = not args.no_validate
    fns = functions(device, args.beta, args.lam, validate, compile=not args.no_compile)

    header = (
        f"torch {torch.__version__}, {_describe(device)}, device {device}, GR(beta={args.beta}, "
        f"lam={args.lam}), validate={validate}, median of {args.repeats} x {inner} steps"
    )
    print(header + "\n")
    print("| shape | dtype | function | ms | ratio to ce | GB/s | peak MiB | memory ratio |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    rows: list[dict[str, Any]] = []
    for spec in shapes:
        for row in bench_shape(spec, fns, device, args.repeats, args.warmup, inner):
            rows.append(row)
            print(
                f"| {row['shape']} | {row['dtype']} | {row['function']} | {row['ms']:.3f} | "
                f"{row['ratio_to_ce']:.2f} | {row['gb_per_s']:.1f} | {row['peak_mib']:.1f} | "
                f"{_ratio(row['memory_ratio_to_ce'])} |",
                flush=True,
            )
        if args.json:
            with open(args.json, "w") as out:
                json.dump({"setup": header, "rows": rows}, out, indent=1)
    return rows


if __name__ == "__main__":
    if sys.platform == "linux" and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        # A fixed threshold makes glibc return large freed blocks at once (see module doc).
        os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    main()
