"""Loading the folder of pipelines ``serve`` runs: all of them valid, or none runs."""

from __future__ import annotations

from collections.abc import Mapping
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
    if errors:
        raise PipelineFolderError([problem for error in errors for problem in error.problems])
    return loaded
