"""`make demo`'s entry point (reference_training/demo.py) in a tiny configuration, in seconds.

One seed and 3 epochs instead of 3 seeds and 150: checks that it prints the table, writes the CSVs
and the figure, keeps the full benchmark's protocol by default, and refuses bad arguments by name.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
from _marks import needs_torch

TINY_EPOCHS = 3


@needs_torch
def test_tiny_demo_prints_the_table_and_writes_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reference_training import demo

    argv = ["--seeds", "0", "--epochs", str(TINY_EPOCHS), "--no-progress", "--out", str(tmp_path)]
    assert demo.main(argv) == 0
    printed = capsys.readouterr().out

    assert "## Final test accuracy (%)" in printed
    assert "## Best test accuracy during training (%)" in printed
    assert "| loss | r = 40% |" in printed
    for label in ("CCE", "GCE (q=0.7)", "GR suggest(r, 10)"):
        assert f"| {label} |" in printed
    assert "r = 40%: (β=16, λ=1)" in printed  # emphasis.suggest(0.4, 10)
    assert f"batch 128, {TINY_EPOCHS} epochs" in printed
    assert f"demo: {TINY_EPOCHS} epochs instead of the full benchmark's 150" in printed
    assert "python reference_training/digits_benchmark.py --rates 0.4 --losses cce gce" in printed

    with (tmp_path / "results.csv").open(newline="") as handle:
        results = list(csv.DictReader(handle))
    assert [(r["loss"], r["seed"]) for r in results] == [
        ("cce", "0"),
        ("gce", "0"),
        ("gr-suggest", "0"),
    ]
    for row in results:
        assert 0.0 <= float(row["final_test_acc"]) <= float(row["best_test_acc"]) <= 1.0
    with (tmp_path / "curves.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(results) * TINY_EPOCHS
    assert (tmp_path / "summary.md").read_text(encoding="utf-8").startswith("# Digits benchmark")
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@needs_torch
def test_demo_defaults_keep_the_full_benchmarks_protocol_but_the_epochs() -> None:
    from reference_training import demo
    from reference_training import digits_benchmark as bench

    args = bench.parse_args(demo.benchmark_argv(demo.parse_args([])))
    full = bench.parse_args([])
    assert args.rates == [0.4]
    assert args.losses == ["cce", "gce", "gr-suggest"]
    assert args.seeds == [0, 1, 2]
    assert args.out == demo.DEFAULT_OUT
    assert args.epochs == 60  # shortened from 150, and said so
    for name in ("batch_size", "lr", "lr_drops", "momentum", "weight_decay", "threads"):
        assert getattr(args, name) == getattr(full, name), name


@needs_torch
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "1.0"], "--rate: expected a noise rate in [0, 1)"),
        (["--rate", "forty"], "--rate: expected a noise rate in [0, 1), got 'forty'"),
        (["--epochs", "0"], "--epochs: expected a positive integer"),
        (["--threads", "two"], "--threads: expected a positive integer"),
        (["--seeds", "1", "1"], "--seeds: expected distinct"),
        (["--seeds", "-1"], "--seeds: expected distinct non-negative"),
        (["--losses", "mae"], "unrecognized arguments: --losses mae"),
    ],
)
def test_demo_refuses_bad_arguments_by_name(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from reference_training import demo

    with pytest.raises(SystemExit) as excinfo:
        demo.parse_args(argv)
    assert excinfo.value.code == 2
    assert message in capsys.readouterr().err
