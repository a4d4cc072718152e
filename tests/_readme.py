"""Run a README code block as written: the first ```python block after a heading or phrase."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"


def run_python_block(after: str) -> dict[str, Any]:
    """Execute the first python block of the README after ``after``; its namespace."""
    text = README.read_text().split(after, 1)[1]
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, f"no python block in the README after {after!r}"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), f"README: {after}", "exec"), namespace)
    return namespace
