"""Griffe extension for the docs site: the RST markup of the docstrings, as Markdown.

The docstrings are Google style with a little RST (``.. math::`` blocks and roles such as
``:func:`name```); mkdocstrings renders Markdown, so this rewrites those two forms before
rendering. The docstrings themselves are unchanged (``help()`` and the IDEs show RST).
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

# ".. math::" and its indented body (up to the first line indented less, or the end).
_MATH = re.compile(r"^( *)\.\. math::\n((?:\1 +.*\n|\s*\n)+)", re.M)
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc|py:\w+):`~?([^`]+)`")


def _math(match: re.Match[str]) -> str:
    indent, body = match.group(1), textwrap.dedent(match.group(2)).strip("\n")
    return f"{indent}$$\n{textwrap.indent(body, indent)}\n{indent}$$\n\n"


def markdown(text: str) -> str:
    """``text`` with its ``.. math::`` blocks as ``$$`` blocks and its roles as code."""
    return _ROLE.sub(r"`\1`", _MATH.sub(_math, text + "\n")).rstrip("\n")


class RstMarkup(griffe.Extension):
    """Rewrite each object's docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
