"""What is wrong with a pipeline file, said so a person can act on it.

A ``Problem`` prints as ``FILE:LINE: KEY.PATH: PROBLEM (did you mean "X"?)``. A
``PipelineConfigError`` carries every problem found in one file, sorted by line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

KeyPath = tuple[str | int, ...]
"""Where a value sits in the document: mapping keys and sequence indexes from the root."""


def format_key_path(path: KeyPath) -> str:
    """``("source", "tables", 0)`` -> ``"source.tables[0]"``; the root is ``""``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


_KEY_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def parse_key_path(text: str) -> KeyPath:
    """``"tables[0].name"`` -> ``("tables", 0, "name")``: the inverse of ``format_key_path``
    (for keys such as ``ConfigError.key`` that connectors report as text)."""
    return tuple(int(index) if index else name for index, name in _KEY_PATH_PART.findall(text))


@dataclass(frozen=True)
class Issue:
    """A problem located by key path only; the loader turns it into a ``Problem``.

    ``path`` is where the problem is; ``message`` says what is wrong and what was expected;
    ``suggestion`` is the likely intended value, if there is an obvious one; ``line`` overrides
    the line the path was written on (a duplicate key points at its second occurrence).
    """

    path: KeyPath
    message: str
    suggestion: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Problem:
    """One problem in a pipeline file.

    ``line`` is 1-based (None when the file could not be read at all); ``key`` is the dotted key
    path (``source.tables[0]``), ``(yaml)`` for syntax errors, or ``""`` for the whole file.
    """

    file: str
    line: int | None
    key: str
    message: str
    suggestion: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        if self.suggestion is not None:
            text += f' (did you mean "{self.suggestion}"?)'
        return text


class PipelineConfigError(ValueError):
    """A pipeline file is invalid. ``problems`` lists everything found, sorted by line;
    ``str(error)`` is one line per problem."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(
            problems,
            key=lambda p: (p.file, p.line is not None, p.line or 0, p.key, p.message),
        )
        super().__init__("\n".join(str(problem) for problem in self.problems))

    @property
    def file(self) -> str:
        """The file the problems are in (the first one's, when several files are involved)."""
        return self.problems[0].file if self.problems else ""
