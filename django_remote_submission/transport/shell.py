"""Quoting for remote POSIX shells: every argument is data, never code, never an option."""

from __future__ import annotations

import shlex
from collections.abc import Sequence


def quote(argv: Sequence[str]) -> str:
    """Quote arguments for a POSIX shell: every argument is data, never code."""
    return " ".join(shlex.quote(str(arg)) for arg in argv)


def remote_path(path: str) -> str:
    """``path`` in a form no command can read as an option: a relative path gets ``./``.

    A job's directory or file name is the user's to choose, and ``-delete`` or ``--help``
    are names like any other; as the first character of an argument, ``-`` would make
    ``find``, ``mkdir``, ``cd`` or ``tail`` take it for an option (``find -delete`` empties
    the login's home). ``./-delete`` is the same file and no option.

    >>> remote_path("-delete")
    './-delete'
    >>> remote_path("/tmp/x")
    '/tmp/x'
    >>> remote_path("")
    '.'
    """
    text = str(path)
    if not text:
        return "."
    if text.startswith("/") or text.startswith("./") or text == ".":
        return text
    return "./" + text


def qpath(path: str) -> str:
    """``remote_path`` quoted for a shell command line."""
    return shlex.quote(remote_path(path))
