"""Training-step time of a CIFAR ResNet with emphasis_torch.GRLoss against F.cross_entropy.

Usage::

    python benchmarks/bench_resnet_step.py --device cuda              # ResNet-56, batch 128, 32x32
    python benchmarks/bench_resnet_step.py --quick                    # ResNet-8, batch 8: a smoke test

One step is what a training loop does: forward, the loss, backward, SGD with momentum
0.9 and weight decay. The two losses alternate step by step on one model (random
inputs and labels, 10 classes; the loss's share of a step does not depend on the data),
and each reports the median over ``--repeats`` samples of ``--inner`` steps, after
warm-up. The goal of issue 14: GRLoss within 2% of F.cross_entropy on a GPU, where the
loss of a (128, 10) batch is a few microseconds of kernels against milliseconds of
convolutions, so what remains is launch overhead.

``--json PATH`` writes the result as JSON as well.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import emphasis_torch
from reference_training.resnet_cifar import resnet_cifar

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--depth", type=int, default=56)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--inner", type=int, default=5, help="steps per sample")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--quick", action="store_true", help="ResNet-8, batch 8, 2 samples")
    parser.add_argument("--json", help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.depth, args.batch, args.repeats, args.inner, args.warmup = 8, 8, 2, 1, 1
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = resnet_cifar(args.depth, 10).to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    images = torch.randn(args.batch, 3, 32, 32, device=device).to(memory_format=memory_format)
    labels = torch.randint(0, 10, (args.batch,), device=device)
    losses: dict[str, Loss] = {
        "cross_entropy": lambda z, y: F.cross_entropy(z, y),
        "GRLoss": emphasis_torch.GRLoss(beta=8.0, lam=0.5),
    }

    def step(loss_fn: Loss) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()

    for loss_fn in losses.values():
        for _ in range(args.warmup):
            step(loss_fn)
    times: dict[str, list[float]] = {name: [] for name in losses}
    for _ in range(args.repeats):
        for name, loss_fn in losses.items():
            _sync(device)
            start = time.perf_counter()
            for _ in range(args.inner):
                step(loss_fn)
            _sync(device)
            times[name].append((time.perf_counter() - start) / args.inner)
    median = {name: statistics.median(values) for name, values in times.items()}
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {
        "setup": f"ResNet-{args.depth}, batch {args.batch}, 32x32, {where}, torch "
        f"{torch.__version__}, median of {args.repeats} x {args.inner} steps",
        "ms_cross_entropy": median["cross_entropy"] * 1e3,
        "ms_grloss": median["GRLoss"] * 1e3,
        "overhead_percent": (median["GRLoss"] / median["cross_entropy"] - 1) * 100,
    }
    print(json.dumps(result, indent=1), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=1)
    return result


if __name__ == "__main__":
    main()
