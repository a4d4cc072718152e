"""Choose GR's beta and lam from noisy labels alone, on scikit-learn's digits.

The paper chose beta and lam on a validation set (Sec. 4.2.1); a user has only noisy labels.
This script holds out a *noisy* validation split (its labels are as noisy as the training
labels; the clean labels are never used to choose), trains every candidate on the rest, and
chooses with :func:`emphasis.select_setting`:

* GR over :func:`emphasis.candidate_settings` (the paper's CIFAR-10 grid of Figures 7-10,
  16 settings, ordered around ``suggest(r, 10)``, which breaks ties), with r the true rate or
  the rate estimated from a CCE warm-up (:func:`emphasis.estimate_noise_rate`, the first
  ``--warmup-epochs`` epochs of the CCE model on the training part);
* GCE over ``--gce-q`` (q = 0.7 first, then by distance to it);
* CCE (only its stopping epoch is chosen).

Each is scored two ways: trained to the end (chosen on the final noisy-validation accuracy),
and stopped early (each model's best noisy-validation epoch; chosen on that accuracy). Beside
them: ``suggest(r, 10)`` and ``suggest(estimated r, 10)`` without any choice, and the *best grid
setting by test accuracy* (one setting per noise setting, best mean over the seeds): an oracle
nobody has, the yardstick. The goal: the noisy-validation pick within 2 points of the oracle and
above CCE at every noise setting.

Protocol: digits_benchmark's (MLP 64-512-512-10, SGD lr 0.1 x0.1 after half and 22/30 of
training, momentum 0.9, weight decay 1e-4, batch 128, 150 epochs) and label_issues' noise (the
same symmetric labels as digits_benchmark for a seed; pair noise k -> k + 1). From the 1,198
training images a stratified (by noisy label) ``--val-fraction`` is held out per seed; the 599
test images are only ever used to report. All models of one noise setting (seeds x candidates)
train together as one stacked network.

Outputs in ``--out`` (default ``reference_training/runs/choose_settings``):

* ``curves/<kind>-<rate>.npz``  every model's accuracy after every epoch on the noisy and the
  intact validation labels and on the test set, and the rate estimates (what the report is
  computed from: ``--report-from`` recomputes it without training);
* ``results.csv``  one row per noise setting x seed x method x regime (the choice, its epoch,
  its validation and test accuracy);
* ``summary.md``  the tables and the goal check.

Usage::

    python -m reference_training.choose_settings --threads 2      # the full run (~40 min)
    python -m reference_training.choose_settings --quick          # seconds, to check the set-up
    python -m reference_training.choose_settings --report-from reference_training/results/choose_settings
"""

from __future__ import annotations

import argparse
import math
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
from reference_training import digits_benchmark as digits
from reference_training import label_issues

NUM_CLASSES = digits.NUM_CLASSES
DEFAULT_OUT = label_issues.ROOT / "reference_training" / "runs" / "choose_settings"
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_GCE_QS = (0.1, 0.3, 0.5, 0.7, 0.9)
#: The stream of a seed that draws its validation split (beside label_issues' 1-4).
VAL_STREAM = 5
#: The goal of the issue: the pick within this many points of the best grid setting.
GOAL_POINTS = 2.0
QUICK = {
    "noise": ["symmetric:0.4"],
    "seeds": [0],
    "epochs": 4,
    "warmup_epochs": 2,
    "train_size": 400,
}
REGIMES = ("final", "stopped")
REGIME_WORDS = {
    "final": "trained to the end (final epoch)",
    "stopped": "stopped at the best noisy-validation epoch",
}
#: Methods in table order: key -> label.
METHODS = {
    "cce": "CCE",
    "gce-default": f"GCE (q={digits.GCE_Q:g})",
    "gce-pick": "GCE, q picked on noisy val.",
    "gr-suggest": "GR, suggest(true r)",
    "gr-suggest-est": "GR, suggest(estimated r)",
    "gr-pick": "GR, picked on noisy val. (ties: suggest(true r))",
    "gr-pick-est": "GR, picked on noisy val. (ties: suggest(estimated r))",
    "gr-pick-se": "GR, picked within one standard error (ties: suggest(true r))",
    "gr-oracle": "GR, best grid setting by test accuracy (oracle)",
}


# ---------------------------------------------------------------------------
# candidates
# ---------------------------------------------------------------------------


