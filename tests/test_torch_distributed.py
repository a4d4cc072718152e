"""Data parallel: 2 gloo ranks x B/2 examples give the gradient of 1 process x B (global_normalize=True)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

import emphasis_torch  # noqa: E402

pytestmark = pytest.mark.torch

WORLD = 2
BATCH = 16


def _problem():
    """The model and the global batch, identical in every process."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 6, generator=generator)
    # Examples of very different difficulty, so each rank's own mean weight differs from
    # the global one: easy (large margin) in the first half, hard in the second.
    x[: BATCH // 2] *= 4.0
    y = torch.randint(0, 4, (BATCH,), generator=generator)
    torch.manual_seed(1)
    model = torch.nn.Linear(6, 4).double()
    return model, x.double(), y


def _gradient(model, x, y, loss_fn):
    model.zero_grad()
    loss_fn(model(x), y).backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone()


def _worker(rank: int, tmp: str) -> None:
    torch.set_num_threads(1)  # two processes on a small machine
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=WORLD
    )
    try:
        model, x, y = _problem()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        part = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        results = {}
        for global_normalize in (True, False):
            loss_fn = emphasis_torch.GRLoss(beta=12.0, lam=1.0, global_normalize=global_normalize)
            # DDP averages the ranks' gradients, as the mean over B averages the halves.
            results[global_normalize] = _gradient(ddp, x[part], y[part], loss_fn)
        torch.save(results, Path(tmp) / f"rank{rank}.pt")
        # Both ranks leave their collectives before either tears gloo down: without this a
        # rank could abort in teardown ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_one_process(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    model, x, y = _problem()
    reference = _gradient(model, x, y, emphasis_torch.GRLoss(beta=12.0, lam=1.0))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for result in ranks:
        torch.testing.assert_close(result[True], reference, rtol=1e-12, atol=1e-14)
    # Without global_normalize each rank normalises by its own weights: another gradient.
    local = ranks[0][False]
    assert (local - reference).abs().max() > 1e-3 * reference.abs().max()
