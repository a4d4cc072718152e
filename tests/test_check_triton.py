"""``emphasis.check``'s fused-kernel backend (``torch[triton]``) and its edge cases.

The check's own machinery (edge cases, the mode filter, skipped backends) is tested
with fakes; the Triton kernels themselves run here on a handful of edge cases, in
Triton's interpreter without a GPU (tests/conftest.py sets TRITON_INTERPRET=1 before
Triton is imported) or compiled on CUDA. Each interpreted case costs about 0.1 s.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import numpy as np
import pytest

from emphasis import check


def test_edge_cases_hold_the_rows_a_fused_kernel_must_get_right():
    found = check.edge_cases()
    assert {case.logits.shape[1] for case in found} == set(check.EDGE_WIDTHS)
    assert {repr(case.scheme) for case in found} == {repr(s) for s in check.EDGE_SCHEMES}
    for case in found:
        assert case.axis == 1 and case.labels[-1] == case.ignore_index
        if case.logits.shape[1] >= 2:
            rows = np.arange(4)
            z_label = case.logits[rows, case.labels[:4]]
            assert np.isneginf(np.delete(case.logits[0], case.labels[0])).all()  # p = 1
            assert z_label[2] == 60.0 and np.isneginf(z_label[3])  # p -> 1, p = 0


def _fake(name, module, modes, **kwargs):
    def runner():
        def run(case, dtype, mode):
            import emphasis

            return emphasis.loss_and_grad(
                case.logits, case.labels, case.scheme, case.reduction, axis=case.axis
            )

        return run

    return check.Backend(name, module, lambda: [(m, "float64") for m in modes], runner, **kwargs)


def test_modes_filter_skips_and_edge_cases(monkeypatch):
    announced = [
        _fake("fake", "numpy", ["eager", "other"], edge_cases=True),
        _fake("absent", "no_such_module_for_emphasis", ["eager"]),
    ]
    monkeypatch.setattr(check, "discover_backends", lambda *_: (announced, []))
    monkeypatch.setattr(check, "KERAS_CHILD_BACKENDS", ())
    monkeypatch.setattr(check, "EDGE_WIDTHS", (1, 17))  # keep the NumPy reference quick
    messages: list[str] = []
    results = check.run(count=2, progress=messages.append, modes=["eager"])
    assert [(r.backend, r.mode) for r in results] == [("fake", "eager")]
    assert results[0].ok and results[0].cases == 2 + 2 * len(check.EDGE_SCHEMES)
    assert "skipped absent: no_such_module_for_emphasis is not installed" in messages
    (plain,) = check.run(count=2, modes=["other"], edge=False)
    assert plain.mode == "other" and plain.cases == 2


needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None or importlib.util.find_spec("torch") is None,
    reason="needs triton and torch",
)


@needs_triton
def test_torch_announces_the_triton_backend_with_its_modes():
    import torch

    from emphasis_torch._check import backends

    (triton_backend,) = [b for b in backends() if b.name == "torch[triton]"]
    assert triton_backend.module == "triton" and triton_backend.edge_cases
    modes = {mode for mode, _ in triton_backend.combos()}
    assert modes == ({"cuda", "compile-cuda"} if torch.cuda.is_available() else {"interpret"})
    assert "float64" not in {dtype for _, dtype in triton_backend.combos()}


@needs_triton
def test_the_triton_kernels_agree_with_the_core_on_the_edge_cases():
    import torch

    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("no GPU, and Triton was imported without TRITON_INTERPRET=1")
    from emphasis_torch._check import backends

    (announced,) = [b for b in backends() if b.name == "torch[triton]"]
    mode = "cuda" if torch.cuda.is_available() else "interpret"
    backend = dataclasses.replace(announced, combos=lambda: [(mode, "float32"), (mode, "bfloat16")])
    # One case per width, the schemes rotating: C = 1, 2, 16, 17, 33 and 4097.
    every = check.edge_cases()
    per_width = len(check.EDGE_SCHEMES)
    chosen = [every[i * per_width + i % per_width] for i in range(len(check.EDGE_WIDTHS))]
    results = check._run_backend(backend, chosen, None)
    assert [(r.mode, r.dtype) for r in results] == [(mode, "float32"), (mode, "bfloat16")]
    for result in results:
        assert result.ok, (result.error, result.worst, result.max_ratio)
        assert result.cases == len(chosen)
