"""The GPU session's scripts run here, on CPU, at tiny sizes (nothing is timed or compared).

benchmarks/gpu_session.sh runs on a machine with a GPU; its stages are
benchmarks/bench_torch.py and benchmarks/bench_resnet_step.py, whose CPU paths are
exercised here so that the one GPU run does not fail on a typo.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys

import pytest

if importlib.util.find_spec("torch") is None:
    pytest.skip("needs torch", allow_module_level=True)

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_torch_quick_rows_and_json(tmp_path):
    bench = _load("bench_torch")
    out = tmp_path / "bench.json"
    rows = bench.main(["--quick", "--no-compile", "--device", "cpu", "--json", str(out)])
    assert {(r["shape"], r["function"]) for r in rows} == {
        (shape.split(":")[0], name) for shape in bench.QUICK_SHAPES for name in ("ce", "gr")
    }
    assert all(r["ms"] > 0 and r["gb_per_s"] > 0 for r in rows)
    assert json.loads(out.read_text())["rows"] == rows
    assert bench.parse_shape("8192x128256:bfloat16")[1] is bench.torch.bfloat16
    assert bench.parse_shape("8x150x256x256") == ((8, 150, 256, 256), bench.torch.float32)


def test_bench_resnet_step_quick(tmp_path):
    result = _load("bench_resnet_step").main(["--quick", "--device", "cpu"])
    assert result["ms_grloss"] > 0 and result["ms_cross_entropy"] > 0


def test_gpu_session_script_names_every_stage():
    script = (ROOT / "benchmarks" / "gpu_session.sh").read_text()
    for stage in ("stage tests", "stage check-eager", "stage check-compile", "stage bench"):
        assert stage in script
    assert "bench_resnet_step.py" in script and "TRITON_INTERPRET=0" in script
