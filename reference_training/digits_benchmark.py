"""CPU benchmark on real data that ships offline: scikit-learn's handwritten digits with label noise.

Trains a small MLP on the digits data set (1,797 8x8 images, 10 classes, bundled with scikit-learn,
no download) whose training labels are corrupted with the paper's symmetric noise
(:func:`emphasis.symmetric_noise`: with probability r a label is replaced by one of the *other*
classes), with each loss of ``emphasis_torch``:

* ``cce``         CCE (plain cross entropy, the baseline),
* ``mae``         MAE,
* ``gce``         GCE(q=0.7),
* ``gr-fixed``    GR(beta=8, lam=0.5): the paper's fixed setting (CIFAR-100, Table 5),
* ``gr-suggest``  GR with ``emphasis.suggest(r, 10)``: the paper's CIFAR-10 setting for noise rate r
  (Table 3; r=0: (2, 0), r=0.2: (12, 0.5), r=0.4: (16, 1), r=0.6: (12, 2)),
* ``gr:BETA,LAM[,EPS]`` any other GR setting, e.g. ``gr:16,1`` or ``gr:16,1,0`` (eps = 0, exact
  Eq. (6) without the authors' eps).

Protocol (Sec. 4.2 of the paper, scaled down): MLP 64-512-512-10 with ReLU; SGD, learning rate 0.1,
momentum 0.9, weight decay 1e-4, mini-batches of 128, 150 epochs, and the step schedule of the
authors' released solver: the learning rate is multiplied by 0.1 after half of training and again
after 22/30 of it (their 15k and 22k of 30k iterations). A fixed stratified split keeps 1/3 of the
images for testing; pixel intensities (0..16) are divided by 16.
The schedule matters for GR: its gradient does not fade on well-fitted examples (w(1) = 1), so at a
constant learning rate of 0.1 the clean and the noisy examples keep pulling with full force and GR's
test accuracy swings from epoch to epoch (from about 85% to 95% at 40% noise with batches of 512;
with batches of 128 one seed in ten ended at 61%), which makes its final figure a draw from that
swing.
``--lr-drops`` with no value keeps the rate constant.
Each seed fixes the noisy labels, the initial weights and the order of the mini-batches; all losses
of one seed share them, so that the losses are compared on the same noise. As in the paper's Table 3
the script reports the best and the final test accuracy and the accuracy on the noisy and on the
intact training labels (the intact labels act as a validation set).

All models of one noise rate train together as one stacked ("batched") network: each model has its
own weights, its own loss and its own mini-batches, and SGD with momentum and weight decay acts on
each slice of the stacked weights exactly as on a separate model. On a CPU one batched matrix product
for 15 models ran here 2-3 times faster than 15 separate products, and the Python overhead of a
step is paid once.

Outputs in ``--out`` (default ``reference_training/runs/digits``):

* ``results.csv``  one row per noise rate x loss x seed: final and best test accuracy, accuracy on
  the noisy and on the intact training labels, and more;
* ``curves.csv``   the same accuracies after every epoch;
* ``summary.md``   mean ± standard deviation over the seeds, rows = losses, columns = noise rates;
* ``curves.png``   learning curves like the paper's Figure 2 (needs matplotlib).

Usage::

    python reference_training/digits_benchmark.py             # the full benchmark
    python reference_training/digits_benchmark.py --quick     # a few seconds, to check the set-up
    python reference_training/digits_benchmark.py --rates 0.4 --losses cce gr:16,1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import emphasis

# OpenMP threads that spin after each parallel matrix product steal the core that the many small
# operations between products need: on a busy 2-core machine a passive wait made a training step
# about 3 times faster here. Read once, when torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

NUM_CLASSES = 10
PIXEL_MAX = 16.0
HIDDEN = (512, 512)
DEFAULT_RATES = (0.0, 0.2, 0.4, 0.6)
DEFAULT_LOSSES = ("cce", "mae", "gce", "gr-fixed", "gr-suggest")
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
DEFAULT_EPOCHS = 150
DEFAULT_BATCH_SIZE = 128
#: The authors' released CIFAR-100 solver: lr x0.1 after 15k and after 22k of 30k iterations.
DEFAULT_LR_DROPS = (15 / 30, 22 / 30)
DEFAULT_OUT = Path(__file__).resolve().parent / "runs" / "digits"
#: ``--quick``: a run of a few seconds that exercises every output.
QUICK = {
    "rates": [0.0, 0.4],
    "losses": ["cce", "gr-suggest"],
    "seeds": [0],
    "epochs": 4,
    "lr_drops": [],
}
#: The paper's fixed setting (CIFAR-100, Table 5) and GCE's q as in Zhang & Sabuncu (2018).
GR_FIXED = (8.0, 0.5)
GCE_Q = 0.7
#: Offsets that make the noise, the initial weights and the batch order independent streams of a seed.
NOISE_STREAM, ORDER_STREAM = 1, 2
LR_DROP_FACTOR = 0.1

LOSS_HELP = {
    "cce": "categorical cross entropy",
    "mae": "mean absolute error",
    "gce": f"generalised cross entropy, q={GCE_Q}",
    "gr-fixed": f"GR(beta={GR_FIXED[0]:g}, lam={GR_FIXED[1]:g}), the paper's fixed setting",
    "gr-suggest": "GR with emphasis.suggest(rate, 10), the paper's setting for each noise rate",
    "gr:BETA,LAM[,EPS]": "GR with the given beta, lam and optionally eps, e.g. gr:16,1 or gr:16,1,0",
}


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LossSetting:
    """One loss at one noise rate: its name, its table label and, for GR, beta and lam."""

    key: str
    label: str
    beta: float | None = None
    lam: float | None = None
    eps: float | None = None  # None: GR's default
    q: float | None = None  # GCE's q; None: GCE_Q

    def build(self) -> Any:
        """The ``emphasis_torch`` loss module (used like ``nn.CrossEntropyLoss``)."""
        import emphasis_torch

        if self.key == "cce":
            return emphasis_torch.CCELoss()
        if self.key == "mae":
            return emphasis_torch.MAELoss()
        if self.key == "gce" or self.q is not None:
            return emphasis_torch.GCELoss(q=GCE_Q if self.q is None else self.q)
        if self.eps is None:
            return emphasis_torch.GRLoss(beta=self.beta, lam=self.lam)
        return emphasis_torch.GRLoss(beta=self.beta, lam=self.lam, eps=self.eps)


def check_loss_key(key: str) -> str:
    """argparse type of ``--losses``: a known name or ``gr:BETA,LAM[,EPS]``."""
    if key in LOSS_HELP and key != "gr:BETA,LAM[,EPS]":
        return key
    if key.startswith("gr:"):
        try:
            numbers = _gr_numbers(key)
        except ValueError:
            raise argparse.ArgumentTypeError(
                "--losses: expected gr:BETA,LAM or gr:BETA,LAM,EPS with numbers (e.g. gr:16,1), "
                f"got {key!r}"
            ) from None
        try:
            beta, lam, *eps = numbers
            emphasis.GR(beta=beta, lam=lam, eps=eps[0] if eps else 1e-6)  # the core's checks
        except (TypeError, ValueError) as error:
            raise argparse.ArgumentTypeError(f"--losses {key}: {error}") from None
        return key
    names = ", ".join(LOSS_HELP)
    raise argparse.ArgumentTypeError(f"--losses: unknown loss {key!r}; expected one of {names}")


def loss_setting(key: str, rate: float) -> LossSetting:
    """Resolve a ``--losses`` name at a noise rate (``gr-suggest`` depends on the rate)."""
    if key == "cce":
        return LossSetting(key, "CCE")
    if key == "mae":
        return LossSetting(key, "MAE")
    if key == "gce":
        return LossSetting(key, f"GCE (q={GCE_Q:g})")
    if key == "gr-fixed":
        beta, lam = GR_FIXED
        return LossSetting(key, f"GR fixed (β={beta:g}, λ={lam:g})", beta, lam)
    if key == "gr-suggest":
        beta, lam = emphasis.suggest(rate, NUM_CLASSES)
        return LossSetting(key, "GR suggest(r, 10)", beta, lam)
    beta, lam, *eps = _gr_numbers(key)
    if not eps:
        return LossSetting(key, f"GR (β={beta:g}, λ={lam:g})", beta, lam)
    return LossSetting(key, f"GR (β={beta:g}, λ={lam:g}, eps={eps[0]:g})", beta, lam, eps[0])


def _gr_numbers(key: str) -> tuple[float, ...]:
    """'gr:16,1' -> (16.0, 1.0); 'gr:16,1,0' -> (16.0, 1.0, 0.0); ValueError otherwise."""
    numbers = tuple(float(v) for v in key[3:].split(","))
    if len(numbers) not in (2, 3):
        raise ValueError(key)
    return numbers


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Digits:
    x_train: Any  # torch (N, 64) float32 in [0, 1]
    y_train: Any  # torch (N,) int64, the intact labels
    x_test: Any
    y_test: Any


def load_digits(test_fraction: float = 1 / 3, split_seed: int = 0) -> Digits:
    """scikit-learn's digits, split stratified with a fixed seed; pixels scaled to [0, 1].

    The pixels are intensities 0..16; dividing by 16 keeps their common scale. (Standardising
    each pixel instead made GR(16, 1) unstable at 40% noise here: its test accuracy peaked near
    85% and collapsed after about 20 epochs.)
    """
    import torch
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    x, y = sklearn_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=split_seed
    )

    def features(a: np.ndarray) -> Any:
        return torch.as_tensor(a / PIXEL_MAX, dtype=torch.float32)

    def labels(a: np.ndarray) -> Any:
        return torch.as_tensor(a, dtype=torch.int64)

    return Digits(features(x_train), labels(y_train), features(x_test), labels(y_test))


def noisy_labels(clean: np.ndarray, rate: float, seed: int) -> emphasis.NoisyLabels:
    """The paper's symmetric noise; the same labels for every loss of a (rate, seed)."""
    rng = np.random.default_rng([seed, NOISE_STREAM, round(rate * 1_000_000)])
    return emphasis.symmetric_noise(clean, rate, NUM_CLASSES, seed=rng)


