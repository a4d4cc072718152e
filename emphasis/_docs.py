"""Argument text shared by several docstrings, written once and filled in at import."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["fill_docstring"]

F = TypeVar("F", bound=Callable[..., object])


def fill_docstring(placeholder: str, text: str) -> Callable[[F], F]:
    """A decorator that replaces the line ``placeholder`` of a docstring by ``text``.

    ``placeholder`` is matched with its indentation and newline, e.g.
    ``"        {SELECTION_ARGS}\\n"``. Under ``python -OO`` docstrings are None and the
    decorator does nothing.

    >>> @fill_docstring("    {ARGS}\\n", "    x: a number.\\n")
    ... def f(x):
    ...     '''Args:
    ...     {ARGS}
    ...     '''
    >>> print(f.__doc__.strip())
    Args:
        x: a number.
    """

    def decorate(function: F) -> F:
        if function.__doc__:
            function.__doc__ = function.__doc__.replace(placeholder, text)
        return function

    return decorate