def gr_key(setting: tuple[float, float]) -> str:
    return f"gr:{setting[0]:g},{setting[1]:g}"


def gce_key(q: float) -> str:
    return f"gce:{q:g}"


def model_keys(gce_qs: Sequence[float]) -> list[str]:
    """The models trained per seed: CCE, GCE at each q, GR over the grid (grid order)."""
    grid = emphasis.candidate_settings(NUM_CLASSES)
    return ["cce"] + [gce_key(q) for q in gce_qs] + [gr_key(s) for s in grid]


def loss_of(key: str) -> digits.LossSetting:
    if key == "cce":
        return digits.LossSetting("cce", "CCE")
    if key.startswith("gce:"):
        q = float(key[4:])
        return digits.LossSetting(key, f"GCE (q={q:g})", q=q)
    return digits.loss_setting(key, 0.0)


def gce_order(gce_qs: Sequence[float]) -> list[float]:
    """GCE's candidates in order of preference for ties: the usual q = 0.7 first."""
    return sorted(gce_qs, key=lambda q: (abs(q - digits.GCE_Q), q))


# ---------------------------------------------------------------------------
# training: one noise setting, every seed and candidate in one stacked network
# ---------------------------------------------------------------------------


@dataclass
class Curves:
    """What one noise setting leaves behind (S seeds, M models, E epochs)."""

    keys: list[str]  # (M,)
    seeds: list[int]  # (S,)
    val_noisy: np.ndarray  # (S, M, E) accuracy on the validation split's noisy labels
    val_intact: np.ndarray  # (S, M, E) ... on its intact labels (reported, never used to choose)
    test: np.ndarray  # (S, M, E)
    rate_estimate: np.ndarray  # (S,) from the CCE warm-up
    estimate_method: list[str]  # (S,)
    realised_rate: np.ndarray  # (S,) on the training part
    val_size: int
    train_s: float
    command: str = ""  # the command that trained them
    threads: int = 0  # its torch threads

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            keys=np.array(self.keys),
            seeds=np.array(self.seeds),
            val_noisy=self.val_noisy,
            val_intact=self.val_intact,
            test=self.test,
            rate_estimate=self.rate_estimate,
            estimate_method=np.array(self.estimate_method),
            realised_rate=self.realised_rate,
            val_size=self.val_size,
            train_s=self.train_s,
            command=self.command,
            threads=self.threads,
        )

    @classmethod
    def load(cls, path: Path) -> Curves:
        with np.load(path, allow_pickle=False) as saved:
            return cls(
                keys=[str(k) for k in saved["keys"]],
                seeds=[int(s) for s in saved["seeds"]],
                val_noisy=saved["val_noisy"],
                val_intact=saved["val_intact"],
                test=saved["test"],
                rate_estimate=saved["rate_estimate"],
                estimate_method=[str(m) for m in saved["estimate_method"]],
                realised_rate=saved["realised_rate"],
                val_size=int(saved["val_size"]),
                train_s=float(saved["train_s"]),
                command=str(saved["command"]) if "command" in saved else "",
                threads=int(saved["threads"]) if "threads" in saved else 0,
            )


