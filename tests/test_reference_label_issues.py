"""The label-issues benchmark (reference_training/label_issues.py) end to end, in seconds.

Runs ``main`` on a tiny setting (one noise rate, one seed, a few epochs, 300 training images)
and checks the summary table, the CSV's columns and rows, the plot, the number of trainings of
each method, that cleanlab was really called, and that bad arguments give clear errors. Also runs
the "Finding the wrong labels" example of docs/label-issues.md (NumPy only).
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from _marks import needs_torch
from _readme import run_python_block


def test_readme_example_runs(capsys):
    namespace = run_python_block("# Finding the wrong labels", "docs/label-issues.md")
    printed = capsys.readouterr().out.splitlines()
    assert printed, "the example prints its results"
    assert 0.2 < namespace["estimate"].rate < 0.4
    assert (namespace["beta"], namespace["lam"]) == (16.0, 1.0)  # suggest(~0.3, 10)


TINY = [
    "--noise",
    "symmetric:0.4",
    "--seeds",
    "3",
    "--epochs",
    "4",
    "--warmup-epochs",
    "2",
    "--train-size",
    "300",
    "--no-progress",
]
METHODS = ("gr", "gr-est", "cce", "cleanlab")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("cleanlab")
    import cleanlab.filter

    from reference_training import label_issues

    calls: list[tuple[int, tuple[int, ...]]] = []
    original = cleanlab.filter.find_label_issues

    def spy(labels, pred_probs, **kwargs):
        calls.append((len(labels), pred_probs.shape))
        return original(labels, pred_probs, **kwargs)

    out = tmp_path_factory.mktemp("label_issues_tiny")
    import torch

    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cleanlab.filter, "find_label_issues", spy)
        assert label_issues.main([*TINY, "--out", str(out)]) == 0
    return out, calls, label_issues


@needs_torch
def test_outputs_written(tiny_run, capsys):
    out, _, _ = tiny_run
    assert {"results.csv", "summary.md", "scores.png"} <= {p.name for p in out.iterdir()}
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_torch
def test_csv_rows_and_columns(tiny_run):
    out, _, module = tiny_run
    rows = _read_csv(out / "results.csv")
    assert list(rows[0]) == list(module.COLUMNS)
    assert [r["method"] for r in rows] == list(METHODS)
    for row in rows:
        assert row["noise"] == "symmetric 40%" and row["seed"] == "3"
        assert abs(float(row["realised_rate"]) - 0.4) < 0.1
        for column in ("roc_auc", "avg_precision", "test_acc", "retrain_test_acc"):
            assert 0.0 <= float(row[column]) <= 1.0, (column, row)
        assert 0.0 <= float(row["rate_estimate"]) <= 1.0
        assert float(row["wall_s"]) >= float(row["train_s"]) > 0
        assert math.isclose(
            float(row["gain"]), float(row["retrain_test_acc"]) - float(row["test_acc"])
        )
        flagged = int(row["flagged"])
        assert int(row["relabelled"]) == flagged
        if flagged:
            assert 0.0 <= float(row["precision"]) <= 1.0
            assert 0.0 <= float(row["relabelled_acc"]) <= 1.0
    by = {r["method"]: r for r in rows}
    assert (float(by["gr"]["beta"]), float(by["gr"]["lam"])) == (16.0, 1.0)  # suggest(0.4, 10)
    assert by["cce"]["beta"] == "" and "cleanlab" in by["cleanlab"]["rate_source"]


@needs_torch
def test_trainings_count(tiny_run):
    out, _, _ = tiny_run
    rows = {r["method"]: r for r in _read_csv(out / "results.csv")}
    assert float(rows["gr"]["trainings"]) == 1
    assert float(rows["cce"]["trainings"]) == 1
    assert float(rows["cleanlab"]["trainings"]) == 5
    assert float(rows["gr-est"]["trainings"]) == 1 + 2 / 4  # + the CCE warm-up's 2 of 4 epochs


@needs_torch
def test_cleanlab_was_called(tiny_run):
    _, calls, _ = tiny_run
    assert calls == [(300, (300, 10))]  # once per seed, on out-of-sample pred_probs of all


@needs_torch
def test_summary_table(tiny_run):
    out, _, module = tiny_run
    summary = (out / "summary.md").read_text()
    assert "## Detection: ROC AUC" in summary and "## Label correction" in summary
    assert "| method | symmetric 40% |" in summary
    for label in module.METHODS.values():
        assert re.search(rf"\| {re.escape(label)} \| \d+\.\d ± 0\.0 \|", summary), label
    assert "*true* noise rate" in summary  # says GR's setting uses the true rate
    assert "| realised rate |" in summary


@needs_torch
def test_detection_metrics_by_hand():
    from reference_training import label_issues

    flipped = np.array([False, False, True, True])
    found = label_issues.Detection(
        np.array([0.1, 0.5, 0.4, 0.9]), np.array([3, 1]), 0.5, "x", np.zeros(4, int), 0.0
    )
    metrics = label_issues.detection_metrics(flipped, found)
    assert metrics["roc_auc"] == 0.75 and metrics["precision"] == 0.5 and metrics["recall"] == 0.5
    clean = label_issues.detection_metrics(np.zeros(4, bool), found)
    assert math.isnan(clean["roc_auc"]) and math.isnan(clean["recall"])


@needs_torch
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--noise", "symmetric:1.0"], "noise rate in [0, 1)"),
        (["--noise", "symmetric:-0.1"], "noise rate in [0, 1)"),
        (["--noise", "uniform:0.2"], "symmetric:RATE or pair:RATE"),
        (["--noise", "pair:x"], "noise rate in [0, 1)"),
        (["--noise", "pair:0.4", "pair:0.4"], "given twice"),
        (["--seeds", "0", "0"], "distinct non-negative"),
        (["--seeds", "-1"], "distinct non-negative"),
        (["--seeds"], "expected at least one argument"),
        (["--epochs", "0"], "positive integer"),
        (["--epochs", "5", "--warmup-epochs", "6"], "at most --epochs"),
        (["--folds", "1"], "at least 2 folds"),
        (["--train-size", "50"], "at least 100 images"),
        (["--batch-size", "x"], "positive integer"),
    ],
)
def test_argument_errors(argv, message, capsys):
    from reference_training import label_issues

    with pytest.raises(SystemExit) as error:
        label_issues.parse_args(argv)
    assert error.value.code == 2
    assert message in capsys.readouterr().err


@needs_torch
def test_quick_defaults():
    from reference_training import label_issues

    args = label_issues.parse_args(["--quick", "--epochs", "8"])
    assert args.epochs == 8 and args.seeds == [0] and args.train_size == 400
    assert args.noise == [label_issues.Noise("symmetric", 0.4)]


@needs_torch
def test_estimated_rate_with_another_setting_trains_its_own_gr(tmp_path, monkeypatch):
    """When the warm-up estimate maps to another (beta, lam), gr-est is a run of its own (and a
    retraining of its own), counted as 1 training plus the warm-up's share."""
    pytest.importorskip("cleanlab")
    import emphasis
    from reference_training import label_issues

    original = emphasis.suggest

    def suggest(rate, num_classes):  # the true rate is exactly 0.4; an estimate never is
        return original(rate, num_classes) if rate == 0.4 else (2.0, 0.0)

    monkeypatch.setattr(emphasis, "suggest", suggest)
    argv = [*TINY, "--epochs", "2", "--warmup-epochs", "1", "--train-size", "200"]
    assert label_issues.main([*argv, "--out", str(tmp_path)]) == 0
    rows = {r["method"]: r for r in _read_csv(tmp_path / "results.csv")}
    assert (float(rows["gr-est"]["beta"]), float(rows["gr-est"]["lam"])) == (2.0, 0.0)
    assert float(rows["gr-est"]["trainings"]) == 1.5
    assert rows["gr-est"]["test_acc"] != rows["gr"]["test_acc"] or (
        rows["gr-est"]["roc_auc"] != rows["gr"]["roc_auc"]
    )
    assert "(2, 0)" in (tmp_path / "summary.md").read_text()


