"""Marks shared by the tests of the reference_training scripts."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest


def needs_torch(test: Any) -> Any:
    """A test that trains (or parses the arguments of) a script: torch, scikit-learn, tqdm."""
    test = pytest.mark.torch(test)
    missing = [n for n in ("torch", "sklearn", "tqdm") if importlib.util.find_spec(n) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")(test)
