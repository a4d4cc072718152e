"""Train a CIFAR ResNet on symmetrically noisy labels with CCE, MAE, GCE or GR (the paper, Sec. 4).

One run = one (dataset, depth, noise rate, loss, schedule, seed). Each run writes a directory::

    RUNS/<run name>/config.json   every setting, the schedule, the realised noise rate
                    log.jsonl     one JSON object per line: training records every --log-every
                                  iterations (lr, loss, accuracy on the noisy batch labels),
                                  evaluations every --eval-every (test accuracy), and a final one
                    checkpoint.pt model, optimiser, scheduler, grad scaler, RNG states, meters,
                                  the iteration; written atomically every --checkpoint-every
                                  iterations and at the end
                    final.json    final and best test accuracy, accuracy of the final model on the
                                  noisy and on the intact training labels (Table 3's columns)

Protocol (paper Sec. 4.1): batch 128, SGD momentum 0.9, lr 0.1, 4-pixel zero padding + random
32x32 crop + horizontal flip, per-channel normalisation. Two schedules:

    --schedule paper     lr x0.1 every 5k iterations, weight decay 1e-4 (the paper's text). The
                         paper does not give the total; 20k iterations by default (--iterations).
    --schedule released  lr x0.1 at 15k and 22k, 30k iterations, weight decay 5e-4 (the authors'
                         released CIFAR-100 Caffe solver).
    --schedule mentornet MentorNet's protocol (Jiang et al. 2018; the paper's Table 4): their
                         CIFAR "inception" network (--arch mentornet-inception), plain SGD
                         (momentum 0), lr 0.1 x0.1 every 200 epochs (78,125 iterations),
                         120k iterations, no weight decay, dropout 0.2 after fc3, 8-pixel zero
                         padding + random crop + flip, per-image standardisation.

Regularisers (the paper's Table 8): --weight-decay overrides the schedule's, --dropout sets the
dropout rate (ResNets: between the global pooling and the classifier; default 0).

Noise: the paper's symmetric noise (emphasis.symmetric_noise: with probability r a label moves to
one of the other classes uniformly), drawn once from the seed; the intact labels are kept to
measure accuracy on both.

Determinism and resuming: the data order is a function of (seed, epoch) and the augmentation of
(seed, iteration), so a run resumed from a checkpoint (--resume) continues exactly where it was,
even mid-epoch, and on CPU ends with the same weights, bit for bit, as an uninterrupted run.
A kill loses at most --checkpoint-every iterations. Log records written after the checkpoint
that is resumed are dropped and rewritten.

Label correction (the paper's supplementary Table 9): ``--relabel-from RUN_DIR`` with the
settings of a finished run RUN_DIR trains a new run (``<run name>_relabel``) from scratch on
corrected labels. The finished run's final model (its checkpoint) predicts the un-augmented
training images once; its logits feed an :class:`emphasis.TrainingDynamics` (one update), whose
scores (minus the margin ``z_y - max_{j != y} z_j`` of the noisy label) rank the examples;
:func:`emphasis.find_label_issues` flags the top ``rate`` of them, ``rate`` from
:func:`emphasis.estimate_noise_rate` on those scores unless ``--relabel-rate`` is given; the
flagged labels become the model's prediction (``suggested_labels()``). Why the final model's
predictions and not dynamics averaged over training: a finished run keeps only its final model,
and the paper relabels with the GR-trained model. A model that memorised the noisy labels (CCE
trained long) gives few negative margins and so flags few examples. The run then trains with
the same loss and (beta, lam) and records in ``final.json`` (``"relabel"``) the number
relabelled, the share of them now equal to the intact label, the accuracy of the whole
corrected training set, and the gain in final test accuracy over RUN_DIR. It refuses, naming
the path, a RUN_DIR that is unfinished (no final.json or a checkpoint short of its iterations),
has other result settings or other data (sizes, and the fingerprint of the data where saved),
or is itself a relabelled run.

Several GPUs: ``torchrun --nproc_per_node=G -m reference_training.train_cifar ...`` uses
DistributedDataParallel; the global batch (--batch-size) is split over the ranks, GR normalises
its weights over the global batch, rank 0 logs and writes checkpoints. Mixed precision: --amp
bf16 or --amp fp16 (with a gradient scaler).

Examples::

    python -m reference_training.train_cifar --data-dir ~/data --dataset cifar100 --depth 44 \\
        --noise-rate 0.4 --loss gr --beta 8 --lam 0.5 --schedule released --amp bf16 \\
        --seed 1 --repeats 5 --out-dir runs
    python -m reference_training.tables runs
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import hashlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

if __package__ in (None, ""):  # run as a file: make `reference_training` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import emphasis
from reference_training import mentornet_inception
from reference_training.cifar import CifarSplit, channel_stats, load_cifar
from reference_training.resnet_cifar import resnet_cifar

CHECKPOINT_FORMAT = 1
PAD = 4
# Independent random streams derived from the seed: numpy.random.default_rng([seed, STREAM, ...]).
NOISE_STREAM, ORDER_STREAM, AUGMENT_STREAM = 1, 2, 3

DEFAULT_DEPTH = {"cifar10": 56, "cifar100": 44}
ARCHS = ("resnet", "mentornet-inception")
SCHEDULES = ("paper", "released", "mentornet")
#: MentorNet's protocol (github.com/google/mentornet, code/cifar_train_baseline.py and
#: commands/train_studentnet_inception.sh): 120k steps, lr x0.1 every 200 epochs of 50,000 images
#: in batches of 128 (int(50000 / 128 * 200) = 78125 steps), SGD without momentum, 8-pixel padding.
MENTORNET_ITERATIONS, MENTORNET_DECAY_STEPS, MENTORNET_PAD = 120000, 78125, 8


@dataclass(frozen=True)
class Schedule:
    """Piecewise-constant learning rate: ``lr * 0.1**k`` after the k-th milestone."""

    name: str
    iterations: int
    milestones: tuple[int, ...]
    weight_decay: float


def resolve_schedule(
    name: str, iterations: int | None = None, weight_decay: float | None = None
) -> Schedule:
    """The paper's schedule (x0.1 every 5k iterations) or the authors' released one.

    >>> resolve_schedule("paper")
    Schedule(name='paper', iterations=20000, milestones=(5000, 10000, 15000), weight_decay=0.0001)
    >>> resolve_schedule("released").milestones
    (15000, 22000)
    >>> resolve_schedule("mentornet")
    Schedule(name='mentornet', iterations=120000, milestones=(78125,), weight_decay=0.0)
    """
    if name == "paper":
        total = 20000 if iterations is None else iterations
        milestones = tuple(range(5000, total, 5000))
        decay = 1e-4
    elif name == "released":
        total = 30000 if iterations is None else iterations
        milestones = tuple(m for m in (15000, 22000) if m < total)
        decay = 5e-4
    elif name == "mentornet":
        # Their cifarnet_arg_scope declares an L2 regulariser (0.004) on fc3/fc4, but the
        # training scripts never add it to the loss they minimise: no weight decay.
        total = MENTORNET_ITERATIONS if iterations is None else iterations
        milestones = tuple(range(MENTORNET_DECAY_STEPS, total, MENTORNET_DECAY_STEPS))
        decay = 0.0
    else:
        raise ValueError(f"schedule must be 'paper', 'released' or 'mentornet', got {name!r}")
    if total < 1:
        raise ValueError(f"iterations must be >= 1, got {total}")
    return Schedule(name, total, milestones, decay if weight_decay is None else weight_decay)


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reference_training.train_cifar",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--data-dir",
        required=True,
        help="directory with the binary CIFAR files (cifar-10-batches-bin/ or "
        "cifar-100-binary/, or their .tar.gz archives)",
    )
    data.add_argument("--dataset", choices=("cifar10", "cifar100"), default="cifar10")
    data.add_argument(
        "--noise-rate",
        type=float,
        default=0.0,
        help="symmetric noise rate r (the paper's definition)",
    )
    data.add_argument(
        "--noise-seed", type=int, default=None, help="seed of the label noise (default: --seed)"
    )

    model = p.add_argument_group("model and loss")
    model.add_argument(
        "--depth",
        type=int,
        default=None,
        help="ResNet depth 6n+2 (default: 56 for cifar10, 44 for cifar100)",
    )
    model.add_argument(
        "--arch",
        choices=ARCHS,
        default=None,
        help="network: the CIFAR ResNet, or MentorNet's CIFAR 'inception' student (TF-slim's "
        "CifarNet); default: mentornet-inception for --schedule mentornet, else resnet",
    )
    model.add_argument(
        "--dropout",
        type=float,
        default=None,
        help="dropout rate in [0, 1): ResNet between the global pooling and the classifier, "
        "mentornet-inception after fc3 (default: 0.2 for mentornet-inception, else 0)",
    )
    model.add_argument("--loss", choices=("cce", "mae", "gce", "gr"), default="cce")
    model.add_argument("--beta", type=float, default=8.0, help="GR: emphasis spread controller")
    model.add_argument("--lam", type=float, default=0.5, help="GR: emphasis focus controller")
    model.add_argument("--q", type=float, default=0.7, help="GCE: q in [0, 1]")
    model.add_argument("--eps", type=float, default=1e-6, help="GR: eps of the stable gradient")
    model.add_argument("--transform", choices=("exp", "identity"), default="exp", help="GR: g")
    model.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help="GR: do not normalise the weights to mean 1 over the batch",
    )

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--schedule", choices=SCHEDULES, default="paper")
    opt.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="total iterations (default: 20000 for paper, 30000 for released, 120000 for "
        "mentornet)",
    )
    opt.add_argument("--lr", type=float, default=0.1)
    opt.add_argument(
        "--momentum", type=float, default=None, help="default: 0 for mentornet, else 0.9"
    )
    opt.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="default: 1e-4 for paper, 5e-4 for released, 0 for mentornet",
    )
    opt.add_argument("--batch-size", type=int, default=128, help="global batch size")
    opt.add_argument("--seed", type=int, default=0, help="seed of noise, init, order, augmentation")
    opt.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run seeds seed, seed+1, ..., seed+repeats-1 one after the other",
    )

    fix = p.add_argument_group("label correction (the paper's supplementary Table 9)")
    fix.add_argument(
        "--relabel-from",
        default=None,
        metavar="RUN_DIR",
        help="a finished run with these settings: relabel the training examples its final "
        "model flags (emphasis.find_label_issues on its margins) with its prediction and train "
        "from scratch on the corrected labels",
    )
    fix.add_argument(
        "--relabel-rate",
        type=float,
        default=None,
        help="with --relabel-from: the fraction of examples to relabel (default: "
        "emphasis.estimate_noise_rate on the final model's scores)",
    )

    run = p.add_argument_group("running")
    run.add_argument("--out-dir", default="runs", help="parent directory of the run directories")
    run.add_argument("--run-name", default=None, help="default: derived from the settings")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run's checkpoint if there is one (a finished run is skipped)",
    )
    run.add_argument("--overwrite", action="store_true", help="discard an existing run directory")
    run.add_argument("--checkpoint-every", type=int, default=1000)
    run.add_argument("--eval-every", type=int, default=1000)
    run.add_argument("--log-every", type=int, default=100)
    run.add_argument("--eval-batch-size", type=int, default=1000)
    run.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    run.add_argument(
        "--amp",
        choices=("off", "bf16", "fp16"),
        default="off",
        help="mixed precision (fp16 uses a gradient scaler; CUDA only)",
    )
    run.add_argument("--channels-last", action="store_true", help="channels-last memory format")
    run.add_argument("--compile", action="store_true", help="torch.compile the model")
    run.add_argument(
        "--deterministic", action="store_true", help="deterministic CUDA kernels (slower)"
    )
    run.add_argument(
        "--sync-bn",
        action="store_true",
        help="with several GPUs: synchronise batch norm statistics over the ranks",
    )
    run.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bar (records are printed instead)",
    )
    run.add_argument("--halt-after", type=int, default=None, help=argparse.SUPPRESS)
    return p


#: Settings that change the result: a checkpoint is resumed only if these match.
RESULT_SETTINGS = (
    "dataset", "noise_rate", "noise_seed", "depth", "loss", "beta", "lam", "q", "eps",
    "transform", "normalize", "schedule", "iterations", "milestones", "lr", "momentum",
    "weight_decay", "batch_size", "seed", "amp", "log_every", "eval_every",
    "arch", "dropout", "pad", "standardize", "relabel_source", "relabel_rate",
)  # fmt: skip
#: The values of settings added later, for checkpoints written before them.
LEGACY_SETTINGS = {"arch": "resnet", "dropout": 0.0, "pad": PAD, "standardize": "channel",
                   "relabel_source": None, "relabel_rate": None}  # fmt: skip
#: The settings that label correction adds; the rest must match the finished run's.
RELABEL_SETTINGS = ("relabel_source", "relabel_rate")


def resolve_config(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The complete settings of one run (defaults filled in) as a JSON-able dict."""
    schedule = resolve_schedule(args.schedule, args.iterations, args.weight_decay)
    config = {k: v for k, v in vars(args).items() if k not in ("repeats", "halt_after")}
    mentornet = args.schedule == "mentornet"
    arch = args.arch or ("mentornet-inception" if mentornet else "resnet")
    if arch not in ARCHS:
        raise ValueError(f"--arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    if arch == "resnet":
        depth = args.depth or DEFAULT_DEPTH[args.dataset]
        default_dropout = 0.0
    else:
        if args.depth is not None:
            raise ValueError(f"--depth is for --arch resnet, not --arch {arch}")
        depth = None
        default_dropout = mentornet_inception.DEFAULT_DROPOUT
    config.update(
        seed=seed,
        noise_seed=seed if args.noise_seed is None else args.noise_seed,
        arch=arch,
        depth=depth,
        dropout=default_dropout if args.dropout is None else args.dropout,
        iterations=schedule.iterations,
        milestones=list(schedule.milestones),
        weight_decay=schedule.weight_decay,
        momentum=(0.0 if mentornet else 0.9) if args.momentum is None else args.momentum,
        # MentorNet's augmentation and standardisation (code/cifar_data_provider.py 140-149).
        pad=MENTORNET_PAD if mentornet else PAD,
        standardize="image" if mentornet else "channel",
    )
    dropout = config["dropout"]
    if not (math.isfinite(dropout) and 0.0 <= dropout < 1.0):
        raise ValueError(f"--dropout must be in [0, 1), got {dropout}")
    for key in ("weight_decay", "momentum"):
        if not (math.isfinite(config[key]) and config[key] >= 0.0):
            raise ValueError(f"--{key.replace('_', '-')} must be >= 0, got {config[key]}")
    if config["loss"] != "gr":  # GR's settings mean nothing to other losses
        for key in ("beta", "lam", "eps", "transform", "normalize"):
            config[key] = None
    if config["loss"] != "gce":
        config["q"] = None
    for key in ("batch_size", "checkpoint_every", "eval_every", "log_every", "eval_batch_size"):
        if config[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {config[key]}")
    if not 0.0 <= config["noise_rate"] <= 1.0:
        raise ValueError(f"--noise-rate must be in [0, 1], got {config['noise_rate']}")
    rate = config["relabel_rate"]
    if config["relabel_from"] is None:
        if rate is not None:
            raise ValueError("--relabel-rate needs --relabel-from RUN_DIR")
        config["relabel_source"] = None
    else:
        if rate is not None and not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
            raise ValueError(f"--relabel-rate must be in [0, 1], got {rate}")
        # The finished run's directory name: what the corrected labels depend on (with the
        # settings, which must equal its own).
        config["relabel_source"] = Path(config["relabel_from"]).resolve().name
    if config["run_name"] is None:
        config["run_name"] = run_name(config)
    return config


def loss_tag(config: dict[str, Any]) -> str:
    """Short name of the loss settings, e.g. ``gr_b8_l0.5`` or ``gce_q0.7``."""
    loss = config["loss"]
    if loss == "gce":
        return f"gce_q{config['q']:g}"
    if loss != "gr":
        return loss
    tag = f"gr_b{config['beta']:g}_l{config['lam']:g}"
    if config["transform"] != "exp":
        tag += f"_{config['transform']}"
    if not config["normalize"]:
        tag += "_nonorm"
    if config["eps"] != 1e-6:
        tag += f"_eps{config['eps']:g}"
    return tag


def regularisation_tag(config: dict[str, Any]) -> str:
    """``_wd<rate>`` / ``_drop<rate>`` where they differ from the schedule's / network's default
    (empty for the defaults, so the names of earlier runs are unchanged)."""
    tag = ""
    if config["weight_decay"] != resolve_schedule(config["schedule"]).weight_decay:
        tag += f"_wd{config['weight_decay']:g}"
    arch_default = mentornet_inception.DEFAULT_DROPOUT if config["arch"] != "resnet" else 0.0
    if config["dropout"] != arch_default:
        tag += f"_drop{config['dropout']:g}"
    default_momentum = 0.0 if config["schedule"] == "mentornet" else 0.9
    if config["momentum"] != default_momentum:
        tag += f"_mom{config['momentum']:g}"
    return tag


def run_name(config: dict[str, Any]) -> str:
    net = f"resnet{config['depth']}" if config["arch"] == "resnet" else config["arch"]
    relabel = ""
    if config.get("relabel_source") is not None:
        rate = config.get("relabel_rate")
        relabel = "_relabel" + ("" if rate is None else f"{rate:g}")
    return (
        f"{config['dataset']}_{net}_{config['schedule']}"
        f"_r{config['noise_rate']:g}_{loss_tag(config)}{regularisation_tag(config)}"
        f"_seed{config['seed']}{relabel}"
    )


# ---------------------------------------------------------------------------
# distributed context
# ---------------------------------------------------------------------------


@dataclass
class Context:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_sum(self, values: Sequence[float]) -> list[float]:
        if not self.distributed:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def setup_context(device_name: str | None) -> Context:
    """Start torch.distributed when launched by torchrun (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if device_name is None:
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if world_size <= 1:
        return Context(0, 1, torch.device(device_name))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_name.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        device = torch.device(device_name)
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://")
    return Context(dist.get_rank(), dist.get_world_size(), device)


# ---------------------------------------------------------------------------
# data: deterministic order and augmentation
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def epoch_permutation(seed: int, epoch: int, size: int) -> np.ndarray:
    """The order of the training set in ``epoch``: a function of (seed, epoch) only.

    Cached (the current epoch's is asked for at every step); do not modify the result."""
    return np.random.default_rng([seed, ORDER_STREAM, epoch]).permutation(size)


def global_batch(seed: int, iteration: int, size: int, batch_size: int) -> np.ndarray:
    """Indices of the global batch of ``iteration`` (0-based); the last partial batch of an
    epoch is dropped so that every step sees ``batch_size`` examples."""
    steps_per_epoch = size // batch_size
    epoch, step = divmod(iteration, steps_per_epoch)
    return epoch_permutation(seed, epoch, size)[step * batch_size : (step + 1) * batch_size]


def augmentation(
    seed: int, iteration: int, batch_size: int, pad: int = PAD
) -> tuple[np.ndarray, ...]:
    """Crop offsets (rows, columns) in [0, 2*pad] and flip flags for the global batch."""
    rng = np.random.default_rng([seed, AUGMENT_STREAM, iteration])
    offsets = rng.integers(0, 2 * pad + 1, size=(2, batch_size))
    flips = rng.random(batch_size) < 0.5
    return offsets[0], offsets[1], flips


def crop_and_flip(
    images: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    flips: torch.Tensor,
    pad: int = PAD,
) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` by ``pad`` zeros, take the ``H x W`` window at (rows, cols), mirror
    the flagged ones: one gather on the device."""
    b, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    r = rows[:, None] + torch.arange(h, device=images.device)  # (B, H)
    offsets = torch.arange(w, device=images.device)
    offsets = torch.where(flips[:, None], w - 1 - offsets, offsets)
    k = cols[:, None] + offsets  # (B, W)
    return padded[
        torch.arange(b, device=images.device)[:, None, None, None],
        torch.arange(c, device=images.device)[None, :, None, None],
        r[:, None, :, None],
        k[:, None, None, :],
    ]


class Normalizer(nn.Module):
    """uint8 images -> float, per-channel standardised."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255.0 - self.mean) / self.std


class PerImageStandardizer(nn.Module):
    """uint8 images -> float, each image standardised over all its pixels and channels, as
    TensorFlow's ``per_image_standardization`` (MentorNet's input pipeline):
    ``(x - mean) / max(std, 1 / sqrt(number of values))``, population std."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        flat = x.flatten(1)
        mean = flat.mean(1)
        std = flat.std(1, correction=0).clamp_min(1.0 / math.sqrt(flat.shape[1]))
        return (x - mean.view(-1, 1, 1, 1)) / std.view(-1, 1, 1, 1)


# ---------------------------------------------------------------------------
# losses (emphasis_torch)
# ---------------------------------------------------------------------------


#: GRLoss's keyword that normalises the weights over the global batch under DDP.
GLOBAL_NORMALIZE_OPTION = "global_batch"


def build_loss(config: dict[str, Any], distributed: bool) -> nn.Module:
    """The loss module of ``config`` from emphasis_torch.

    ``validate=False``: the adapter's per-call checks cost a host-device sync every step; the
    labels are checked once when read and a non-finite loss stops the run at the next record.
    """
    import emphasis_torch

    loss = config["loss"]
    if loss == "cce":
        return emphasis_torch.CCELoss(validate=False)
    if loss == "mae":
        return emphasis_torch.MAELoss(validate=False)
    if loss == "gce":
        return emphasis_torch.GCELoss(q=config["q"], validate=False)
    kwargs: dict[str, Any] = dict(
        beta=config["beta"], lam=config["lam"], eps=config["eps"],
        transform=config["transform"], normalize=config["normalize"], validate=False,
    )  # fmt: skip
    if distributed and config["normalize"]:
        kwargs[GLOBAL_NORMALIZE_OPTION] = True
    return emphasis_torch.GRLoss(**kwargs)


# ---------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------


def rng_states() -> dict[str, Any]:
    """The global random states. The run draws its own numbers from seeded generators; the
    global states are saved too so that code added to the loop that uses them resumes exactly."""
    state: tuple[Any, ...] = np.random.get_state(legacy=True)  # type: ignore[assignment]  # noqa: NPY002
    kind, keys, pos, has_gauss, cached = state
    states: dict[str, Any] = {
        "python": random.getstate(),
        # Stored as tensors and numbers so that torch.load(weights_only=True) can read them.
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }  # fmt: skip
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    n = states["numpy"]
    np.random.set_state(  # noqa: NPY002 (global state)
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Write through ``write(file)`` to a temporary file, then rename it over ``path``: a kill
    leaves either the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


class CheckpointError(ValueError):
    """A checkpoint cannot be read (empty, truncated, corrupt) or does not fit the command."""


def load_checkpoint(
    path: str | os.PathLike[str], device: torch.device | str, mmap: bool = False
) -> dict[str, Any]:
    """The state saved by ``Trainer.save_checkpoint`` (``torch.load(weights_only=True)``).

    ``mmap=True`` maps the file instead of reading it (cheap: for looking at the settings).
    Raises :class:`CheckpointError` naming ``path`` when the file is empty, truncated or corrupt.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True, mmap=mmap)
    except Exception as error:  # EOFError (0 bytes), RuntimeError (truncated zip), pickle errors
        size = os.path.getsize(path) if os.path.exists(path) else None
        what = "is empty (0 bytes)" if size == 0 else "is truncated or corrupt"
        raise CheckpointError(
            f"{path} {what}, not a readable checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no details'}): delete it to "
            "restart the run from the beginning, or pass --overwrite to start the run again"
        ) from error
    if not isinstance(state, dict) or "config" not in state:
        raise CheckpointError(
            f"{path} is not a checkpoint of this script (no saved settings): delete it to "
            "restart the run from the beginning, or pass --overwrite to start the run again"
        )
    return state


def settings_differences(
    saved: dict[str, Any],
    config: dict[str, Any],
    settings: Sequence[str],
    legacy: dict[str, Any] | None = None,
) -> list[str]:
    """``"name: old -> new"`` for each of ``settings`` whose saved value (``legacy``'s for a
    setting saved before it existed) differs from ``config``'s."""
    legacy = legacy or {}
    out = []
    for key in settings:
        old = saved.get(key, legacy.get(key))
        if old != config[key]:
            out.append(f"{key}: {old!r} -> {config[key]!r}")
    return out


def check_resumable(
    run_dir: Path,
    config: dict[str, Any],
    settings: Sequence[str],
    legacy: dict[str, Any] | None = None,
) -> None:
    """Refuse to resume (or to skip as finished) ``run_dir`` when its saved settings differ from
    ``config`` in any of ``settings`` (those that change the result). Reads only.

    The saved settings are the checkpoint's; a finished run without a checkpoint is compared with
    its config.json. An unfinished run without a checkpoint has nothing to keep: not checked.
    """
    checkpoint, config_json = run_dir / "checkpoint.pt", run_dir / "config.json"
    if checkpoint.exists():
        source, saved = "the checkpoint", load_checkpoint(checkpoint, "cpu", mmap=True)["config"]
    elif (run_dir / "final.json").exists() and config_json.exists():
        source = str(config_json)
        try:
            saved = json.loads(config_json.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise CheckpointError(
                f"{config_json} is not valid JSON ({error}): cannot tell whether the finished run "
                "has the command's settings; pass --overwrite to start the run again"
            ) from None
    else:
        return
    differ = settings_differences(saved, config, settings, legacy)
    if differ:
        raise CheckpointError(
            f"cannot resume {run_dir}: settings differ from {source} ({', '.join(differ)}); "
            "use --overwrite to start again or another --run-name"
        )


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------


class SimulatedKill(BaseException):
    """Raised by --halt-after: stop without saving anything, as a kill would (for tests)."""


@dataclass
class Meters:
    """Sums since the last training record; part of the checkpoint so resumed logs match."""

    loss_sum: float = 0.0
    correct: float = 0.0
    count: float = 0.0


class Trainer:
    def __init__(
        self,
        config: dict[str, Any],
        ctx: Context,
        train: CifarSplit,
        test: CifarSplit,
        progress: bool = True,
        train_labels: np.ndarray | None = None,
    ) -> None:
        """``train_labels``: the labels to train on instead of the noisy ones (label
        correction); the noisy ones are still drawn, to measure against."""
        self.config = config
        self.ctx = ctx
        self.progress = progress and ctx.is_main
        self.run_dir = Path(config["out_dir"]) / config["run_name"]
        self.device = ctx.device
        self.world = ctx.world_size
        if config["batch_size"] % self.world:
            raise ValueError(
                f"--batch-size {config['batch_size']} must be divisible by the number of "
                f"processes ({self.world})"
            )
        if len(train) < config["batch_size"]:
            raise ValueError(
                f"the training set has {len(train)} images, fewer than --batch-size "
                f"{config['batch_size']}"
            )
        amp = config["amp"]
        if amp == "fp16" and self.device.type != "cuda":
            raise ValueError("--amp fp16 needs a CUDA device; use --amp bf16 or --amp off")
        self.amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]

        # Labels: the paper's symmetric noise, drawn once from the noise seed.
        noise_rng = np.random.default_rng([config["noise_seed"], NOISE_STREAM])
        noisy = emphasis.symmetric_noise(
            train.labels, config["noise_rate"], train.num_classes, seed=noise_rng
        )
        self.realised_noise_rate = noisy.realised_rate
        self.train_images = torch.from_numpy(train.images).to(self.device)
        self.noise_labels = torch.from_numpy(noisy.labels).to(self.device)  # as drawn
        if train_labels is not None:
            if train_labels.shape != noisy.labels.shape:
                raise ValueError(
                    f"train_labels must have shape {noisy.labels.shape}, got {train_labels.shape}"
                )
            self.noisy_labels = torch.from_numpy(train_labels.astype(np.int64)).to(self.device)
        else:
            self.noisy_labels = self.noise_labels  # the labels trained on
        self.intact_labels = torch.from_numpy(train.labels).to(self.device)
        self.test_images = torch.from_numpy(test.images).to(self.device)
        self.test_labels = torch.from_numpy(test.labels).to(self.device)
        self.normalize: nn.Module
        if config["standardize"] == "image":
            self.normalize = PerImageStandardizer()
        else:
            mean, std = channel_stats(train.images)
            self.normalize = Normalizer(mean, std).to(self.device)

        # Model: the same initialisation on every rank (DDP also broadcasts it).
        torch.manual_seed(config["seed"])
        self.net: nn.Module
        if config["arch"] == "resnet":
            self.net = resnet_cifar(config["depth"], train.num_classes, config["dropout"])
        else:
            self.net = mentornet_inception.MentorNetInception(train.num_classes, config["dropout"])
        self.net = self.net.to(self.device)
        if ctx.distributed and config["sync_bn"]:
            if self.device.type != "cuda":
                raise ValueError("--sync-bn needs CUDA devices (SyncBatchNorm has no CPU kernel)")
            self.net = nn.SyncBatchNorm.convert_sync_batchnorm(self.net)
        self.memory_format = (
            torch.channels_last if config["channels_last"] else torch.contiguous_format
        )
        self.net = self.net.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        self.model: nn.Module = self.net
        if ctx.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.net, device_ids=ids)
        if config["compile"]:
            self.model = torch.compile(self.model)  # type: ignore[assignment]
        self.loss_fn = build_loss(config, ctx.distributed)
        self.optimizer = torch.optim.SGD(
            self.net.parameters(), lr=config["lr"], momentum=config["momentum"],
            weight_decay=config["weight_decay"],
        )  # fmt: skip
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=config["milestones"], gamma=0.1
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp == "fp16")
        self.iteration = 0
        self.last_lr = config["lr"]
        self.meters = Meters()
        self.best_test_acc = -1.0
        self.best_iteration = 0
        self.started = time.time()
        self.relabel: dict[str, Any] | None = None  # label correction's record (final.json)

    # -- state --------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "iteration": self.iteration,
            "config": {k: self.config[k] for k in RESULT_SETTINGS},
            "world_size": self.world,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_states(),
            "meters": vars(self.meters).copy(),
            "best": {"test_acc": self.best_test_acc, "iteration": self.best_iteration},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT}"
            )
        differ = settings_differences(
            state["config"], self.config, RESULT_SETTINGS, LEGACY_SETTINGS
        )
        if differ:
            raise CheckpointError(
                f"cannot resume {self.run_dir}: settings differ from the checkpoint "
                f"({', '.join(differ)}); use --overwrite to start again or another --run-name"
            )
        if state["world_size"] != self.world and self.ctx.is_main:
            print(
                f"warning: resuming a run of {state['world_size']} process(es) with {self.world}: "
                "the data order is the same, batch-norm statistics are per process",
                file=sys.stderr,
            )
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler.is_enabled() and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        set_rng_states(state["rng"])
        self.meters = Meters(**state["meters"])
        self.best_test_acc = state["best"]["test_acc"]
        self.best_iteration = state["best"]["iteration"]
        self.iteration = state["iteration"]

    def save_checkpoint(self) -> None:
        if self.ctx.is_main:
            state = self.state()
            atomic_write_bytes(self.run_dir / "checkpoint.pt", lambda f: torch.save(state, f))

    # -- logging ------------------------------------------------------------

    def log(self, record: dict[str, Any]) -> None:
        if not self.ctx.is_main:
            return
        with open(self.run_dir / "log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if not self.progress:
            print(json.dumps(record), flush=True)

    def truncate_log(self) -> None:
        """Drop records written after the checkpoint being resumed (they will be written
        again), so that the log of a resumed run equals that of an uninterrupted one."""
        path = self.run_dir / "log.jsonl"
        if not self.ctx.is_main or not path.exists():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the kill
                continue
            if record.get("event") != "final" and record["iteration"] <= self.iteration:
                kept.append(line + "\n")
        atomic_write_bytes(path, lambda f: f.write("".join(kept).encode()))

    # -- steps --------------------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def local_batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        size, rank = cfg["batch_size"], self.ctx.rank
        indices = global_batch(cfg["seed"], iteration, len(self.noisy_labels), size)
        rows, cols, flips = augmentation(cfg["seed"], iteration, size, cfg["pad"])
        part = slice(rank * size // self.world, (rank + 1) * size // self.world)
        # One host-to-device copy for the step's indices and augmentation.
        plan = np.stack([indices[part], rows[part], cols[part], flips[part]])
        index, r, c, f = torch.from_numpy(plan).to(self.device, non_blocking=True)
        images = crop_and_flip(self.train_images[index], r, c, f.bool(), cfg["pad"])
        x = self.normalize(images).contiguous(memory_format=self.memory_format)
        return x, self.noisy_labels[index]

    def train_step(self) -> None:
        x, y = self.local_batch(self.iteration)
        self.model.train()
        with self.autocast():
            logits = self.model(x)
        # The losses compute in float32 whatever the logits' dtype; cast for clarity.
        loss = self.loss_fn(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.last_lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
        self.scheduler.step()
        self.iteration += 1
        with torch.no_grad():
            self._loss_sum += loss.detach().float() * len(y)
            self._correct += (logits.argmax(1) == y).sum()
            self._count += len(y)

    def flush_meters(self) -> None:
        """Move the device-side sums into ``self.meters`` (one sync per call)."""
        self.meters.loss_sum += float(self._loss_sum)
        self.meters.correct += float(self._correct)
        self.meters.count += float(self._count)
        self._reset_device_meters()

    def _reset_device_meters(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._correct = torch.zeros((), device=self.device, dtype=torch.long)
        self._count = 0

    @torch.no_grad()
    def evaluate(self, images: torch.Tensor, *label_sets: torch.Tensor) -> list[float]:
        """Accuracy (%) of the model on ``images`` against each label set, sharded over ranks."""
        if self.ctx.distributed:  # all ranks use rank 0's batch-norm statistics
            for buffer in self.net.buffers():
                dist.broadcast(buffer, src=0)
        self.net.eval()
        correct = [0.0] * len(label_sets)
        own = torch.arange(self.ctx.rank, len(images), self.world, device=self.device)
        for start in range(0, len(own), self.config["eval_batch_size"]):
            index = own[start : start + self.config["eval_batch_size"]]
            x = self.normalize(images[index]).contiguous(memory_format=self.memory_format)
            with self.autocast():
                predicted = self.net(x).argmax(1)
            for i, labels in enumerate(label_sets):
                correct[i] += float((predicted == labels[index]).sum())
        totals = self.ctx.all_reduce_sum(correct)
        return [100.0 * c / len(images) for c in totals]

    def evaluate_test(self) -> float:
        (acc,) = self.evaluate(self.test_images, self.test_labels)
        if acc > self.best_test_acc:
            self.best_test_acc, self.best_iteration = acc, self.iteration
        return acc

    # -- the loop -----------------------------------------------------------

    def run(self, resume: bool, halt_after: int | None = None) -> dict[str, Any]:
        cfg = self.config
        checkpoint = self.run_dir / "checkpoint.pt"
        if resume and checkpoint.exists():
            self.load_state(load_checkpoint(checkpoint, self.device))
            if self.ctx.is_main:
                print(f"resumed {self.run_dir} at iteration {self.iteration}", file=sys.stderr)
        self.truncate_log()  # a fresh start (iteration 0) drops everything
        self.ctx.barrier()
        self._reset_device_meters()
        total = cfg["iterations"]
        bar = _progress_bar(self.iteration, total, cfg["run_name"]) if self.progress else None
        steps_this_call = 0
        while self.iteration < total:
            if halt_after is not None and steps_this_call >= halt_after:
                raise SimulatedKill(f"halted after {steps_this_call} iterations")
            self.train_step()
            steps_this_call += 1
            if bar is not None:
                bar.update(1)
            it = self.iteration
            if it % cfg["log_every"] == 0 or it == total:
                self.flush_meters()
                loss_sum, correct, count = self.ctx.all_reduce_sum(
                    [self.meters.loss_sum, self.meters.correct, self.meters.count]
                )
                record = {
                    "iteration": it,
                    "epoch": it * cfg["batch_size"] / len(self.noisy_labels),
                    "lr": self.last_lr,
                    "loss": loss_sum / count,
                    "train_acc_noisy": 100.0 * correct / count,
                }
                self.meters = Meters()
                if not math.isfinite(record["loss"]):
                    raise FloatingPointError(f"loss is {record['loss']} at iteration {it}")
                self.log(record)
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{record['loss']:.3f}", acc=f"{record['train_acc_noisy']:.1f}"
                    )
            if it % cfg["eval_every"] == 0 or it == total:
                acc = self.evaluate_test()
                self.log({"iteration": it, "test_acc": acc})
                if bar is not None:
                    bar.set_description(f"{cfg['run_name']} test {acc:.1f}%")
            if it % cfg["checkpoint_every"] == 0 or it == total:
                self.flush_meters()
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        test_acc = self.evaluate_test()
        # Fitting degrees (Table 9): accuracy on the examples whose drawn label is intact, and
        # on the flipped ones against their noisy label (-1: left out of a subset).
        flipped = self.noise_labels != self.intact_labels
        none = torch.full_like(self.intact_labels, -1)
        noisy_acc, intact_acc, clean_part, noisy_part = self.evaluate(
            self.train_images,
            self.noisy_labels,
            self.intact_labels,
            torch.where(flipped, none, self.intact_labels),
            torch.where(flipped, self.noise_labels, none),
        )
        n, n_flipped = len(self.intact_labels), int(flipped.sum())
        fit_clean = clean_part * n / (n - n_flipped) if n_flipped < n else None
        fit_noisy = noisy_part * n / n_flipped if n_flipped else None
        result = {
            "run_name": self.config["run_name"],
            "iterations": self.iteration,
            "test_acc_final": test_acc,
            "test_acc_best": self.best_test_acc,
            "best_iteration": self.best_iteration,
            "train_acc_noisy": noisy_acc,
            "train_acc_intact": intact_acc,
            "realised_noise_rate": self.realised_noise_rate,
            "fit_clean": fit_clean,
            "fit_noisy": fit_noisy,
        }
        if self.relabel is not None:
            result["relabel"] = {
                **self.relabel,
                "gain": test_acc - self.relabel["source_test_acc_final"],
            }
        self.log({"event": "final", **result})
        if self.ctx.is_main:
            save_json(self.run_dir / "final.json", result)
        self.ctx.barrier()
        return result


def _progress_bar(start: int, total: int, name: str) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: fall back to printed records
        return None
    return tqdm(total=total, initial=start, desc=name, unit="it", dynamic_ncols=True)


def prepare_run_dir(
    config: dict[str, Any],
    ctx: Context,
    settings: Sequence[str] = RESULT_SETTINGS,
    legacy: dict[str, Any] | None = LEGACY_SETTINGS,
) -> Path | None:
    """Create the run directory; None when a finished run is to be skipped.

    With --resume, a run whose saved settings differ from ``config`` in any of ``settings`` is
    refused (:func:`check_resumable`) before anything is written, finished or not.
    Every rank makes the same decisions (from the same files) before rank 0 changes anything,
    so that an error stops all ranks rather than leaving some waiting at a barrier.
    """
    run_dir = Path(config["out_dir"]) / config["run_name"]
    exists = (run_dir / "config.json").exists()
    if exists and not (config["resume"] or config["overwrite"]):
        raise FileExistsError(
            f"{run_dir} already exists: pass --resume to continue it (a finished run is "
            "skipped) or --overwrite to start again"
        )
    finished = (run_dir / "final.json").exists()
    if config["resume"] and not config["overwrite"]:
        check_resumable(run_dir, config, settings, legacy)
    ctx.barrier()
    if config["resume"] and not config["overwrite"] and finished:
        return None
    if ctx.is_main:
        if exists and config["overwrite"]:
            for name in ("config.json", "log.jsonl", "checkpoint.pt", "final.json", RELABEL_FILE):
                (run_dir / name).unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
    ctx.barrier()
    return run_dir


def train_one(
    config: dict[str, Any],
    ctx: Context,
    data: tuple[CifarSplit, CifarSplit],
    halt_after: int | None = None,
) -> dict[str, Any]:
    """Train (or resume, or skip) one run; returns its final results."""
    fingerprint = data_fingerprint(*data)
    source = None
    if config["relabel_from"] is not None:  # refused before anything is written
        source = check_relabel_source(Path(config["relabel_from"]), config, data, fingerprint)
    run_dir = prepare_run_dir(config, ctx)
    if run_dir is None:
        path = Path(config["out_dir"]) / config["run_name"] / "final.json"
        if ctx.is_main:
            print(f"{path.parent} is finished; skipped", file=sys.stderr)
        return json.loads(path.read_text())
    relabel = None
    if source is not None:
        relabel = relabelled_labels(config, ctx, data, *source, run_dir)
    trainer = Trainer(
        config,
        ctx,
        *data,
        progress=config["progress"],
        train_labels=None if relabel is None else relabel[0],
    )
    if relabel is not None:
        trainer.relabel = relabel[1]
    if ctx.is_main:
        meta = {
            **config,
            "world_size": ctx.world_size,
            "realised_noise_rate": trainer.realised_noise_rate,
            "train_size": len(data[0]),
            "test_size": len(data[1]),
            "data_sha256": fingerprint,
            "loss_module": repr(trainer.loss_fn),
            "torch_version": torch.__version__,
            "emphasis_version": emphasis.__version__,
        }
        save_json(run_dir / "config.json", meta)
    return trainer.run(resume=config["resume"], halt_after=halt_after)


# ---------------------------------------------------------------------------
# label correction (--relabel-from)
# ---------------------------------------------------------------------------

#: The corrected labels of a relabelled run, kept in its directory so that a resumed run trains
#: on exactly the labels it started with.
RELABEL_FILE = "relabel.npz"


def data_fingerprint(train: CifarSplit, test: CifarSplit) -> str:
    """SHA-256 of the images and labels of both splits (config.json's ``data_sha256``)."""
    digest = hashlib.sha256()
    for split in (train, test):
        digest.update(np.ascontiguousarray(split.images).tobytes())
        digest.update(np.ascontiguousarray(split.labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def check_relabel_source(
    source: Path, config: dict[str, Any], data: tuple[CifarSplit, CifarSplit], fingerprint: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The finished run ``source``'s (checkpoint state, final.json), or a CheckpointError naming
    the path: unfinished, other settings, other data, or itself a relabelled run."""
    final_path, checkpoint, config_path = (
        source / "final.json", source / "checkpoint.pt", source / "config.json"
    )  # fmt: skip
    if not source.is_dir():
        raise CheckpointError(f"--relabel-from: {source} is not a directory (a finished run)")
    for path in (final_path, checkpoint, config_path):
        if not path.exists():
            raise CheckpointError(
                f"--relabel-from: {source} is not a finished run: {path.name} is missing "
                "(finish it with --resume first)"
            )
    state = load_checkpoint(checkpoint, "cpu")
    final = json.loads(final_path.read_text(encoding="utf-8"))
    saved = state["config"]
    if state["iteration"] != saved["iterations"] or final.get("iterations") != state["iteration"]:
        raise CheckpointError(
            f"--relabel-from: {checkpoint} is at iteration {state['iteration']} of "
            f"{saved['iterations']}: the run is unfinished (finish it with --resume first)"
        )
    if saved.get("relabel_source") is not None:
        raise CheckpointError(
            f"--relabel-from: {source} is itself a relabelled run (from {saved['relabel_source']});"
            " relabel from the run it started from"
        )
    compared = [k for k in RESULT_SETTINGS if k not in RELABEL_SETTINGS]
    differ = settings_differences(saved, config, compared, LEGACY_SETTINGS)
    if differ:
        raise CheckpointError(
            f"--relabel-from: {source} was trained with other settings ({', '.join(differ)}); "
            "give the finished run's settings (the new run changes only the labels)"
        )
    meta = json.loads(config_path.read_text(encoding="utf-8"))
    train, test = data
    mismatch = [
        f"{key}: {meta[key]!r} -> {value!r}"
        for key, value in (
            ("train_size", len(train)),
            ("test_size", len(test)),
            ("data_sha256", fingerprint),
        )
        if key in meta and meta[key] != value
    ]
    if mismatch:
        raise CheckpointError(
            f"--relabel-from: {source} was trained on other data ({', '.join(mismatch)}, from "
            f"{config_path}); give the --data-dir and --dataset it was trained on"
        )
    return state, final


def relabelled_labels(
    config: dict[str, Any],
    ctx: Context,
    data: tuple[CifarSplit, CifarSplit],
    state: dict[str, Any],
    final: dict[str, Any],
    run_dir: Path,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The corrected training labels of a --relabel-from run and its record for final.json.

    A resumed run reads them back from its RELABEL_FILE; otherwise the finished run's final
    model scores the training set (see the module docstring) and the file is written."""
    source = Path(config["relabel_from"])
    train = data[0]
    saved = run_dir / RELABEL_FILE
    if config["resume"] and saved.exists():
        with np.load(saved) as arrays:
            labels, record = arrays["labels"], json.loads(str(arrays["record"]))
        return labels, record
    # A Trainer of the finished run's settings: its noisy labels, normaliser and network.
    scorer = Trainer(config, ctx, *data, progress=False)
    net = copy.deepcopy(scorer.net)
    net.load_state_dict(state["model"])
    net.eval()
    logits = []
    with torch.no_grad():
        for start in range(0, len(train), config["eval_batch_size"]):
            x = scorer.normalize(scorer.train_images[start : start + config["eval_batch_size"]])
            with scorer.autocast():
                logits.append(net(x.contiguous(memory_format=scorer.memory_format)).float())
    values = torch.cat(logits).double()
    if ctx.distributed:  # every rank relabels as rank 0 does
        dist.broadcast(values, src=0)
    noisy = scorer.noise_labels.cpu().numpy()
    intact = train.labels
    dynamics = emphasis.TrainingDynamics(len(train), train.num_classes)
    dynamics.update(np.arange(len(train)), values.cpu().numpy(), noisy)
    rate = config["relabel_rate"]
    rate_source = "--relabel-rate"
    if rate is None:
        rate, rate_source = emphasis.estimate_noise_rate(dynamics).rate, "estimate_noise_rate"
    flagged = emphasis.find_label_issues(dynamics, rate=rate)
    labels = noisy.copy()
    labels[flagged] = dynamics.suggested_labels()[flagged]
    flipped = noisy != intact
    record = {
        "from": str(source),
        "source_run": source.resolve().name,
        "source_test_acc_final": final["test_acc_final"],
        "source_test_acc_best": final["test_acc_best"],
        "scores": "minus the margin of the finished run's final model on the training images "
        "(emphasis.TrainingDynamics, one update)",
        "rate": float(rate),
        "rate_source": rate_source,
        "relabelled": int(flagged.size),
        "changed": int((labels != noisy).sum()),
        "relabelled_acc": 100.0 * float(np.mean(labels[flagged] == intact[flagged]))
        if flagged.size
        else None,
        "flagged_precision": 100.0 * float(np.mean(flipped[flagged])) if flagged.size else None,
        "noisy_label_acc": 100.0 * float(np.mean(noisy == intact)),
        "corrected_label_acc": 100.0 * float(np.mean(labels == intact)),
    }
    del scorer, net
    if ctx.is_main:
        atomic_write_bytes(
            saved,
            lambda f: np.savez(f, labels=labels, flagged=flagged, record=json.dumps(record)),
        )
    return labels, record


def configure_torch(config: dict[str, Any]) -> None:
    if config["deterministic"]:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    else:
        torch.backends.cudnn.benchmark = True


def iter_seeds(args: argparse.Namespace) -> Iterator[int]:
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    yield from range(args.seed, args.seed + args.repeats)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repeats > 1 and args.run_name is not None:
        raise SystemExit("--run-name names one run; leave it out with --repeats > 1")
    ctx = setup_context(args.device)
    try:
        data = load_cifar(args.data_dir, args.dataset)
        for seed in iter_seeds(args):
            config = resolve_config(args, seed)
            configure_torch(config)
            result = train_one(config, ctx, data, halt_after=args.halt_after)
            if ctx.is_main and config["progress"]:  # without the bar, log records are printed
                print(json.dumps(result), flush=True)
        ctx.barrier()  # every rank done with gloo/NCCL before any tears it down
    finally:
        if ctx.distributed and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