@needs_torch
def test_artefacts_rebuild_the_run(tiny_run):
    """The saved dynamics give back the CSV's ROC AUC and noise-rate estimate (what a cheap
    re-estimation and the plot start from)."""
    from sklearn.metrics import roc_auc_score

    import emphasis

    out, _, module = tiny_run
    saved = module.load_artefacts(module.artefact_path(out, "symmetric 40%", 3))
    rows = {r["method"]: r for r in _read_csv(out / "results.csv")}
    flipped = saved["flipped"]
    assert flipped.dtype == bool and flipped.shape == (300,)
    assert np.array_equal(saved["noisy"] != saved["clean"], flipped)
    assert saved["pred_probs"].shape == (300, 10)
    assert set(saved["dynamics"]) == set(module.SAVED_DYNAMICS)
    for method in ("gr", "cce"):
        dynamics = saved["dynamics"][method]
        assert math.isclose(
            roc_auc_score(flipped, dynamics.scores()), float(rows[method]["roc_auc"])
        )
        assert math.isclose(
            emphasis.estimate_noise_rate(dynamics).rate, float(rows[method]["rate_estimate"])
        )
    warmup = saved["dynamics"]["cce_warmup"]
    assert math.isclose(
        emphasis.estimate_noise_rate(warmup).rate, float(rows["gr-est"]["rate_estimate"])
    )
    # the warm-up is 2 of the 4 epochs: half the updates of the final dynamics
    assert np.array_equal(2 * warmup.count, saved["dynamics"]["cce"].count)


