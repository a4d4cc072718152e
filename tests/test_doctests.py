"""The examples in the docstrings of the core and of emphasis_torch run as written.

(emphasis_tf and emphasis_jax run theirs in tests/test_tf.py and tests/test_jax.py.)
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import emphasis


def _modules(package: str) -> list[str]:
    root = importlib.import_module(package)
    return [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules(root.__path__)]


@pytest.mark.parametrize("name", _modules("emphasis"))
def test_core_doctests(name):
    if name == "emphasis.__main__":
        pytest.skip("no module to import")
    failures, _ = doctest.testmod(importlib.import_module(name), verbose=False)
    assert failures == 0


@pytest.mark.torch
def test_torch_doctests():
    pytest.importorskip("torch")
    tried = 0
    for name in _modules("emphasis_torch"):
        result = doctest.testmod(importlib.import_module(name), verbose=False)
        assert result.failed == 0, name
        tried += result.attempted
    assert tried >= 6  # the functional forms and the Modules have examples
    assert emphasis.__name__ == "emphasis"
