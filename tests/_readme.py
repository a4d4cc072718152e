"""Run a code block of the README or a docs page as written: the first ```python block after a
heading or phrase."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def page_text(page: str = "README.md") -> str:
    """The text of ``page``: ``README.md`` or a path under ``docs/`` (``"docs/core.md"``)."""
    return (ROOT / page).read_text()


def run_python_block(after: str, page: str = "README.md") -> dict[str, Any]:
    """Execute the first python block of ``page`` after ``after``; its namespace."""
    text = page_text(page).split(after, 1)[1]
    match = re.search(r"```python\n(.*?)```", text, re.S)
    assert match, f"no python block in {page} after {after!r}"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), f"{page}: {after}", "exec"), namespace)
    return namespace
