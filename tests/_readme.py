"""Run a code block of the README or a docs page as written: the first ```python block after a
heading or phrase."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: A ```python fence; it may be indented (a block inside a list item), and its code is then
#: dedented by as much (:func:`code_of`).
BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


def code_of(block: re.Match[str]) -> str:
    """The code of a :data:`BLOCK` match, as written (dedented)."""
    return textwrap.dedent(block.group(2))


def page_text(page: str = "README.md") -> str:
    """The text of ``page``: ``README.md`` or a path under ``docs/`` (``"docs/core.md"``)."""
    return (ROOT / page).read_text()


def run_python_block(after: str, page: str = "README.md") -> dict[str, Any]:
    """Execute the first python block of ``page`` after ``after``; its namespace."""
    text = page_text(page).split(after, 1)[1]
    match = BLOCK.search(text)
    assert match, f"no python block in {page} after {after!r}"
    namespace: dict[str, Any] = {}
    exec(compile(code_of(match), f"{page}: {after}", "exec"), namespace)
    return namespace