# ---------------------------------------------------------------------------
# model: K independent MLPs in stacked weights
# ---------------------------------------------------------------------------


def make_ensemble(seeds: Sequence[int], sizes: Sequence[int]) -> Any:
    """K = len(seeds) independent MLPs as one module whose weights have a leading model axis.

    Model k is initialised like ``nn.Linear`` (uniform in ±1/sqrt(fan_in)) from ``seeds[k]``
    alone, so two models with the same seed start from the same weights whatever else is
    stacked with them.
    """
    import torch
    from torch import nn

    class StackedMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = nn.ParameterList()
            self.biases = nn.ParameterList()
            for fan_in, fan_out in itertools.pairwise(sizes):
                self.weights.append(nn.Parameter(torch.empty(len(seeds), fan_in, fan_out)))
                self.biases.append(nn.Parameter(torch.empty(len(seeds), 1, fan_out)))
            with torch.no_grad():
                for k, seed in enumerate(seeds):
                    generator = torch.Generator().manual_seed(int(seed))
                    for w, b in zip(self.weights, self.biases, strict=True):
                        bound = 1.0 / math.sqrt(w.shape[1])
                        w[k].uniform_(-bound, bound, generator=generator)
                        b[k].uniform_(-bound, bound, generator=generator)

        def forward(self, x: Any) -> Any:
            """x: (K, B, in) (one batch per model) or (B, in) (shared) -> logits (K, B, classes)."""
            last = len(self.weights) - 1
            for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
                x = torch.matmul(x, w) + b
                if i < last:
                    x = torch.relu(x)
            return x

    return StackedMLP()


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One model: a loss setting at a noise rate with a seed."""

    rate: float
    setting: LossSetting
    seed: int


@dataclass
class Config:
    rates: list[float]
    losses: list[str]
    seeds: list[int]
    epochs: int
    batch_size: int
    lr: float
    lr_drops: list[float]
    momentum: float
    weight_decay: float
    threads: int
    out: Path
    progress: bool


def train_runs(
    runs: Sequence[Run], config: Config, data: Digits, desc: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train the given runs together as one stacked network; return (results rows, curve rows).

    The curves hold the test accuracy after every epoch and the *running* accuracy on the noisy
    and on the intact training labels over the epoch's mini-batches (free: it reuses the training
    forward passes). The final accuracies on the training labels come from a full pass at the end.
    """
    import torch
    from tqdm.auto import tqdm

    k_models = len(runs)
    clean = data.y_train.numpy()
    n_train = len(clean)

    noise = {(r.rate, r.seed): noisy_labels(clean, r.rate, r.seed) for r in runs}
    targets = torch.stack([torch.as_tensor(noise[r.rate, r.seed].labels) for r in runs])  # (K, N)
    flipped = torch.stack([torch.as_tensor(noise[r.rate, r.seed].flipped) for r in runs])
    seeds = sorted({r.seed for r in runs})
    orders = {seed: np.random.default_rng([seed, ORDER_STREAM]) for seed in seeds}

    model = make_ensemble([r.seed for r in runs], (data.x_train.shape[1], *HIDDEN, NUM_CLASSES))
    loss_fns = [r.setting.build() for r in runs]
    optimiser = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )

    curves: list[dict[str, Any]] = []
    best_test = torch.full((k_models,), -1.0)
    best_epoch = torch.zeros(k_models, dtype=torch.int64)
    diverged_at: list[int | None] = [None] * k_models
    bar = tqdm(
        range(1, config.epochs + 1),
        desc=desc,
        unit="epoch",
        disable=not config.progress,
        dynamic_ncols=True,
    )
    for epoch in bar:
        lr = learning_rate(config, epoch)
        for group in optimiser.param_groups:
            group["lr"] = lr
        model.train()
        permutation = {s: torch.as_tensor(g.permutation(n_train)) for s, g in orders.items()}
        order = torch.stack([permutation[r.seed] for r in runs])  # (K, N)
        loss_sum = torch.zeros(k_models)
        hits_noisy = torch.zeros(k_models)
        hits_intact = torch.zeros(k_models)
        for start in range(0, n_train, config.batch_size):
            index = order[:, start : start + config.batch_size]  # (K, B)
            logits = model(data.x_train[index])  # (K, B, C)
            batch_targets = torch.gather(targets, 1, index)
            with torch.no_grad():
                predicted = logits.argmax(-1)
                hits_noisy += (predicted == batch_targets).sum(1)
                hits_intact += (predicted == data.y_train[index]).sum(1)
                finite = torch.isfinite(logits).all(dim=(1, 2)).tolist()
            losses = []
            for k, ok in enumerate(finite):
                if not ok and diverged_at[k] is None:
                    # The loss would raise on non-finite logits: this model stops training and
                    # keeps being evaluated, so that its accuracy shows the collapse.
                    diverged_at[k] = epoch
                if diverged_at[k] is None:
                    losses.append(loss_fns[k](logits[k], batch_targets[k]))
                    loss_sum[k] += losses[-1].detach() * index.shape[1]
            optimiser.zero_grad(set_to_none=True)
            if losses:
                torch.stack(losses).sum().backward()
                optimiser.step()

        model.eval()
        with torch.no_grad():
            test_acc = (model(data.x_test).argmax(-1) == data.y_test).float().mean(1)
        improved = test_acc > best_test
        best_test = torch.where(improved, test_acc, best_test)
        best_epoch = torch.where(improved, torch.full_like(best_epoch, epoch), best_epoch)
        for k, run in enumerate(runs):
            curves.append(
                {
                    "rate": run.rate,
                    "loss": run.setting.key,
                    "seed": run.seed,
                    "epoch": epoch,
                    "train_loss": float(loss_sum[k]) / n_train,
                    "test_acc": float(test_acc[k]),
                    "running_noisy_train_acc": float(hits_noisy[k]) / n_train,
                    "running_intact_train_acc": float(hits_intact[k]) / n_train,
                }
            )
        bar.set_postfix_str(_postfix(runs, test_acc), refresh=False)
    bar.close()

    with torch.no_grad():
        train_pred = model(data.x_train).argmax(-1)  # (K, N)
    fits_noisy = train_pred == targets
    noisy_acc = fits_noisy.float().mean(1)
    intact_acc = (train_pred == data.y_train).float().mean(1)
    # Share of the flipped examples predicted as their wrong label: how much noise was memorised.
    flipped_fit = (fits_noisy & flipped).sum(1) / flipped.sum(1).clamp(min=1)
    results = []
    for k, run in enumerate(runs):
        results.append(
            {
                "rate": run.rate,
                "loss": run.setting.key,
                "label": run.setting.label,
                "beta": "" if run.setting.beta is None else run.setting.beta,
                "lam": "" if run.setting.lam is None else run.setting.lam,
                "seed": run.seed,
                "realised_rate": noise[run.rate, run.seed].realised_rate,
                "final_test_acc": float(test_acc[k]),
                "best_test_acc": float(best_test[k]),
                "best_epoch": int(best_epoch[k]),
                "noisy_train_acc": float(noisy_acc[k]),
                "intact_train_acc": float(intact_acc[k]),
                "flipped_fit": float(flipped_fit[k]),
                "diverged_epoch": "" if diverged_at[k] is None else diverged_at[k],
            }
        )
    return results, curves


