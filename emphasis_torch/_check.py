"""emphasis_torch's runners for ``emphasis-check`` (announced through an entry point).

Two backends: ``torch`` (the functions as a user calls them: torch ops on CPU, the
Triton kernels on CUDA when Triton is installed) and ``torch[triton]`` (``kernel="triton"``
insisted on, so the fused kernels are what is compared: in Triton's interpreter on CPU
tensors, mode ``interpret``, when there is no GPU; compiled for the device, modes
``cuda`` and ``compile-cuda``, when there is one). ``torch[triton]`` is skipped with a
message when Triton is not installed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import torch

import emphasis_torch
from emphasis.check import Backend, Case, Runner, combos

#: the dtypes the Triton kernels compute (float64 stays on the torch ops)
TRITON_DTYPES = ("float32", "float16", "bfloat16")


def runner(kernel: str = "auto") -> Runner:
    def run(case: Case, dtype: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
        function = getattr(emphasis_torch, f"{case.scheme.name}_loss")
        device = "cuda" if mode.endswith("cuda") else "cpu"
        logits = np.moveaxis(case.logits, case.axis, 1) if case.logits.ndim > 1 else case.logits
        z = torch.tensor(logits, dtype=getattr(torch, dtype), device=device, requires_grad=True)
        y = torch.tensor(case.labels, device=device)

        def loss_of(z: Any, y: Any) -> Any:
            return function(
                z,
                y,
                reduction=case.reduction,
                ignore_index=case.ignore_index,
                kernel=kernel,
                **case.scheme.kwargs(),
            )

        if mode.startswith("compile"):
            # Each case is a new specialisation: start afresh so that the recompile limit
            # never silently sends a case back to eager; fullgraph proves there is no break.
            torch._dynamo.reset()
            loss_of = torch.compile(loss_of, fullgraph=True)
        loss = loss_of(z, y)
        loss.backward(torch.ones_like(loss))
        assert z.grad is not None
        grad = z.grad.detach().to(torch.float64).cpu().numpy()
        if case.logits.ndim > 1:
            grad = np.moveaxis(grad, 1, case.axis)
        return loss.detach().to(torch.float64).cpu().numpy(), grad

    return run


def triton_runner() -> Runner:
    """The runner with ``kernel="triton"``; on a machine without CUDA, in the interpreter.

    Triton reads ``TRITON_INTERPRET=1`` when it is imported, which
    :func:`emphasis.check.load_triton_first` arranges before any backend is discovered.
    """
    if not torch.cuda.is_available():
        if "triton" not in sys.modules:
            os.environ.setdefault("TRITON_INTERPRET", "1")
        loaded = sys.modules.get("emphasis_torch._triton")
        if os.environ.get("TRITON_INTERPRET") != "1" or (
            loaded is not None and not getattr(loaded, "INTERPRETED", False)
        ):
            raise RuntimeError(
                "no CUDA device, and Triton was imported without TRITON_INTERPRET=1: set it "
                "before Triton is imported (python -m emphasis.check does) to run the kernels "
                "in Triton's interpreter"
            )
    return runner("triton")


def _combos() -> list[tuple[str, str]]:
    # torch.compile specialises on every scheme and layout; two dtypes keep it to minutes.
    found = combos(("eager",)) + combos(("compile",), ("float64", "float32"))
    if torch.cuda.is_available():
        found += combos(("eager-cuda",)) + combos(("compile-cuda",), ("float32",))
    return found


def _triton_combos() -> list[tuple[str, str]]:
    if torch.cuda.is_available():
        return combos(("cuda",), TRITON_DTYPES) + combos(("compile-cuda",), ("float32",))
    return combos(("interpret",), TRITON_DTYPES)


def backends() -> list[Backend]:
    return [
        # The default run: eager on CPU (and CUDA); torch.compile takes minutes (--full).
        Backend("torch", "torch", _combos, runner, main_modes=("eager", "eager-cuda")),
        # The kernels compiled on a GPU; Triton's interpreter on CPU is slow (--full).
        Backend(
            "torch[triton]",
            "triton",
            _triton_combos,
            triton_runner,
            edge_cases=True,
            main_modes=("cuda",),
        ),
    ]
