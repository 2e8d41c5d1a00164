"""File discovery: which files a source's ``path`` option names, in the order they are read.

``path`` is a file, a directory (its files, not its subdirectories) or a glob pattern
(``data/*.csv``, ``data/**/*.csv`` for every depth). Every file is named by a *partition
string*: its path spelled the way the option was spelled (relative stays relative), so the
offsets stored for a pipeline do not depend on the working directory's absolute path.

Hidden files (a name starting with ``.``) are never matched: sinks write their temporary
files under such names, so a source reading a sink's output never sees a half-written file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True, order=True)
class MatchedFile:
    """One file to read. Ordered by ``name``, the order in which a source reads them.

    Attributes:
        name: the partition string (the path spelled like the configured option).
        path: where to open it.
    """

    name: str
    path: Path


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` holds glob characters."""
    return any(c in _GLOB_CHARACTERS for c in pattern)


def search_root(pattern: str) -> Path:
    """The directory that must exist for ``pattern`` to ever match anything.

    For a glob it is the longest leading part without glob characters; for a plain path, the
    path itself when it is a directory, else its parent.
    """
    path = Path(pattern)
    if is_glob(pattern):
        fixed: list[str] = []
        for part in path.parts:
            if is_glob(part):
                break
            fixed.append(part)
        return Path(*fixed) if fixed else Path(".")
    if path.is_dir():
        return path
    return path.parent


def match_files(pattern: str) -> list[MatchedFile]:
    """The files ``pattern`` names now, sorted by partition string.

    A pattern that matches nothing gives an empty list (the caller decides whether that is an
    error: an empty directory may simply have nothing to read yet).
    """
    path = Path(pattern)
    if is_glob(pattern):
        root = search_root(pattern)
        relative = Path(*path.parts[len(root.parts) :]) if root != Path(".") else path
        prefix = _spelled_prefix(pattern, root)
        found = [
            MatchedFile(prefix + p.relative_to(root).as_posix(), p)
            for p in root.glob(relative.as_posix())
            if p.is_file() and not _is_hidden(p.relative_to(root))
        ]
    elif path.is_dir():
        prefix = pattern if pattern.endswith(("/", os.sep)) else pattern + "/"
        found = [
            MatchedFile(prefix + p.name, p)
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".")
        ]
    elif path.is_file():
        found = [MatchedFile(pattern, path)]
    else:
        found = []
    return sorted(found)


def _spelled_prefix(pattern: str, root: Path) -> str:
    """How ``pattern`` spells ``root``, with a trailing slash (empty for the current dir)."""
    if root == Path("."):
        return "./" if pattern.startswith("./") else ""
    cut = len(pattern)
    for i, c in enumerate(pattern):
        if c in _GLOB_CHARACTERS:
            cut = i
            break
    head = pattern[:cut]
    # The fixed head may end inside a partial name ("data/part-*.csv"): keep whole directories.
    return head[: max(head.rfind("/"), head.rfind(os.sep)) + 1]


def _is_hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
