"""What a re-read of the pipelines folder changes: the plan ``Supervisor.apply_folder`` runs.

A pipeline whose file is new starts; one whose configuration changed (the validated model,
interpolated values included, compared as a whole) restarts with it; one whose file is gone
stops. A pipeline whose file no longer validates keeps running as it was, and the file's
problems are kept for it. Nothing else is touched: a file saved again unchanged restarts
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from omconnect.runtime.config.loader import LoadedPipeline
from omconnect.runtime.serve.pipeline_folder import FolderContents


@dataclass
class FolderChanges:
    """The changes from the supervised pipelines to a folder's contents."""

    added: list[LoadedPipeline] = field(default_factory=list)
    changed: list[LoadedPipeline] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    """Pipeline names."""
    kept: dict[str, str] = field(default_factory=dict)
    """Pipeline name -> the problems (one ``FILE:LINE: KEY: PROBLEM`` a line) of its file,
    which no longer validates: the pipeline runs on as it was."""
    refused: dict[str, str] = field(default_factory=dict)
    """File -> its problems, for invalid files of no supervised pipeline."""

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def plan_folder_changes(
    current: Mapping[str, LoadedPipeline], contents: FolderContents
) -> FolderChanges:
    """The changes that make ``current`` (by pipeline name) what ``contents`` holds."""
    changes = FolderChanges()
    problems = {file: "\n".join(map(str, found)) for file, found in contents.problems.items()}
    # A supervised pipeline whose file is invalid now runs on as it was.
    for name, loaded in current.items():
        text = problems.pop(str(loaded.path), None)
        if text is not None:
            changes.kept[name] = text
    changes.refused = problems
    wanted = {loaded.config.name: loaded for loaded in contents.loaded}
    for name, loaded in wanted.items():
        running = current.get(name)
        if name in changes.kept:
            # Another file now claims the name of a pipeline whose own file is invalid.
            changes.refused[str(loaded.path)] = f"{loaded.path}: pipeline {name!r} kept as it was"
        elif running is None:
            changes.added.append(loaded)
        elif running.config != loaded.config or running.path != loaded.path:
            changes.changed.append(loaded)
    changes.removed = [name for name in current if name not in wanted and name not in changes.kept]
    return changes
