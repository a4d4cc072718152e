"""The digits benchmark (reference_training/digits_benchmark.py) end to end, in seconds.

Runs the script's ``main`` with ``--quick`` (noise rates 0 and 0.4, CCE and GR with
``emphasis.suggest``, one seed, 4 epochs) and checks its outputs and that the model learns; checks
that the stacked training of several models equals training each alone, and that bad arguments
give clear errors.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("tqdm")

pytestmark = pytest.mark.torch

SCRIPT = Path(__file__).resolve().parents[1] / "reference_training" / "digits_benchmark.py"
QUICK_RATES = (0.0, 0.4)
QUICK_LOSSES = ("cce", "gr-suggest")
QUICK_EPOCHS = 4
ACCURACY_COLUMNS = (
    "final_test_acc",
    "best_test_acc",
    "noisy_train_acc",
    "intact_train_acc",
    "flipped_fit",
)


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("digits_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load_script()


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def quick_run(bench: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("digits_quick")
    assert bench.main(["--quick", "--no-progress", "--out", str(out)]) == 0
    return out


def test_quick_run_writes_every_output(quick_run: Path) -> None:
    names = {p.name for p in quick_run.iterdir()}
    assert {"results.csv", "curves.csv", "summary.md"} <= names

    results = _read_csv(quick_run / "results.csv")
    assert len(results) == len(QUICK_RATES) * len(QUICK_LOSSES)
    assert {(float(r["rate"]), r["loss"]) for r in results} == {
        (rate, loss) for rate in QUICK_RATES for loss in QUICK_LOSSES
    }
    for row in results:
        for column in ACCURACY_COLUMNS:
            assert 0.0 <= float(row[column]) <= 1.0, (column, row)
        assert float(row["best_test_acc"]) >= float(row["final_test_acc"])
        assert 1 <= int(row["best_epoch"]) <= QUICK_EPOCHS
        assert row["diverged_epoch"] == ""

    curves = _read_csv(quick_run / "curves.csv")
    assert len(curves) == len(results) * QUICK_EPOCHS
    for row in curves:
        for column in ("test_acc", "running_noisy_train_acc", "running_intact_train_acc"):
            assert 0.0 <= float(row[column]) <= 1.0, (column, row)
        assert np.isfinite(float(row["train_loss"]))
    # The best test accuracy of results.csv is the maximum of the curve.
    for row in results:
        curve = [
            float(c["test_acc"])
            for c in curves
            if (c["rate"], c["loss"], c["seed"]) == (row["rate"], row["loss"], row["seed"])
        ]
        epochs = [
            int(c["epoch"])
            for c in curves
            if (c["rate"], c["loss"], c["seed"]) == (row["rate"], row["loss"], row["seed"])
        ]
        assert epochs == list(range(1, QUICK_EPOCHS + 1))
        assert max(curve) == pytest.approx(float(row["best_test_acc"]))
        assert curve[-1] == pytest.approx(float(row["final_test_acc"]))

    summary = (quick_run / "summary.md").read_text(encoding="utf-8")
    for heading in (
        "## Final test accuracy (%)",
        "## Best test accuracy during training (%)",
        "## Accuracy on the noisy training labels, final epoch (%)",
        "## Accuracy on the intact training labels, final epoch (%)",
    ):
        assert heading in summary
    assert "| loss | r = 0% | r = 40% |" in summary
    assert "| CCE |" in summary
    assert "| GR suggest(r, 10) |" in summary
    assert "r = 40%: (β=16, λ=1)" in summary  # emphasis.suggest(0.4, 10)
    assert "Wall time:" in summary

    if importlib.util.find_spec("matplotlib") is not None:
        png = (quick_run / "curves.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(png) > 10_000


def test_quick_run_learns_and_uses_the_noise(quick_run: Path) -> None:
    results = {(float(r["rate"]), r["loss"]): r for r in _read_csv(quick_run / "results.csv")}
    for loss in QUICK_LOSSES:
        clean = results[0.0, loss]
        noisy = results[0.4, loss]
        # Clean labels: the noisy and the intact training labels are the same labels.
        assert float(clean["realised_rate"]) == 0.0
        assert float(clean["noisy_train_acc"]) == float(clean["intact_train_acc"])
        # Four epochs on clean digits already give a usable classifier (measured: 0.87, 0.87).
        assert float(clean["final_test_acc"]) > 0.8
        # 40% symmetric noise (the paper's convention: every flipped label is wrong).
        assert float(noisy["realised_rate"]) == pytest.approx(0.4, abs=0.05)
    # Early in training CCE follows the intact labels, not the flipped ones (measured: 0.91 on
    # the intact labels, 0.54 on the noisy ones). GR(16, 1) is still near chance after 4 epochs.
    cce = results[0.4, "cce"]
    assert float(cce["intact_train_acc"]) > float(cce["noisy_train_acc"]) + 0.2
    # GR gets emphasis.suggest's setting for the rate.
    assert (
        float(results[0.4, "gr-suggest"]["beta"]),
        float(results[0.4, "gr-suggest"]["lam"]),
    ) == (
        16.0,
        1.0,
    )


def test_runs_are_deterministic(bench: ModuleType, quick_run: Path, tmp_path: Path) -> None:
    assert bench.main(["--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    for name in ("results.csv", "curves.csv"):
        assert (tmp_path / name).read_text() == (quick_run / name).read_text(), name


def test_stacked_models_train_like_separate_models(bench: ModuleType) -> None:
    """K models in one stacked network, each with its own loss and batch, equal K separate ones."""
    import emphasis_torch

    torch.manual_seed(0)
    sizes = (64, 32, 32, 10)
    seeds = [3, 4, 3]
    losses = [emphasis_torch.CCELoss(), emphasis_torch.GRLoss(beta=16.0, lam=1.0)]
    losses.append(emphasis_torch.GRLoss(beta=8.0, lam=0.5))
    x = torch.randn(len(seeds), 16, sizes[0])
    y = torch.randint(0, 10, (len(seeds), 16))

    def train(model, indices):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        for _ in range(3):
            logits = model(x[indices])
            total = torch.stack([losses[k](logits[i], y[k]) for i, k in enumerate(indices)]).sum()
            opt.zero_grad()
            total.backward()
            opt.step()
        return model

    stacked = train(bench.make_ensemble(seeds, sizes), list(range(len(seeds))))
    for k, seed in enumerate(seeds):
        alone = train(bench.make_ensemble([seed], sizes), [k])
        for w_stacked, w_alone in zip(stacked.parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(w_stacked[k], w_alone[0], rtol=1e-5, atol=1e-6)
    # The same seed gives the same initial weights, a different seed different ones.
    fresh = bench.make_ensemble(seeds, sizes)
    torch.testing.assert_close(fresh.weights[0][0], fresh.weights[0][2])
    assert not torch.equal(fresh.weights[0][0], fresh.weights[0][1])


def test_loss_settings(bench: ModuleType) -> None:
    import emphasis

    for rate in (0.0, 0.2, 0.4, 0.6):
        setting = bench.loss_setting("gr-suggest", rate)
        assert (setting.beta, setting.lam) == emphasis.suggest(rate, 10)
    fixed = bench.loss_setting("gr-fixed", 0.4)
    assert (fixed.beta, fixed.lam) == (8.0, 0.5)
    custom = bench.loss_setting("gr:16,1", 0.2)
    assert (custom.beta, custom.lam) == (16.0, 1.0)
    assert custom.label == "GR (β=16, λ=1)"
    assert custom.build().eps == 1e-6  # GR's default
    exact = bench.loss_setting("gr:16,1,0", 0.4)
    assert (exact.beta, exact.lam, exact.eps) == (16.0, 1.0, 0.0)
    assert exact.label == "GR (β=16, λ=1, eps=0)"
    assert exact.build().eps == 0.0
    module = custom.build()
    logits = torch.randn(5, 10, requires_grad=True)
    module(logits, torch.randint(0, 10, (5,))).backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--losses", "focal"], "--losses: unknown loss 'focal'"),
        (["--losses", "gr:16"], "--losses: expected gr:BETA,LAM"),
        (["--losses", "gr:16,1,0,2"], "--losses: expected gr:BETA,LAM"),
        (["--losses", "gr:16,1,-1"], "eps"),
        (["--losses", "gr:-1,1"], "beta"),
        (["--rates", "1.0"], "noise rate in [0, 1)"),
        (["--epochs", "0"], "positive integer"),
        (["--seeds", "1", "1"], "--seeds: expected distinct"),
        (["--lr-drops", "0.5", "1.5"], "--lr-drops: expected fractions of training in (0, 1)"),
    ],
)
def test_bad_arguments_name_the_problem(
    bench: ModuleType, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        bench.parse_args(argv)
    assert excinfo.value.code == 2
    assert message in capsys.readouterr().err


def test_learning_rate_follows_the_released_step_schedule(bench: ModuleType) -> None:
    args = bench.parse_args([])
    assert args.lr_drops == [0.5, 22 / 30] and args.batch_size == 128
    config = bench.Config(
        rates=[0.4], losses=["cce"], seeds=[0], epochs=150, batch_size=128, lr=0.1,
        lr_drops=args.lr_drops, momentum=0.9, weight_decay=1e-4, threads=1,
        out=Path("."), progress=False,
    )  # fmt: skip
    rates = [bench.learning_rate(config, epoch) for epoch in range(1, 151)]
    # x0.1 after epoch 75 (half of training) and after epoch 110 (22/30 of it)
    assert rates[:75] == [0.1] * 75
    assert rates[75:110] == pytest.approx([0.01] * 35)
    assert rates[110:] == pytest.approx([0.001] * 40)
    assert bench._schedule_words(config) == " x0.1 after epochs 75 and 110"

    constant = bench.parse_args(["--lr-drops"])
    assert constant.lr_drops == []
    config.lr_drops = []
    assert {bench.learning_rate(config, epoch) for epoch in range(1, 151)} == {0.1}
    assert bench._schedule_words(config) == " (constant)"
    # --quick keeps the rate constant unless the schedule is given explicitly.
    assert bench.parse_args(["--quick"]).lr_drops == []
    assert bench.parse_args(["--quick", "--lr-drops", "0.5"]).lr_drops == [0.5]


def test_summary_pairs_the_gain_over_cce_by_seed(bench: ModuleType) -> None:
    accuracy = {
        ("cce", 0): 0.70,
        ("cce", 1): 0.74,
        ("gr-suggest", 0): 0.95,
        ("gr-suggest", 1): 0.93,
    }
    results = [
        {"rate": 0.4, "loss": loss, "seed": seed, "final_test_acc": acc}
        for (loss, seed), acc in accuracy.items()
    ]
    # gains 25 and 19 points: mean 22, sample std 4.24
    assert bench._paired_gain(results, "gr-suggest", 0.4) == "22.0 ± 4.2 [19.0, 25.0]"
    # A seed without its CCE partner is left out rather than paired with another seed's.
    results.append({"rate": 0.4, "loss": "gr-suggest", "seed": 2, "final_test_acc": 0.5})
    assert bench._paired_gain(results, "gr-suggest", 0.4) == "22.0 ± 4.2 [19.0, 25.0]"
    assert bench._paired_gain(results, "gr-suggest", 0.2) == ""


def test_quick_summary_reports_the_paired_gain(quick_run: Path) -> None:
    summary = (quick_run / "summary.md").read_text(encoding="utf-8")
    assert "## Gain over CCE in final test accuracy (points, paired by seed)" in summary
    assert "SGD lr 0.1 (constant)" in summary
