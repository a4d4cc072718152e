"""The README's quick start and the core page's label-noise example run as written (NumPy only)."""

from __future__ import annotations

from _readme import run_python_block


def test_quick_start_runs(capsys):
    namespace = run_python_block("## Quick start (NumPy core)")
    assert namespace["grad"].shape == namespace["logits"].shape
    assert (namespace["beta"], namespace["lam"]) == (16.0, 1.0)
    printed = capsys.readouterr().out
    assert printed.startswith("0.333")  # the focus of GR(8, 0.5)


def test_label_noise_example_runs(capsys):
    run_python_block("Class-dependent noise has its own generators", "docs/core.md")
    first, second = capsys.readouterr().out.splitlines()
    assert first == "0.277"
    row = [float(x) for x in second.strip("[]").split()]
    assert abs(sum(row) - 1.0) < 1e-9 and row[2] == 0.0  # pair noise: only k -> k + 1
