"""The README's quick start runs as written (NumPy only)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs(capsys):
    text = README.read_text().split("## Quick start (NumPy core)", 1)[1]
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, "no python block in the README's quick start"
    namespace: dict = {}
    exec(compile(match.group(1), "README quick start", "exec"), namespace)
    assert namespace["grad"].shape == namespace["logits"].shape
    assert (namespace["beta"], namespace["lam"]) == (16.0, 1.0)
    printed = capsys.readouterr().out
    assert printed.startswith("0.333")  # the focus of GR(8, 0.5)


def test_label_noise_example_runs(capsys):
    text = README.read_text().split("Class-dependent noise has its own generators", 1)[1]
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, "no python block in the README's label-noise section"
    exec(compile(match.group(1), "README label noise", "exec"), {})
    first, second = capsys.readouterr().out.splitlines()
    assert first == "0.277"
    row = [float(x) for x in second.strip("[]").split()]
    assert abs(sum(row) - 1.0) < 1e-9 and row[2] == 0.0  # pair noise: only k -> k + 1
