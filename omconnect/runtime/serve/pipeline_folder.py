"""Loading the folder of pipelines ``serve`` runs: all of them valid, or none runs, at start;
at a reload (``read_pipeline_folder``), the valid files, and the problems of the others."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from omconnect.runtime.config.loader import LoadedPipeline, load_pipelines, pipeline_files
from omconnect.runtime.config.problems import Problem


class PipelineFolderError(ValueError):
    """The folder cannot be served. ``problems`` lists everything wrong, in every file;
    ``str(error)`` is one ``FILE:LINE: KEY: PROBLEM`` line per problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


def load_pipeline_folder(
    directory: str | Path, env: Mapping[str, str] | None = None
) -> list[LoadedPipeline]:
    """Load every pipeline file (``*.yaml``, ``*.yml``) directly inside ``directory``.

    Only the files themselves are checked (YAML, interpolation, the pipeline model and each
    connector's spec); connectors' own ``validate()`` may reach their systems, so it runs
    when the pipeline starts and a failure there shows as the pipeline's FAILED state.

    Raises:
        PipelineFolderError: ``directory`` is not a readable folder, or any file is invalid
            (every problem of every file is listed, secrets redacted).
    """
    contents = read_pipeline_folder(directory, env)
    if contents.problems:
        raise PipelineFolderError(
            [problem for problems in contents.problems.values() for problem in problems]
        )
    return contents.loaded


@dataclass
class FolderContents:
    """What a pipelines folder holds now: its valid pipelines, and the problems of every
    other pipeline file, by file path (as the problems name it)."""

    loaded: list[LoadedPipeline] = field(default_factory=list)
    problems: dict[str, list[Problem]] = field(default_factory=dict)


def read_pipeline_folder(
    directory: str | Path, env: Mapping[str, str] | None = None
) -> FolderContents:
    """Load every pipeline file of ``directory``, keeping the valid ones and the problems of
    the others (a file that reuses an earlier file's pipeline name is one of them).

    Raises:
        PipelineFolderError: ``directory`` is not a readable folder.
    """
    folder = Path(directory)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a directory"
        raise PipelineFolderError([Problem(str(folder), None, "", f"the pipelines folder {what}")])
    try:
        files = pipeline_files(folder)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PipelineFolderError(
            [Problem(str(folder), None, "", f"cannot list: {reason}")]
        ) from None
    loaded, errors = load_pipelines(files, env)
    contents = FolderContents(loaded)
    for error in errors:
        for problem in error.problems:
            contents.problems.setdefault(problem.file, []).append(problem)
    return contents