def validation_split(noisy: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """(train, val) indices: ``fraction`` held out, stratified by the *noisy* label."""
    from sklearn.model_selection import train_test_split

    state = int(np.random.SeedSequence([seed, VAL_STREAM]).generate_state(1)[0])
    everything = np.arange(noisy.size)
    train, val = train_test_split(
        everything, test_size=fraction, stratify=noisy, random_state=state
    )
    return np.sort(train), np.sort(val)


def train_noise(
    noise: label_issues.Noise,
    seeds: Sequence[int],
    keys: Sequence[str],
    data: Any,
    settings: label_issues.Settings,
    val_fraction: float,
    bar: Any,
    desc: str,
) -> Curves:
    import torch

    clean = data.y_train.numpy()
    noisy = {seed: noise.corrupt(clean, seed) for seed in seeds}
    splits = {seed: validation_split(noisy[seed].labels, val_fraction, seed) for seed in seeds}
    jobs = [
        label_issues.Job(
            seed=seed,
            setting=loss_of(key),
            labels=noisy[seed].labels,
            train=splits[seed][0],
            track=key == "cce",
            warmup_epochs=settings.warmup_epochs if key == "cce" else 0,
        )
        for seed in seeds
        for key in keys
    ]
    val_index = torch.as_tensor(np.stack([splits[j.seed][1] for j in jobs]))  # (K, V)
    val_noisy_labels = torch.as_tensor(np.stack([j.labels for j in jobs])).gather(1, val_index)
    val_intact_labels = data.y_train[val_index]
    shape = (len(seeds), len(keys), settings.epochs)
    val_noisy, val_intact, test = (np.zeros(shape) for _ in range(3))

    def evaluate(epoch: int, model: Any) -> None:
        with torch.no_grad():
            val_pred = model(data.x_train[val_index]).argmax(-1)  # (K, V)
            test_pred = model(data.x_test).argmax(-1)  # (K, T)
        for array, hits in (
            (val_noisy, val_pred == val_noisy_labels),
            (val_intact, val_pred == val_intact_labels),
            (test, test_pred == data.y_test),
        ):
            array[:, :, epoch - 1] = hits.double().mean(1).numpy().reshape(shape[:2])

    wall = label_issues.train_jobs(jobs, data, settings, bar, desc, on_epoch=evaluate)
    estimates = [emphasis.estimate_noise_rate(j.warmup) for j in jobs if j.setting.key == "cce"]
    realised = [float(noisy[seed].flipped[splits[seed][0]].mean()) for seed in seeds]
    return Curves(
        keys=list(keys),
        seeds=list(seeds),
        val_noisy=val_noisy,
        val_intact=val_intact,
        test=test,
        rate_estimate=np.array([e.rate for e in estimates]),
        estimate_method=[e.method for e in estimates],
        realised_rate=np.array(realised),
        val_size=int(val_index.shape[1]),
        train_s=wall,
    )


def curves_path(out: Path, noise: label_issues.Noise) -> Path:
    return out / "curves" / f"{noise.kind}-{round(noise.rate * 100)}.npz"


# ---------------------------------------------------------------------------
# choosing, from the saved curves
# ---------------------------------------------------------------------------


def choose(curves: Curves, noise: label_issues.Noise) -> list[dict[str, Any]]:
    """Every method of :data:`METHODS` in both regimes, per seed: the CSV rows."""
    gce_qs = [float(k[4:]) for k in curves.keys if k.startswith("gce:")]
    index = {key: m for m, key in enumerate(curves.keys)}
    grid = [k for k in curves.keys if k.startswith("gr:")]
    rows = []
    oracle = {regime: _oracle(curves, grid, index, regime) for regime in REGIMES}
    for s, seed in enumerate(curves.seeds):
        rate_hat = float(curves.rate_estimate[s])
        around_true = [gr_key(c) for c in emphasis.candidate_settings(NUM_CLASSES, noise.rate)]
        orders = {
            "gr-pick": around_true,
            "gr-pick-est": [gr_key(c) for c in emphasis.candidate_settings(NUM_CLASSES, rate_hat)],
            "gr-pick-se": around_true,
            "gce-pick": [gce_key(q) for q in gce_order(gce_qs)],
        }
        fixed = {
            "cce": "cce",
            "gce-default": gce_key(digits.GCE_Q),
            "gr-suggest": gr_key(emphasis.suggest(noise.rate, NUM_CLASSES)),
            "gr-suggest-est": gr_key(emphasis.suggest(rate_hat, NUM_CLASSES)),
        }
        for regime in REGIMES:
            for method in METHODS:
                if method == "gr-oracle":
                    candidates = [oracle[regime]]
                elif method in fixed:
                    candidates = [fixed[method]]
                else:
                    candidates = orders[method]
                curves_of = [curves.val_noisy[s, index[k]] for k in candidates]
                scores = [c[-1] for c in curves_of] if regime == "final" else curves_of
                pick = emphasis.select_setting(candidates, scores)
                if method == "gr-pick-se":  # the binomial standard error at the best accuracy
                    error = math.sqrt(pick.accuracy * (1 - pick.accuracy) / curves.val_size)
                    pick = emphasis.select_setting(candidates, scores, tolerance=error)
                if regime == "final":
                    epoch = curves.val_noisy.shape[2] - 1
                else:
                    epoch = pick.epoch_index
                m = index[pick.candidate]
                rows.append(
                    {
                        "noise": noise.name,
                        "kind": noise.kind,
                        "rate": noise.rate,
                        "seed": seed,
                        "regime": regime,
                        "method": method,
                        "choice": pick.candidate,
                        "epoch": epoch + 1,
                        "val_noisy_acc": float(curves.val_noisy[s, m, epoch]),
                        "val_intact_acc": float(curves.val_intact[s, m, epoch]),
                        "test_acc": float(curves.test[s, m, epoch]),
                        "best_test_acc": float(curves.test[s, m].max()),
                        "rate_estimate": rate_hat,
                        "realised_rate": float(curves.realised_rate[s]),
                    }
                )
    return rows


def _oracle(curves: Curves, grid: Sequence[str], index: dict[str, int], regime: str) -> str:
    """The grid setting with the best mean test accuracy over the seeds, in ``regime``."""

    def mean_test(key: str) -> float:
        m = index[key]
        if regime == "final":
            return float(curves.test[:, m, -1].mean())
        stopped = [
            curves.test[s, m, int(np.argmax(curves.val_noisy[s, m]))]  # argmax: first best
            for s in range(len(curves.seeds))
        ]
        return float(np.mean(stopped))

    return max(grid, key=mean_test)  # max keeps the first of equal means


# ---------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------


def _cell(values: Sequence[float]) -> str:
    return label_issues._mean_std(values)


def summary_markdown(
    rows: Sequence[dict[str, Any]],
    noises: Sequence[label_issues.Noise],
    curves: dict[str, Curves],
    header: Sequence[str],
) -> str:
    names = [n.name for n in noises]
    lines = list(header)
    for regime in REGIMES:
        lines += [
            "",
            f"## Test accuracy (%), {REGIME_WORDS[regime]}",
            "",
            "| method | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for method, label in METHODS.items():
            cells = [
                _cell([r["test_acc"] for r in rows if _is(r, name, regime, method)])
                for name in names
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## The goal: the GR pick within 2 points of the oracle, and above CCE", ""]
    lines += [
        "| regime | noise | GR pick | oracle setting | pick - oracle | pick - CCE | holds |",
        "|---|---|---:|---|---:|---:|:---:|",
    ]
    for regime in REGIMES:
        for name in names:
            pick = _mean(rows, name, regime, "gr-pick")
            oracle = _mean(rows, name, regime, "gr-oracle")
            cce = _mean(rows, name, regime, "cce")
            choice = next(r["choice"] for r in rows if _is(r, name, regime, "gr-oracle"))
            holds = pick >= oracle - GOAL_POINTS and pick > cce
            lines.append(
                f"| {regime} | {name} | {pick:.1f} | {_setting_words(choice)} | "
                f"{pick - oracle:+.1f} | {pick - cce:+.1f} | {'yes' if holds else 'no'} |"
            )
    lines += ["", "## What was picked (seeds in order)", ""]
    lines += [
        "| noise | regime | GR pick: setting @ epoch | GCE pick: q @ epoch |",
        "|---|---|---|---|",
    ]
    for name in names:
        for regime in REGIMES:
            gr = [r for r in rows if _is(r, name, regime, "gr-pick")]
            gce = [r for r in rows if _is(r, name, regime, "gce-pick")]
            lines.append(
                f"| {name} | {regime} | "
                + ", ".join(f"{_setting_words(r['choice'])} @ {r['epoch']}" for r in gr)
                + " | "
                + ", ".join(f"{r['choice'][4:]} @ {r['epoch']}" for r in gce)
                + " |"
            )
    lines += [
        "",
        "## Early stopping: how much of the best-to-final gap stopping recovers",
        "",
        "Best = the best test accuracy over the epochs of the same model (the paper's Table 3 "
        "'Best', chosen on the test set); stopped = the epoch of the best noisy-validation "
        "accuracy; final = the last epoch; all three for the model each method picks when "
        "stopping early; gap recovered = (stopped - final) / (best - final).",
        "",
        "| method | noise | final | stopped | best (test-chosen epoch) | gap recovered |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for method in ("cce", "gce-default", "gr-suggest", "gr-pick"):
        for name in names:
            stopped_rows = [r for r in rows if _is(r, name, "stopped", method)]
            stopped = _mean(rows, name, "stopped", method)
            best = 100 * float(np.mean([r["best_test_acc"] for r in stopped_rows]))
            final_same = 100 * float(np.mean([_final_of(curves[name], r) for r in stopped_rows]))
            gap = best - final_same
            share = f"{(stopped - final_same) / gap:.0%}" if gap > 0.5 else "(no gap)"
            lines.append(
                f"| {METHODS[method]} | {name} | {final_same:.1f} | {stopped:.1f} | {best:.1f} | "
                f"{share} |"
            )
    lines += _estimate_lines(rows, names, curves)
    return "\n".join(lines)


def _estimate_lines(
    rows: Sequence[dict[str, Any]], names: Sequence[str], curves: dict[str, Curves]
) -> list[str]:
    lines = [
        "",
        "## Noise-rate estimates and the noisy-to-clean map",
        "",
        "Estimated r: `emphasis.estimate_noise_rate` on the CCE model's dynamics after the "
        "warm-up (training part only). Clean accuracy from noisy: "
        "`emphasis.estimate_clean_accuracy` applied to the GR pick's noisy-validation accuracy "
        "(stopped), against its test accuracy (symmetric noise only: the map assumes it).",
        "",
        "| noise | realised r (train part) | estimated r | method | estimated clean acc. | "
        "test acc. |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name in names:
        c = curves[name]
        picked = [r for r in rows if _is(r, name, "stopped", "gr-pick")]
        kind, rate = picked[0]["kind"], picked[0]["rate"]
        if kind == "symmetric":
            clean = [
                emphasis.estimate_clean_accuracy(
                    r["val_noisy_acc"], noise_rate=rate, num_classes=NUM_CLASSES
                )
                for r in picked
            ]
            estimated = _cell(clean)
        else:
            estimated = "(not symmetric)"
        methods = sorted(set(c.estimate_method))
        lines.append(
            f"| {name} | {_cell(list(c.realised_rate))} | {_cell(list(c.rate_estimate))} | "
            f"{', '.join(methods)} | {estimated} | {_cell([r['test_acc'] for r in picked])} |"
        )
    return lines


def _final_of(curves: Curves, row: dict[str, Any]) -> float:
    s = curves.seeds.index(row["seed"])
    return float(curves.test[s, curves.keys.index(row["choice"]), -1])


def _is(row: dict[str, Any], name: str, regime: str, method: str) -> bool:
    return row["noise"] == name and row["regime"] == regime and row["method"] == method


def _mean(rows: Sequence[dict[str, Any]], name: str, regime: str, method: str) -> float:
    return 100 * float(np.mean([r["test_acc"] for r in rows if _is(r, name, regime, method)]))


def _setting_words(key: str) -> str:
    """'gr:16,1' -> '(16, 1)'."""
    return f"({key[3:].replace(',', ', ')})"


def header_lines(
    command: str, noises: Sequence[label_issues.Noise], curves: dict[str, Curves]
) -> list[str]:
    first = curves[noises[0].name]
    train_s = sum(c.train_s for c in curves.values())
    trained_by = sorted({c.command for c in curves.values()} - {command, ""})
    import torch

    return [
        "# Choosing beta and lam from noisy labels alone (digits)",
        "",
        f"Command: `{command}`  ",
        *(f"Trained by: `{c}`  " for c in trained_by),
        f"Training time: {train_s / 60:.1f} min ({train_s:.0f} s) with "
        f"{max(c.threads for c in curves.values()) or torch.get_num_threads()} torch threads "
        f"({platform.machine()}, torch {torch.__version__}).",
        "",
        f"Per seed and noise setting: a stratified noisy validation split of {first.val_size} "
        f"images held out of the training set; {len(first.keys)} models trained on the rest "
        f"(CCE, GCE at q in {{{', '.join(k[4:] for k in first.keys if k.startswith('gce:'))}}}, "
        f"GR at the {sum(k.startswith('gr:') for k in first.keys)} settings of "
        "`emphasis.candidate_settings(10)`), digits_benchmark's protocol, "
        f"{first.test.shape[2]} epochs. Seeds {', '.join(map(str, first.seeds))}; "
        "mean ± sample standard deviation over them. Choices use only the noisy validation "
        "labels; the test set only reports.",
    ]


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m reference_training.choose_settings",
        description=(
            "Hold out a noisy validation split of digits, train CCE, GCE and GR's candidate "
            "grid, choose by noisy-validation accuracy (emphasis.select_setting) and compare "
            "with suggest() and with the best grid setting by test accuracy; write "
            "results.csv, summary.md and curves/*.npz."
        ),
    )
    label_issues.add_training_arguments(parser, DEFAULT_OUT)
    parser.add_argument(
        "--val-fraction",
        type=_fraction,
        default=DEFAULT_VAL_FRACTION,
        help=f"share of the training images held out, noisy (default: {DEFAULT_VAL_FRACTION})",
    )
    parser.add_argument(
        "--gce-q",
        type=_q,
        nargs="+",
        default=list(DEFAULT_GCE_QS),
        help="GCE's candidates (default: " + " ".join(f"{q:g}" for q in DEFAULT_GCE_QS) + ")",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="seconds, to check the set-up: symmetric:0.4, seed 0, 4 epochs (warm-up 2), "
        "400 training images (explicit options still win)",
    )
    parser.add_argument(
        "--report-from",
        type=Path,
        default=None,
        metavar="DIR",
        help="train nothing: recompute results.csv and summary.md in --out from the "
        "curves/*.npz of a finished run in DIR (the noise settings of --noise)",
    )
    args = parser.parse_args(argv)
    label_issues.check_training_arguments(parser, args, argv, QUICK)
    if digits.GCE_Q not in args.gce_q:
        parser.error(f"--gce-q must include GCE's usual q = {digits.GCE_Q:g} (the GCE row)")
    if len(set(args.gce_q)) != len(args.gce_q):
        parser.error("--gce-q: a q is given twice")
    return args


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {value:g}")
    return value


def _q(text: str) -> float:
    value = _number(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected GCE's q in (0, 1], got {value:g}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import sklearn  # noqa: F401
        import torch
        import tqdm  # noqa: F401
    except ImportError as error:
        print(
            f'choose_settings needs {error.name}: pip install "emphasis[benchmark]"',
            file=sys.stderr,
        )
        return 1
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as digits_benchmark: subnormal exp() is slow on a CPU
    try:
        return run(args, argv)
    finally:
        torch.set_flush_denormal(False)


def run(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    import torch
    from tqdm.auto import tqdm

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    words = ["python", "-m", "reference_training.choose_settings"]
    command = shlex.join(words + list(argv if argv is not None else sys.argv[1:]))
    keys = model_keys(args.gce_q)
    curves: dict[str, Curves] = {}
    if args.report_from is not None:
        for noise in args.noise:
            path = curves_path(args.report_from, noise)
            if not path.is_file():
                print(f"--report-from: {path} is missing (no run of {noise.name})", file=sys.stderr)
                return 1
            curves[noise.name] = Curves.load(path)
    else:
        settings = label_issues.Settings(
            epochs=args.epochs,
            batch_size=args.batch_size,
            warmup_epochs=args.warmup_epochs,
            folds=2,  # unused: no cross-validation here
        )
        data = label_issues.subset(digits.load_digits(), args.train_size)
        print(
            f"digits: {len(data.y_train)} train (a {args.val_fraction:g} noisy validation split "
            f"held out) / {len(data.y_test)} test; {len(args.noise)} noise settings x "
            f"{len(args.seeds)} seeds x {len(keys)} models, {args.epochs} epochs -> {out}",
            flush=True,
        )
        bar = tqdm(
            total=args.epochs * len(args.noise),
            unit="epoch",
            disable=args.no_progress or not sys.stderr.isatty(),
            dynamic_ncols=True,
        )
        start = time.perf_counter()
        for i, noise in enumerate(args.noise):
            desc = f"[{i + 1}/{len(args.noise)}] {noise.name}"
            result = train_noise(
                noise, args.seeds, keys, data, settings, args.val_fraction, bar, desc
            )
            result.command, result.threads = command, torch.get_num_threads()
            result.save(curves_path(out, noise))  # after each setting: a stop keeps it
            curves[noise.name] = result
            bar.write(
                f"{noise.name}: trained in {result.train_s:.0f} s "
                f"({time.perf_counter() - start:.0f} s so far)"
            )
        bar.close()
    rows = [row for noise in args.noise for row in choose(curves[noise.name], noise)]
    digits.write_csv(out / "results.csv", rows)
    text = summary_markdown(rows, args.noise, curves, header_lines(command, args.noise, curves))
    (out / "summary.md").write_text(text + "\n", encoding="utf-8")
    print()
    print(text)
    print(f"wrote {out / 'results.csv'}, {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