def learning_rate(config: Config, epoch: int) -> float:
    """The step schedule: ``config.lr`` times 0.1 for each drop at or before ``epoch`` (1-based).

    A drop at fraction f of training takes effect from epoch ``round(f * epochs) + 1``.
    """
    drops = sum(1 for f in config.lr_drops if epoch > round(f * config.epochs))
    return config.lr * LR_DROP_FACTOR**drops


def _schedule_words(config: Config) -> str:
    """' x0.1 after epochs 75 and 110', read off ``learning_rate``; ' (constant)' without drops."""
    rates = [learning_rate(config, epoch) for epoch in range(1, config.epochs + 1)]
    epochs = [epoch for epoch in range(1, config.epochs) if rates[epoch] < rates[epoch - 1]]
    if not epochs:
        return " (constant)"
    listed = ", ".join(str(e) for e in epochs[:-1])
    listed = f"{listed} and {epochs[-1]}" if listed else str(epochs[-1])
    return f" x{LR_DROP_FACTOR:g} after epoch{'s' if len(epochs) > 1 else ''} {listed}"


def _postfix(runs: Sequence[Run], test_acc: Any) -> str:
    """'cce 0.724 | gr-suggest 0.951 ...': mean test accuracy of each loss over its runs."""
    accs: dict[str, list[float]] = {}
    for k, run in enumerate(runs):
        accs.setdefault(run.setting.key, []).append(float(test_acc[k]))
    return " | ".join(f"{key} {np.mean(a):.3f}" for key, a in accs.items())


