"""Packaging promises: the core imports no framework, adapters name their extra, the demo runs."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("MPLBACKEND", "Agg")
    return subprocess.run(
        [sys.executable, *(["-c", code] if code else []), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_core_imports_no_framework() -> None:
    code = (
        "import emphasis, sys; "
        "bad = [m for m in ('torch', 'tensorflow', 'jax', 'keras') if m in sys.modules]; "
        "assert not bad, bad"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr


ADAPTERS = ("emphasis_torch", "emphasis_tf", "emphasis_jax")


@pytest.mark.parametrize("path", sorted((ROOT / "emphasis").glob("*.py")), ids=lambda p: p.name)
def test_core_names_no_adapter(path: Path) -> None:
    """No import of an adapter in the core, not even by string (docstrings may mention them)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [] if id(node) in docstrings else [node.value]
        else:
            continue
        for name in names:
            assert not any(a in name for a in ADAPTERS), f"{path.name}:{node.lineno}: {name!r}"


def test_check_discovers_adapters_through_entry_points() -> None:
    from importlib.metadata import entry_points

    from emphasis.check import ENTRY_POINT_GROUP

    found = {e.name: e.value for e in entry_points(group=ENTRY_POINT_GROUP)}
    assert found == {
        "torch": "emphasis_torch._check:backends",
        "keras": "emphasis_tf._check:backends",
        "jax": "emphasis_jax._check:backends",
    }


@pytest.mark.parametrize(
    ("package", "blocked", "extra"),
    [
        ("emphasis_torch", ("torch",), "emphasis[torch]"),
        ("emphasis_tf", ("tensorflow",), "emphasis[tf]"),
        ("emphasis_tf", ("keras",), "emphasis[tf]"),
        ("emphasis_jax", ("jax",), "emphasis[jax]"),
    ],
)
def test_adapter_without_framework_names_extra(
    package: str, blocked: tuple[str, ...], extra: str
) -> None:
    # A None entry in sys.modules makes `import name` raise ImportError, as if not installed.
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "try:\n"
        f"    import {package}\n"
        "except ImportError as err:\n"
        "    assert isinstance(err.__cause__, ImportError), repr(err.__cause__)\n"
        "    print('MESSAGE:', err)\n"
        "else:\n"
        "    raise SystemExit('import succeeded although the framework was blocked')\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MESSAGE:" in result.stdout
    assert f'pip install "{extra}"' in result.stdout


@pytest.mark.parametrize(
    ("package", "framework"),
    [("emphasis_torch", "torch"), ("emphasis_tf", "keras"), ("emphasis_jax", "jax")],
)
def test_adapter_imports_without_docstrings(package: str, framework: str) -> None:
    # python -OO strips docstrings; the adapters that fill shared argument text into their
    # docstrings must still import.
    pytest.importorskip(framework)
    result = _run("", "-OO", "-c", f"import {package}")
    assert result.returncode == 0, result.stderr


def test_package_data_marks_typed() -> None:
    for package in ("emphasis", "emphasis_torch", "emphasis_tf", "emphasis_jax"):
        assert (ROOT / package / "py.typed").is_file(), package


def test_figure1_demo_runs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    emphasis = pytest.importorskip("emphasis")
    out = tmp_path / "fig.png"
    result = _run("", str(ROOT / "reference_training" / "figure1.py"), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000
    # The table carries every scheme's focus.
    for scheme in (
        emphasis.CCE(),
        emphasis.MAE(),
        emphasis.GCE(q=0.5),
        emphasis.GR(beta=8.0, lam=0.5),
        emphasis.GR(beta=12.0, lam=1.0),
        emphasis.GR(beta=12.0, lam=2.0),
    ):
        assert f"{float(scheme.focus):.4f}" in result.stdout, (scheme, result.stdout)
    for focus in ("0.0000", "0.5000", "0.3333", "0.6667"):
        assert focus in result.stdout, result.stdout


def test_figure1_help() -> None:
    result = _run("", str(ROOT / "reference_training" / "figure1.py"), "--help")
    assert result.returncode == 0, result.stderr
    assert "--out" in result.stdout