@needs_torch
def test_merge_adds_seeds(tiny_run, tmp_path, capsys):
    """A later run with another seed merges with the first: all rows, both commands, the mean
    over both seeds, the plot from the pooled artefacts; a seed in two sources is refused."""
    out, _, module = tiny_run
    later = tmp_path / "later"
    argv = [a if a != "3" else "5" for a in TINY]
    assert module.main([*argv, "--out", str(later)]) == 0
    merged = tmp_path / "merged"
    assert module.main(["--merge-from", str(out), str(later), "--out", str(merged)]) == 0
    rows = _read_csv(merged / "results.csv")
    assert [(r["seed"], r["method"]) for r in rows] == [(s, m) for s in ("3", "5") for m in METHODS]
    first = {(r["seed"], r["method"]): r for r in _read_csv(out / "results.csv")}
    assert all(rows[i] == first["3", m] for i, m in enumerate(METHODS))  # unchanged
    summary = (merged / "summary.md").read_text()
    assert "over 2 seeds (3, 5)" in summary
    assert summary.count("--seeds 3") == 1 and summary.count("--seeds 5") == 1
    aucs = [float(r["roc_auc"]) for r in rows if r["method"] == "gr"]
    mean = round(100 * float(np.mean(aucs)), 1)
    assert re.search(rf"\| GR, suggest\(true r\) \| {mean:.1f} ± ", summary)
    assert (merged / "scores.png").is_file()
    assert (merged / "artefacts" / "symmetric-40-seed5.npz").is_file()
    # the cheap re-estimation: every saved dynamics of both seeds, as the library has it now
    import emphasis

    again = _read_csv(merged / "reestimated.csv")
    assert [(r["seed"], r["dynamics"]) for r in again] == [
        (s, d) for s in ("3", "5") for d in module.REESTIMATED
    ]
    saved = module.load_artefacts(module.artefact_path(merged, "symmetric 40%", 5))
    row = next(r for r in again if r["seed"] == "5" and r["dynamics"] == "cce_warmup")
    estimate = emphasis.estimate_noise_rate(saved["dynamics"]["cce_warmup"])
    assert math.isclose(float(row["rate_estimate"]), estimate.rate)
    assert row["method"] == estimate.method
    assert "## Noise rate re-estimated from the saved dynamics (no training)" in summary
    with pytest.raises(ValueError, match=r"symmetric 40% seed 3 is in both"):
        module.main(["--merge-from", str(out), str(merged), "--out", str(tmp_path / "x")])
    with pytest.raises(
        FileNotFoundError, match=r"expected .*results\.csv \(the --out of a finished run"
    ):
        module.main(["--merge-from", str(tmp_path), "--out", str(tmp_path / "x")])


@needs_torch
def test_merge_refuses_other_settings(tiny_run, tmp_path):
    out, _, module = tiny_run
    other = tmp_path / "other"
    other.mkdir()
    rows = module.read_rows(out / "results.csv")
    for row in rows:
        row["seed"] = 7
    module.write_rows(other / "results.csv", rows)
    runs = json.loads((out / "runs.json").read_text())
    runs[0]["settings"]["epochs"] = 99
    (other / "runs.json").write_text(json.dumps(runs))
    with pytest.raises(ValueError, match=r"the runs differ in settings"):
        module.main(["--merge-from", str(out), str(other), "--out", str(tmp_path / "x")])


@needs_torch
def test_warmup_only_compares_the_estimates_on_the_warm_up(tiny_run, tmp_path):
    """--warmup-only trains the CCE warm-ups alone: the same dynamics as the full run's first
    epochs (same seed, labels and schedule), and the estimate beside both of its candidates."""
    import emphasis

    out, _, module = tiny_run
    argv = [*TINY, "--warmup-only", "--out", str(tmp_path)]
    assert module.main(argv) == 0
    (row,) = _read_csv(tmp_path / "warmup.csv")
    assert list(row) == list(module.WARMUP_COLUMNS)
    full = module.load_artefacts(module.artefact_path(out, "symmetric 40%", 3))
    alone = module.load_artefacts(module.artefact_path(tmp_path, "symmetric 40%", 3))
    np.testing.assert_array_equal(alone["noisy"], full["noisy"])
    warm, warm_full = alone["dynamics"]["cce_warmup"], full["dynamics"]["cce_warmup"]
    np.testing.assert_array_equal(warm.count, warm_full.count)  # 2 epochs of updates each
    np.testing.assert_allclose(warm.scores(), warm_full.scores(), rtol=1e-4, atol=1e-4)
    estimate = emphasis.estimate_noise_rate(warm)
    assert math.isclose(float(row["rate_estimate"]), estimate.rate)
    assert math.isclose(float(row["mixture_weight"]), estimate.mixture_weight)
    assert math.isclose(float(row["negative_margin_share"]), np.mean(warm.scores() > 0))
    assert row["method"] == estimate.method
    text = (tmp_path / "warmup.md").read_text()
    assert "| realised rate |" in text and "--warmup-only" in text
    assert (tmp_path / "warmup.png").read_bytes()[:4] == b"\x89PNG"