# ---------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def mean_std(values: Sequence[float]) -> str:
    """'72.4 ± 1.3' in percent; the sample standard deviation over the seeds (0 for one seed)."""
    a = 100.0 * np.asarray(values, dtype=np.float64)
    std = float(np.std(a, ddof=1)) if a.size > 1 else 0.0
    mean = round(float(np.mean(a)), 1) + 0.0  # + 0.0: no "-0.0"
    return f"{mean:.1f} ± {std:.1f}"


def summary_markdown(
    results: Sequence[dict[str, Any]], config: Config, command: str, wall_s: float, data: Digits
) -> str:
    rates = config.rates
    keys = list(dict.fromkeys(row["loss"] for row in results))
    label = {row["loss"]: row["label"] for row in results}
    header = "| loss | " + " | ".join(f"r = {r:.0%}" for r in rates) + " |"
    rule = "|---|" + "---:|" * len(rates)

    def table(column: str) -> list[str]:
        lines = [header, rule]
        for key in keys:
            cells = []
            for rate in rates:
                values = [
                    row[column] for row in results if row["loss"] == key and row["rate"] == rate
                ]
                cells.append(mean_std(values) if values else "")
            lines.append(f"| {label[key]} | " + " | ".join(cells) + " |")
        return lines

    n_seeds = len(config.seeds)
    seeds = ", ".join(str(s) for s in config.seeds)
    minutes = wall_s / 60.0
    sizes = "-".join(str(n) for n in (data.x_train.shape[1], *HIDDEN, NUM_CLASSES))
    lines = [
        "# Digits benchmark: symmetric label noise",
        "",
        f"Command: `{command}`  ",
        f"Wall time: {minutes:.1f} min ({wall_s:.0f} s) with {config.threads} torch threads "
        f"({platform.processor() or platform.machine()}, torch {_torch_version()}).",
        "",
        f"scikit-learn digits: {len(data.y_train)} training and {len(data.y_test)} test images "
        "(stratified split, fixed seed), pixels scaled to [0, 1]. Training labels corrupted with "
        "`emphasis.symmetric_noise` (a label moves to one of the other classes with probability r). "
        f"MLP {sizes} (ReLU), SGD lr {config.lr:g}{_schedule_words(config)}, momentum "
        f"{config.momentum:g}, weight decay {config.weight_decay:g}, batch {config.batch_size}, "
        f"{config.epochs} epochs. "
        f"Mean ± sample standard deviation over {n_seeds} seed{'s' if n_seeds > 1 else ''} "
        f"({seeds}); a seed fixes the noisy labels, the initial weights and the batch order, "
        "shared by all losses.",
        "",
    ]
    suggested = [
        f"r = {r:.0%}: (β={row['beta']:g}, λ={row['lam']:g})"
        for r in rates
        for row in results
        if row["loss"] == "gr-suggest" and row["rate"] == r and row["seed"] == config.seeds[0]
    ]
    if suggested:
        lines += [
            "GR suggest(r, 10) = `emphasis.suggest(r, 10)`: " + "; ".join(suggested) + ".",
            "",
        ]
    sections = [
        ("Final test accuracy (%)", "final_test_acc"),
        ("Best test accuracy during training (%)", "best_test_acc"),
        ("Accuracy on the noisy training labels, final epoch (%)", "noisy_train_acc"),
        ("Accuracy on the intact training labels, final epoch (%)", "intact_train_acc"),
    ]
    for title, column in sections:
        lines += [f"## {title}", "", *table(column), ""]
    if "cce" in keys and len(keys) > 1:
        lines += [
            "## Gain over CCE in final test accuracy (points, paired by seed)",
            "",
            "Mean ± standard deviation of (loss - CCE) over the seeds, each difference taken on "
            "the same noisy labels, initial weights and batch order; [min, max] beside it.",
            "",
            header,
            rule,
        ]
        for key in keys:
            if key == "cce":
                continue
            cells = [_paired_gain(results, key, rate) for rate in rates]
            lines.append(f"| {label[key]} | " + " | ".join(cells) + " |")
        lines.append("")
    diverged = [row for row in results if row["diverged_epoch"] != ""]
    if diverged:
        lines += [
            "Diverged (non-finite logits; training stopped): "
            + ", ".join(
                f"{row['label']} r={row['rate']:.0%} seed {row['seed']} at epoch "
                f"{row['diverged_epoch']}"
                for row in diverged
            ),
            "",
        ]
    return "\n".join(lines)


