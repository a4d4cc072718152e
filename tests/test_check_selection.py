"""``emphasis-check``'s selection: the default runs the main modes, ``--full`` the matrix.

Fakes only (no framework runs): the selection logic, the found/skipped report and the
refusal of bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.metadata

import pytest

import emphasis
from emphasis import check


def _fake(name, module, modes, main_modes=(), dtypes=check.DTYPES, **kwargs):
    def runner():
        def run(case, dtype, mode):
            return emphasis.loss_and_grad(
                case.logits, case.labels, case.scheme, case.reduction, axis=case.axis
            )

        return run

    return check.Backend(
        name, module, lambda: check.combos(modes, dtypes), runner, main_modes=main_modes, **kwargs
    )


def test_select_default_main_modes_full_matrix_and_named_modes():
    matrix = check.combos(("eager", "compile"))
    assert check.select(matrix, ("eager",), full=False) == [
        ("eager", "float64"),
        ("eager", "float32"),
    ]
    assert check.select(matrix, ("eager",), full=True) == matrix
    # --modes picks from the whole matrix, at every dtype, with or without --full
    assert check.select(matrix, ("eager",), full=False, modes=["compile"]) == check.combos(
        ("compile",)
    )
    assert check.select(matrix, (), full=False) == []


@pytest.fixture
def fakes(monkeypatch):
    announced = [
        _fake("fast", "numpy", ["eager", "slow"], main_modes=("eager",)),
        _fake("fused", "numpy", ["interpret"], dtypes=("float32",), edge_cases=True),
    ]
    monkeypatch.setattr(
        check,
        "discover_backends",
        lambda *_: (announced, ["framework: framework is not installed"]),
    )
    monkeypatch.setattr(check, "KERAS_CHILD_BACKENDS", ())
    monkeypatch.setattr(check, "EDGE_WIDTHS", (1, 17))  # keep the NumPy reference quick
    return announced


def test_default_runs_the_main_modes_only(fakes):
    messages: list[str] = []
    results = check.run(count=2, progress=messages.append, full=False)
    assert [(r.backend, r.mode, r.dtype) for r in results] == [
        ("fast", "eager", "float64"),
        ("fast", "eager", "float32"),
    ]
    assert all(r.ok and r.cases == 2 for r in results)
    assert "skipped fused: only with --full" in messages


def test_full_runs_the_whole_matrix(fakes):
    results = check.run(count=2, full=True)
    assert [(r.backend, r.mode, r.dtype) for r in results] == [
        *[("fast", m, d) for m in ("eager", "slow") for d in check.DTYPES],
        ("fused", "interpret", "float32"),
    ]
    assert results[-1].cases == 2 + 2 * len(check.EDGE_SCHEMES)  # edge cases with --full


def test_report_names_found_and_missing_backends_first(fakes, capsys):
    assert check.main(["--cases", "1"]) == 0
    err = capsys.readouterr().err.splitlines()
    report = [line for line in err if not line.startswith("checking")]
    first_check = next(i for i, line in enumerate(err) if line.startswith("checking"))
    assert all(err.index(line) < first_check for line in report)  # the report comes first
    assert "skipped framework: framework is not installed" in report
    assert "skipped fused: only with --full" in report
    assert any(
        line.startswith("found fast (") and "eager at float64, float32" in line for line in report
    )


def test_report_says_why_a_keras_child_is_skipped(monkeypatch):
    real = check.importlib.util.find_spec
    monkeypatch.setattr(check, "discover_backends", lambda *_: ([], []))
    monkeypatch.setattr(
        check.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "jax" else real(name, *a),
    )
    messages: list[str] = []
    started = []
    monkeypatch.setattr(
        check, "start_keras_subprocess", lambda name, *a: started.append(name) or (lambda: [])
    )
    check.run(backends=["keras[jax]", "keras[torch]"], progress=messages.append, full=False)
    has_keras = real("keras") is not None
    if has_keras:
        assert "skipped keras[jax]: jax is not installed" in messages
    else:
        assert "skipped keras[jax]: keras is not installed" in messages
    assert "jax" not in started


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--backends", "torch,pytorch"], "'pytorch'"),
        (["--modes", "eager,jitt"], "'jitt'"),
        (["--cases", "0"], "'0'"),
        (["--cases", "many"], "'many'"),
        (["--fulll"], "--fulll"),
    ],
)
def test_bad_arguments_are_refused_by_name(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        check.main(argv)
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


def test_help_describes_the_default_and_full(capsys):
    with pytest.raises(SystemExit):
        check.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--full" in text and "main modes" in text and "float64 and float32" in text


def test_backends_accepts_a_third_party_entry_point(monkeypatch):
    """A backend announced by another package's entry point can be chosen by name."""
    entry = importlib.metadata.EntryPoint(
        "mxnet", "mxnet_adapter._check:backends", check.ENTRY_POINT_GROUP
    )
    real = importlib.metadata.entry_points

    def entry_points(**kwargs):
        found = list(real(**kwargs))
        return [*found, entry] if kwargs.get("group") == check.ENTRY_POINT_GROUP else found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert check._backend_names("torch,mxnet,mxnet[gpu]") == ["torch", "mxnet", "mxnet[gpu]"]
    with pytest.raises(argparse.ArgumentTypeError, match="'pytorch'"):
        check._backend_names("pytorch")
