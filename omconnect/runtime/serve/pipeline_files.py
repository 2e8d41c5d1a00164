"""Pipeline files sent over the API: read from YAML or JSON, validated as ``omconnect validate``
validates a file, and written atomically into the pipelines folder.

A body is checked as a file would be: it is written to a hidden temporary file in the folder
(``.omconnect-*.tmp``, which no folder scan picks up, and beside which ``${file:...}`` paths
resolve as they will for the real file), loaded with ``load_pipeline`` and handed to the
connectors' own ``validate()``. Problems name the file the body is for (``orders.yaml:4:
source.path: ...``; ``body:4: ...`` when there is none yet); their lines are the body's lines,
JSON bodies included. A JSON body is written as YAML. A file is replaced by a rename, after
its content reached the disk, so a crash leaves either the old file or the new, never half.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from omconnect.runtime.config.loader import LoadedPipeline, load_pipeline, validate_connectors
from omconnect.runtime.config.model import check_pipeline_name
from omconnect.runtime.config.problems import PipelineConfigError, Problem
from omconnect.runtime.serve.access_guard import YAML_MEDIA_TYPES, media_type

BODY_LABEL = "body"
"""What problems call a body whose pipeline has no file yet."""


@dataclass(frozen=True)
class PipelineBody:
    """A pipeline as sent: ``data`` (what problems' lines refer to) and ``file_data`` (what
    its file holds: the YAML itself, or a JSON body rewritten as YAML)."""

    data: bytes
    file_data: bytes


def pipeline_body(body: bytes, content_type: str | None, label: str) -> PipelineBody:
    """Read a request body: YAML with a YAML content type (checked when it is loaded), else
    JSON.

    Raises:
        PipelineConfigError: the body is not JSON when it should be.
    """
    if media_type(content_type) in YAML_MEDIA_TYPES:
        return PipelineBody(body, body)
    try:
        value = json.loads(body)
    except ValueError as exc:  # also not UTF-8
        where = exc.lineno if isinstance(exc, json.JSONDecodeError) else None
        raise PipelineConfigError([Problem(label, where, "(json)", str(exc))]) from None
    try:
        file_data = yaml.safe_dump(value, sort_keys=False, allow_unicode=True).encode()
    except UnicodeEncodeError:
        raise PipelineConfigError([surrogate_problem(label)]) from None
    return PipelineBody(body, file_data)


def pipeline_file(folder: Path, name: str) -> Path:
    """``folder/NAME.yaml``.

    Raises:
        ValueError: ``name`` is not a valid pipeline name (so it cannot leave the folder).
    """
    check_pipeline_name(name)
    file = folder / f"{name}.yaml"
    if file.resolve().parent != folder.resolve():  # the name rules should already prevent it
        raise ValueError(f"{name!r} would leave the pipelines folder")
    return file


async def checked_pipeline(
    body: PipelineBody, folder: Path | None, label: str, env: Mapping[str, str] | None = None
) -> LoadedPipeline:
    """``body`` loaded and validated (connectors' own ``validate()`` included), nothing kept.

    Raises:
        PipelineConfigError: every problem, naming ``label``, secrets masked.
    """
    return await asyncio.to_thread(_checked, body.data, folder, label, env)


async def save_pipeline(
    body: PipelineBody, file: Path, env: Mapping[str, str] | None = None
) -> LoadedPipeline:
    """Write ``body`` (checked already) to ``file`` atomically; the pipeline as loaded from it.

    Raises:
        PipelineConfigError: the file as written does not load (a JSON body whose YAML
            rewriting reads differently); nothing was replaced.
        OSError: the folder cannot be written.
    """
    return await asyncio.to_thread(_saved, body.file_data, file, env)


async def delete_pipeline_file(file: Path) -> None:
    """Remove ``file`` (gone already is fine), durably."""

    def delete() -> None:
        file.unlink(missing_ok=True)
        _sync_directory(file.parent)

    await asyncio.to_thread(delete)


def _checked(
    data: bytes, folder: Path | None, label: str, env: Mapping[str, str] | None
) -> LoadedPipeline:
    if folder is None:
        with tempfile.TemporaryDirectory() as scratch:
            return _checked(data, Path(scratch), label, env)
    temp = _temporary_file(folder, data)
    try:
        loaded = load_pipeline(temp, env)
        validate_connectors(loaded)
    except PipelineConfigError as exc:
        raise PipelineConfigError(
            dataclasses.replace(problem, file=label) for problem in exc.problems
        ) from None
    except UnicodeEncodeError:  # pydantic refuses such strings with this, not a problem
        raise PipelineConfigError([surrogate_problem(label)]) from None
    finally:
        temp.unlink(missing_ok=True)
    return loaded


def _saved(data: bytes, file: Path, env: Mapping[str, str] | None) -> LoadedPipeline:
    temp = _temporary_file(file.parent, data)
    try:
        loaded = load_pipeline(temp, env)
        os.replace(temp, file)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _sync_directory(file.parent)
    return dataclasses.replace(loaded, path=file)


def surrogate_problem(label: str) -> Problem:
    """What is wrong with a body whose strings pydantic cannot take (lone surrogates)."""
    message = "a string holds an escaped lone surrogate (\\ud800-\\udfff), which is not text"
    return Problem(label, None, "", message)


def _temporary_file(folder: Path, data: bytes) -> Path:
    """``data`` in a new hidden file of ``folder``, on disk (fsync) when this returns."""
    descriptor, name = tempfile.mkstemp(prefix=".omconnect-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _sync_directory(folder: Path) -> None:
    """Make a rename or removal in ``folder`` durable (where the platform allows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