def _paired_gain(results: Sequence[dict[str, Any]], key: str, rate: float) -> str:
    """'22.2 ± 2.6 [19.0, 26.8]': final test accuracy of ``key`` minus CCE's, seed by seed."""
    final = {
        (row["loss"], row["seed"]): row["final_test_acc"] for row in results if row["rate"] == rate
    }
    gains = [
        final[key, seed] - final["cce", seed]
        for (loss, seed) in final
        if loss == key and ("cce", seed) in final
    ]
    if not gains:
        return ""
    points = 100.0 * np.asarray(gains, dtype=np.float64)
    return f"{mean_std(gains)} [{points.min():.1f}, {points.max():.1f}]"


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def plot_curves(path: Path, curves: Sequence[dict[str, Any]], config: Config) -> bool:
    """Figure 2 style: test accuracy (top) and accuracy on the noisy training labels (bottom)
    against the epoch, one column per noise rate; mean over seeds, band = min..max."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False

    rates = config.rates
    keys = list(dict.fromkeys(row["loss"] for row in curves))
    fig, axes = plt.subplots(
        2,
        len(rates),
        figsize=(max(3.6 * len(rates) + 1, 8.5), 6.4),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    rows = (
        ("test_acc", "test accuracy"),
        ("running_noisy_train_acc", "accuracy on noisy train labels\n(running, during the epoch)"),
    )
    for col, rate in enumerate(rates):
        for row, (column, ylabel) in enumerate(rows):
            ax = axes[row][col]
            for i, key in enumerate(keys):
                sel = [c for c in curves if c["rate"] == rate and c["loss"] == key]
                if not sel:
                    continue
                epochs = sorted({c["epoch"] for c in sel})
                values = np.array(
                    [[c[column] for c in sel if c["epoch"] == e] for e in epochs], dtype=float
                )
                color = f"C{i}"
                label = loss_setting(key, rate).label
                ax.plot(epochs, values.mean(1), color=color, label=label)
                ax.fill_between(epochs, values.min(1), values.max(1), color=color, alpha=0.2)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(_panel_title(rate, keys))
            else:
                ax.set_xlabel("epoch")
            if col == 0:
                ax.set_ylabel(ylabel)
            if row == 0 and col == len(rates) - 1:
                ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(
        "scikit-learn digits with symmetric label noise: mean over "
        f"{len(config.seeds)} seed(s), band = min..max"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _panel_title(rate: float, keys: Sequence[str]) -> str:
    if "gr-suggest" not in keys:
        return f"r = {rate:.0%}"
    setting = loss_setting("gr-suggest", rate)
    return f"r = {rate:.0%} (suggest: β={setting.beta:g}, λ={setting.lam:g})"


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def check_seeds(parser: argparse.ArgumentParser, seeds: Sequence[int]) -> None:
    """Refuse ``--seeds`` with repeats or negative values (a seed names a run)."""
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        parser.error(f"--seeds: expected distinct non-negative integers, got {list(seeds)}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Train an MLP on scikit-learn's digits with symmetric label noise using CCE, MAE, GCE "
            "and GR (emphasis_torch); write results.csv, curves.csv, summary.md and curves.png."
        ),
        epilog="losses: " + "; ".join(f"{k}: {v}" for k, v in LOSS_HELP.items()),
    )
    parser.add_argument(
        "--rates",
        type=_rate,
        nargs="+",
        default=list(DEFAULT_RATES),
        help="symmetric noise rates in [0, 1) (default: 0 0.2 0.4 0.6)",
    )
    parser.add_argument(
        "--losses",
        type=check_loss_key,
        nargs="+",
        default=list(DEFAULT_LOSSES),
        help="losses to train (default: " + " ".join(DEFAULT_LOSSES) + "; see below)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=list(DEFAULT_SEEDS),
        help="seeds (default: 0 1 2 3 4)",
    )
    parser.add_argument(
        "--epochs", type=_positive_int, default=DEFAULT_EPOCHS, help="epochs (default: 150)"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"(default: {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate (default: 0.1)")
    parser.add_argument(
        "--lr-drops",
        type=float,
        nargs="*",
        default=list(DEFAULT_LR_DROPS),
        metavar="FRACTION",
        help="fractions of training after which the learning rate is multiplied by 0.1 "
        "(default: 0.5 0.733, the authors' released schedule; none: constant)",
    )
    parser.add_argument("--momentum", type=float, default=0.9, help="(default: 0.9)")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="(default: 1e-4)")
    parser.add_argument(
        "--threads", type=_positive_int, default=2, help="torch CPU threads (default: 2)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output directory (default: reference_training/runs/digits)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few seconds' run to check the set-up: rates 0 0.4, losses cce gr-suggest, "
        "seed 0, 4 epochs of batches of 128 (explicit options still win)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.quick:
        given = set(argv if argv is not None else sys.argv[1:])
        for name, value in QUICK.items():
            if f"--{name.replace('_', '-')}" not in given:
                setattr(args, name, value)
    check_seeds(parser, args.seeds)
    if any(not 0.0 < f < 1.0 for f in args.lr_drops):
        parser.error(f"--lr-drops: expected fractions of training in (0, 1), got {args.lr_drops}")
    args.rates = sorted(set(args.rates))
    args.losses = list(dict.fromkeys(args.losses))
    return args


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a noise rate in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a noise rate in [0, 1), got {value!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print('digits_benchmark needs PyTorch: pip install "emphasis[torch]"', file=sys.stderr)
        return 1
    try:
        import sklearn  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError as error:
        print(f"digits_benchmark needs {error.name}: pip install {error.name}", file=sys.stderr)
        return 1

    config = Config(
        rates=args.rates,
        losses=args.losses,
        seeds=args.seeds,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_drops=args.lr_drops,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        threads=args.threads,
        out=args.out,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    torch.set_num_threads(config.threads)
    # Well-fitted examples drive exp() into subnormal numbers, which are many times slower on a
    # CPU; flushing them to zero changes nothing measurable.
    torch.set_flush_denormal(True)
    try:
        return run_benchmark(config, argv)
    finally:
        torch.set_flush_denormal(False)  # a process-wide CPU flag: do not leave it set


def run_benchmark(config: Config, argv: Sequence[str] | None) -> int:
    """Train every run of ``config``, write the CSVs, summary and curves; return 0."""
    config.out.mkdir(parents=True, exist_ok=True)
    words = ["python", "reference_training/digits_benchmark.py"]
    command = shlex.join(words + list(argv if argv is not None else sys.argv[1:]))

    start = time.perf_counter()
    data = load_digits()
    results: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    n_models = len(config.losses) * len(config.seeds)
    print(
        f"digits: {len(data.y_train)} train / {len(data.y_test)} test; "
        f"{len(config.rates)} noise rates x {n_models} models, {config.epochs} epochs, "
        f"{config.threads} threads -> {config.out}",
        flush=True,
    )
    for i, rate in enumerate(config.rates):
        runs = [
            Run(rate, loss_setting(key, rate), seed)
            for key in config.losses
            for seed in config.seeds
        ]
        desc = f"[{i + 1}/{len(config.rates)}] r = {rate:.0%}, {len(runs)} models"
        rate_results, rate_curves = train_runs(runs, config, data, desc)
        results += rate_results
        curves += rate_curves
        by_loss: dict[str, list[float]] = {}
        for row in rate_results:
            by_loss.setdefault(row["label"], []).append(row["final_test_acc"])
        report = ", ".join(f"{name} {mean_std(v)}" for name, v in by_loss.items())
        elapsed = time.perf_counter() - start
        print(f"r = {rate:.0%} ({elapsed:.0f} s): final test accuracy (%) {report}", flush=True)
        # Written after every rate, so an interrupted run keeps what it finished.
        write_csv(config.out / "results.csv", results)
        write_csv(config.out / "curves.csv", curves)
    wall_s = time.perf_counter() - start

    summary = summary_markdown(results, config, command, wall_s, data)
    (config.out / "summary.md").write_text(summary + "\n", encoding="utf-8")
    plotted = plot_curves(config.out / "curves.png", curves, config)
    print()
    print(summary)
    written = ["results.csv", "curves.csv", "summary.md"] + (["curves.png"] if plotted else [])
    print(f"wrote {', '.join(str(config.out / name) for name in written)} in {wall_s:.0f} s")
    if not plotted:
        print("curves.png skipped: matplotlib is not installed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
