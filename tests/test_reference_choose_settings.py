"""Choosing settings on noisy validation labels (reference_training/choose_settings.py), in seconds.

Runs ``main`` on a tiny setting (two noise settings, two seeds, three epochs, 300 training
images) and checks the saved curves, that every choice is the one ``select_setting``'s rule gives
from the *noisy validation* curves alone (scrambling the test and the intact-label curves changes
no choice), the oracle, the report and its ``--report-from`` rebuild, and clear errors on bad
arguments. Also runs docs/choosing.md's example of choosing a setting (NumPy only).
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import numpy as np
import pytest
from _marks import needs_torch
from _readme import run_python_block

import emphasis


def test_readme_example_runs(capsys):
    namespace = run_python_block("## Choosing in your own training loop", "docs/choosing.md")
    pick, curves = namespace["pick"], namespace["curves"]
    assert pick.candidate == namespace["candidates"][pick.index]
    assert pick.accuracy == max(max(c) for c in curves) == curves[pick.index][pick.epoch_index]
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith(f"GR{pick.candidate}, stop after epoch {pick.epoch_index + 1}:")
    # The estimate of the clean accuracy, from noisy labels alone, is near the test accuracy.
    estimated, test = (float(v) for v in re.findall(r"\d\.\d{3}", second))
    assert abs(estimated - test) < 0.1


TINY = [
    "--noise",
    "symmetric:0.4",
    "pair:0.4",
    "--seeds",
    "3",
    "5",
    "--epochs",
    "3",
    "--warmup-epochs",
    "2",
    "--train-size",
    "300",
    "--gce-q",
    "0.3",
    "0.7",
    "--no-progress",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import torch

    from reference_training import choose_settings

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("choose_tiny")
    assert choose_settings.main([*TINY, "--out", str(out)]) == 0
    return out, choose_settings


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@needs_torch
def test_curves_are_saved_per_noise_setting(tiny_run):
    out, cs = tiny_run
    for noise in ("symmetric-40", "pair-40"):
        curves = cs.Curves.load(out / "curves" / f"{noise}.npz")
        assert curves.keys[:3] == ["cce", "gce:0.3", "gce:0.7"]
        assert len(curves.keys) == 3 + 16
        assert curves.seeds == [3, 5]
        assert curves.val_size == 60  # 20% of 300
        for array in (curves.val_noisy, curves.val_intact, curves.test):
            assert array.shape == (2, 19, 3)
            assert ((array >= 0) & (array <= 1)).all()
        # Accuracies on the validation split are counts out of its 60 images.
        counts = curves.val_noisy * curves.val_size
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
        assert ((curves.rate_estimate >= 0) & (curves.rate_estimate <= 1)).all()
        np.testing.assert_allclose(curves.realised_rate, 0.4, atol=0.1)
        assert curves.command.startswith("python -m reference_training.choose_settings --noise")
        assert curves.threads == 1


def _expected_pick(curves, seed_index, keys, regime, standard_error=False):
    """select_setting's rule by hand: the best score, the first candidate and epoch on ties
    (within one binomial standard error of the best with ``standard_error``)."""
    index = [curves.keys.index(k) for k in keys]
    val = curves.val_noisy[seed_index][index]  # (n, E)
    scores = val[:, -1] if regime == "final" else val.max(1)
    top = scores.max()
    tolerance = math.sqrt(top * (1 - top) / curves.val_size) if standard_error else 0.0
    first = int(np.flatnonzero(scores >= top - tolerance)[0])
    epoch = val.shape[1] - 1 if regime == "final" else int(np.argmax(val[first]))
    return keys[first], epoch


@needs_torch
def test_every_choice_follows_the_noisy_validation_curves(tiny_run):
    out, cs = tiny_run
    rows = _rows(out / "results.csv")
    assert len(rows) == 2 * 2 * 2 * len(cs.METHODS)  # noise x seed x regime x method
    checked = 0
    for noise in (cs.label_issues.parse_noise(t) for t in ("symmetric:0.4", "pair:0.4")):
        curves = cs.Curves.load(cs.curves_path(out, noise))
        for s, seed in enumerate(curves.seeds):
            rate_hat = float(curves.rate_estimate[s])
            orders = {
                "gr-pick": emphasis.candidate_settings(10, 0.4),
                "gr-pick-est": emphasis.candidate_settings(10, rate_hat),
                "gr-pick-se": emphasis.candidate_settings(10, 0.4),
            }
            for row in rows:
                if row["noise"] != noise.name or int(row["seed"]) != seed:
                    continue
                method, regime = row["method"], row["regime"]
                if method in orders:
                    keys = [cs.gr_key(c) for c in orders[method]]
                elif method == "gce-pick":
                    keys = ["gce:0.7", "gce:0.3"]  # 0.7 first: the tie-break
                else:
                    continue
                choice, epoch = _expected_pick(
                    curves, s, keys, regime, standard_error=method == "gr-pick-se"
                )
                assert row["choice"] == choice and int(row["epoch"]) == epoch + 1
                m = curves.keys.index(choice)
                assert float(row["test_acc"]) == pytest.approx(curves.test[s, m, epoch])
                assert float(row["val_noisy_acc"]) == pytest.approx(curves.val_noisy[s, m, epoch])
                checked += 1
    assert checked == 2 * 2 * 2 * 4


@needs_torch
def test_the_test_set_and_the_intact_labels_never_choose(tiny_run):
    out, cs = tiny_run
    noise = cs.label_issues.parse_noise("symmetric:0.4")
    curves = cs.Curves.load(cs.curves_path(out, noise))
    rows = cs.choose(curves, noise)
    rng = np.random.default_rng(0)
    curves.test = rng.random(curves.test.shape)
    curves.val_intact = rng.random(curves.val_intact.shape)
    scrambled = cs.choose(curves, noise)
    for before, after in zip(rows, scrambled, strict=True):
        if before["method"] != "gr-oracle":
            assert (before["choice"], before["epoch"]) == (after["choice"], after["epoch"])


@needs_torch
def test_the_oracle_is_the_best_grid_setting_by_mean_test_accuracy(tiny_run):
    out, cs = tiny_run
    noise = cs.label_issues.parse_noise("pair:0.4")
    curves = cs.Curves.load(cs.curves_path(out, noise))
    grid = [i for i, k in enumerate(curves.keys) if k.startswith("gr:")]
    final = curves.test[:, grid, -1].mean(0)
    expected = curves.keys[grid[int(np.argmax(final))]]
    rows = [r for r in cs.choose(curves, noise) if r["method"] == "gr-oracle"]
    assert {r["choice"] for r in rows if r["regime"] == "final"} == {expected}
    # Each seed's oracle row reports that one setting's accuracy on that seed.
    for s, row in enumerate(r for r in rows if r["regime"] == "final"):
        assert row["test_acc"] == curves.test[s, curves.keys.index(expected), -1]


@needs_torch
def test_summary_and_report_from(tiny_run, tmp_path):
    out, cs = tiny_run
    summary = (out / "summary.md").read_text()
    for heading in (
        "## Test accuracy (%), trained to the end (final epoch)",
        "## Test accuracy (%), stopped at the best noisy-validation epoch",
        "## The goal: the GR pick within 2 points of the oracle, and above CCE",
        "## Early stopping",
        "## Noise-rate estimates",
    ):
        assert heading in summary
    for label in cs.METHODS.values():
        assert f"| {label} |" in summary
    assert "| symmetric 40% | pair 40% |" in summary
    again = tmp_path / "again"
    assert cs.main([*TINY, "--report-from", str(out), "--out", str(again)]) == 0
    assert _rows(again / "results.csv") == _rows(out / "results.csv")
    body = summary.split("## Test accuracy", 1)[1]
    assert (again / "summary.md").read_text().split("## Test accuracy", 1)[1] == body


@needs_torch
def test_report_from_a_folder_without_the_setting(tiny_run, tmp_path, capsys):
    out, cs = tiny_run
    code = cs.main(["--noise", "symmetric:0.6", "--report-from", str(out), "--out", str(tmp_path)])
    assert code == 1
    assert "symmetric-60.npz is missing" in capsys.readouterr().err


@needs_torch
def test_validation_split_is_stratified_by_the_noisy_labels():
    pytest.importorskip("sklearn")
    from reference_training import choose_settings as cs

    noisy = np.repeat(np.arange(10), 50)[np.random.default_rng(1).permutation(500)]
    train, val = cs.validation_split(noisy, 0.2, seed=3)
    assert len(val) == 100 and len(train) == 400
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(500))
    assert np.bincount(noisy[val], minlength=10).tolist() == [10] * 10
    again, _ = cs.validation_split(noisy, 0.2, seed=3)[::-1]
    assert np.array_equal(again, val)
    assert not np.array_equal(cs.validation_split(noisy, 0.2, seed=4)[1], val)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gce-q", "0.3", "0.5"], "must include GCE's usual q = 0.7"),
        (["--gce-q", "0.7", "0"], "expected GCE's q in (0, 1]"),
        (["--gce-q", "0.7", "0.7"], "a q is given twice"),
        (["--val-fraction", "1.5"], "expected a fraction in (0, 1)"),
        (["--val-fraction", "a"], "expected a number"),
        (["--noise", "pair:0.4", "pair:0.4"], "a noise setting is given twice"),
        (["--epochs", "5", "--warmup-epochs", "6"], "must be at most --epochs"),
        (["--noise", "uniform:0.4"], "expected symmetric:RATE or pair:RATE"),
    ],
)
def test_bad_arguments_are_refused(argv, message, capsys):
    from reference_training import choose_settings as cs

    with pytest.raises(SystemExit):
        cs.parse_args(argv)
    assert message in capsys.readouterr().err


@needs_torch
def test_the_committed_results_rebuild_from_their_curves(tmp_path):
    # The tables of docs/choosing.md come from reference_training/results/choose_settings: its
    # summary.md is what --report-from computes from the saved curves.
    from reference_training import choose_settings as cs

    results = Path(cs.__file__).resolve().parent / "results" / "choose_settings"
    assert cs.main(["--report-from", str(results), "--out", str(tmp_path)]) == 0
    rebuilt = (tmp_path / "summary.md").read_text().split("## Test accuracy", 1)[1]
    assert (results / "summary.md").read_text().split("## Test accuracy", 1)[1] == rebuilt
    assert (
        "Trained by: `python -m reference_training.choose_settings --threads 2"
        in (results / "summary.md").read_text()
    )
    readme = (Path(cs.__file__).resolve().parents[1] / "docs" / "choosing.md").read_text()
    for row in _rows(tmp_path / "results.csv"):
        assert row["val_noisy_acc"] and 0.0 <= float(row["test_acc"]) <= 1.0
    picked = [
        cs._mean(_rows_as_numbers(tmp_path / "results.csv"), name, "final", "gr-pick")
        for name in ("symmetric 20%", "symmetric 40%", "symmetric 60%", "pair 40%")
    ]
    assert [f"{v:.1f}" for v in picked] == ["96.1", "92.6", "75.8", "72.8"]
    assert "| **GR, picked** | **96.1 ± 0.7** | **92.6 ± 1.8** | **75.8 ± 2.2** |" in readme


def _rows_as_numbers(path: Path) -> list[dict]:
    return [dict(r, test_acc=float(r["test_acc"])) for r in _rows(path)]
