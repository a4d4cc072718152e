"""Every ```python block of README.md and of the docs pages runs as written.

The blocks of one page run in order in one namespace, so a page can build up an example. A
page whose blocks import a framework that is not installed skips. Code that is not meant to
run (shell commands, output, fragments) is written as ```text, ```bash, ```sh or ```console.
A block that another test runs with its own checks is marked by an HTML comment just above
it, ``<!-- docs-test: skip (...) -->``, and left to that test. docs/recipes/ has its own tests.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _readme import BLOCK, ROOT, code_of

# An import of one of these in a page's blocks: the page needs the packages on the right.
FRAMEWORKS = {
    "torch": ("torch",),
    "emphasis_torch": ("torch",),
    "tensorflow": ("tensorflow", "keras"),
    "keras": ("keras",),
    "emphasis_tf": ("keras",),
    "jax": ("jax",),
    "optax": ("optax",),
    "flax": ("flax",),
    "emphasis_jax": ("jax", "optax"),
    "sklearn": ("sklearn",),
}
IMPORT = re.compile(r"^\s*(?:import|from)\s+(\w+)", re.M)


def _pages() -> list[Path]:
    docs = ROOT / "docs"
    pages = [ROOT / "README.md"]
    pages += sorted(p for p in docs.rglob("*.md") if "recipes" not in p.relative_to(docs).parts)
    return pages


def blocks(page: Path) -> list[str]:
    """The ```python blocks of ``page``, in order (indented ones of a list item too)."""
    text = page.read_text()
    return [code_of(m) for m in BLOCK.finditer(text) if not _skipped(text, m)]


def _skipped(text: str, block: re.Match[str]) -> bool:
    """Whether the comments just above ``block`` (blank lines between) say docs-test: skip."""
    for line in reversed(text[: block.start()].splitlines()):
        if line.strip() and not re.fullmatch(r"\s*<!--.*-->\s*", line):
            return False
        if "docs-test: skip" in line:
            return True
    return False


PAGES = [p for p in _pages() if blocks(p)]


def test_some_pages_have_python():
    assert ROOT / "README.md" in PAGES and len(PAGES) >= 5


def test_a_skip_comment_skips_only_its_block():
    jax_page = ROOT / "docs" / "jax.md"
    assert "<!-- docs-test: skip" in jax_page.read_text()
    assert not any("nnx" in block for block in blocks(jax_page))  # the Flax example
    assert any("value_and_grad" in block for block in blocks(jax_page))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page: Path, capsys, monkeypatch, tmp_path):
    code = blocks(page)
    for module in sorted({m for block in code for m in IMPORT.findall(block)}):
        for needed in FRAMEWORKS.get(module, ()):
            pytest.importorskip(needed)
    monkeypatch.chdir(tmp_path)  # a block that saves a file writes it here
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, block in enumerate(code):
        exec(compile(block, f"{page.relative_to(ROOT)} [python block {i + 1}]", "exec"), namespace)
