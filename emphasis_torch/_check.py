"""emphasis_torch's runner for ``emphasis-check`` (announced through an entry point)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import emphasis_torch
from emphasis.check import Backend, Case, Runner, combos


def runner() -> Runner:
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


def _combos() -> list[tuple[str, str]]:
    # torch.compile specialises on every scheme and layout; two dtypes keep it to minutes.
    found = combos(("eager",)) + combos(("compile",), ("float64", "float32"))
    if torch.cuda.is_available():
        found += combos(("eager-cuda",)) + combos(("compile-cuda",), ("float32",))
    return found


def backends() -> list[Backend]:
    return [Backend("torch", "torch", _combos, runner)]
