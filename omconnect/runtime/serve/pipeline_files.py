"""Pipeline files sent over the API: read from YAML or JSON, validated as ``omconnect validate``
validates a file, and written atomically into the pipelines folder.

A body is checked as a file would be: it is written to a hidden temporary file in the folder
(``.omconnect-*.tmp``, which no folder scan picks up, and beside which ``${file:...}`` paths
resolve as they will for the real file), loaded with ``load_pipeline`` and handed to the
connectors' own ``validate()``. Problems name the file the body is for (``orders.yaml:4:
source.path: ...``; ``body:4: ...`` when there is none yet); their lines are the body's lines,
JSON bodies included. A JSON body is written as YAML. A file is replaced by a rename, after
its content reached the disk, so a crash leaves either the old file or the new, never half.

A body is the pipeline file's content, or Kafka Connect's ``POST /connectors`` shape,
``{"name": NAME, "config": {...}}`` (in JSON or YAML), whose ``config`` is the pipeline's
content: its ``name`` may be left out there, and must agree with ``NAME`` when both are given.
Its problems' keys are those of ``config`` (``source.path``), their lines still the body's. A
pipeline without a ``name`` takes the one it is sent for (``PUT /pipelines/NAME/config``, as
Kafka Connect's bare config map). Such a body, wrapped or named by the URL, is written as YAML
from its values (a YAML body's comments are not kept); any other YAML body as sent.
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
from typing import Any

import yaml

from omconnect.runtime.config.loader import LoadedPipeline, load_pipeline, validate_connectors
from omconnect.runtime.config.model import check_pipeline_name
from omconnect.runtime.config.problems import (
    Issue,
    KeyPath,
    PipelineConfigError,
    Problem,
    format_key_path,
    parse_key_path,
)
from omconnect.runtime.config.redaction import Redactor
from omconnect.runtime.config.yaml_source import YamlDocument, YamlSyntaxError, parse_yaml
from omconnect.runtime.serve.access_guard import YAML_MEDIA_TYPES, media_type

BODY_LABEL = "body"
"""What problems call a body whose pipeline has no file yet."""


@dataclass(frozen=True)
class PipelineBody:
    """A pipeline as sent: ``data`` (what is loaded to check it) and ``file_data`` (what its
    file holds: the YAML itself, or a JSON body rewritten as YAML).

    ``positions`` is None when ``data`` is the body itself, whose lines problems name; else
    ``data`` was rewritten (a wrapped body, a name filled in) and ``positions`` maps each key
    path of the pipeline to its (line, column) in the body.
    """

    data: bytes
    file_data: bytes
    positions: dict[KeyPath, tuple[int, int]] | None = None


def pipeline_body(
    body: bytes, content_type: str | None, label: str, name: str | None = None
) -> PipelineBody:
    """Read a request body: YAML with a YAML content type (checked when it is loaded), else
    JSON; the pipeline's content, or ``{"name": ..., "config": {...}}``; a pipeline without
    a name gets ``name`` when given.

    Raises:
        PipelineConfigError: the body is not JSON when it should be, its wrapper is not
            Kafka Connect's, or its names disagree.
    """
    document = _document(body)
    if media_type(content_type) in YAML_MEDIA_TYPES:
        if document is None:  # the load says what is wrong with it
            return PipelineBody(body, body)
        value, plain = document.data, PipelineBody(body, body)
    else:
        try:
            value = json.loads(body)
        except ValueError as exc:  # also not UTF-8
            where = exc.lineno if isinstance(exc, json.JSONDecodeError) else None
            raise PipelineConfigError([Problem(label, where, "(json)", str(exc))]) from None
        plain = PipelineBody(body, _yaml_bytes(value, label))
    document = document if document is not None else YamlDocument(None, {(): (1, 1)})
    if _is_wrapped(value):
        return _unwrapped(value, document, label)
    if name is not None and isinstance(value, dict) and "name" not in value:
        return _rewritten({"name": name, **value}, document, (), label)
    return plain


def _document(body: bytes) -> YamlDocument | None:
    """The body parsed as YAML (JSON is YAML), for the lines of its keys; None if it is not."""
    try:
        return parse_yaml(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, YamlSyntaxError):
        return None


def _is_wrapped(value: Any) -> bool:
    """Whether ``value`` is Kafka Connect's ``{"name": ..., "config": {...}}`` (a pipeline
    has no ``config`` key)."""
    return isinstance(value, dict) and "config" in value and set(value) <= {"name", "config"}


def _unwrapped(value: dict[str, Any], document: YamlDocument, label: str) -> PipelineBody:
    """The pipeline inside a wrapped body, its name taken from the wrapper when it has none.

    Raises:
        PipelineConfigError: ``config`` is not a mapping, ``name`` not a string, or the two
            names differ.
    """
    config, name = value["config"], value.get("name")

    def refused(path: KeyPath, message: str) -> PipelineConfigError:
        line = document.line_of(path)
        return PipelineConfigError([Problem(label, line, format_key_path(path), message)])

    if not isinstance(config, dict):
        message = "expected a mapping of pipeline keys (name, source, sink, ...)"
        raise refused(("config",), message)
    if name is not None and not isinstance(name, str):
        raise refused(("name",), "expected the pipeline's name, a string")
    inner = config.get("name")
    if name is not None and inner is not None and inner != name:
        message = f'"{inner}" does not agree with the name "{name}" the body gives beside it'
        raise refused(("config", "name"), message)
    if name is not None and inner is None:
        config = {"name": name, **config}
    return _rewritten(config, document, ("config",), label)


def _rewritten(
    data: dict[str, Any], document: YamlDocument, root: KeyPath, label: str
) -> PipelineBody:
    """``data`` (the value at ``root`` of ``document``, maybe with a name added) as YAML,
    with the body's positions of its keys.

    Raises:
        PipelineConfigError: the body has problems its rewriting would lose (a duplicate
            key, a refused tag), or strings that are not text.
    """
    issues = [issue for issue in document.issues if issue.path[: len(root)] == root]
    if issues:
        raise PipelineConfigError(_issue_problem(issue, document, root, label) for issue in issues)
    positions = {
        path[len(root) :]: position
        for path, position in document.positions.items()
        if path[: len(root)] == root
    }
    if ("name",) not in positions and ("name",) in document.positions:
        positions[("name",)] = document.positions[("name",)]  # the wrapper's name
    file_data = _yaml_bytes(data, label)
    return PipelineBody(file_data, file_data, positions)


def _issue_problem(issue: Issue, document: YamlDocument, root: KeyPath, label: str) -> Problem:
    redactor = Redactor()
    redactor.add_environment(os.environ)
    redactor.collect(document.data)
    return Problem(
        label,
        issue.line if issue.line is not None else document.line_of(issue.path),
        redactor.redact(format_key_path(issue.path[len(root) :])),
        redactor.redact(issue.message),
    )


def _yaml_bytes(value: Any, label: str) -> bytes:
    try:
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True).encode()
    except UnicodeEncodeError:
        raise PipelineConfigError([surrogate_problem(label)]) from None


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
    return await asyncio.to_thread(_checked, body, folder, label, env)


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
    body: PipelineBody, folder: Path | None, label: str, env: Mapping[str, str] | None
) -> LoadedPipeline:
    if folder is None:
        with tempfile.TemporaryDirectory() as scratch:
            return _checked(body, Path(scratch), label, env)
    temp = _temporary_file(folder, body.data)
    try:
        loaded = load_pipeline(temp, env)
        if body.positions is not None:  # its problems name the lines of the body as sent
            loaded = dataclasses.replace(loaded, positions=body.positions)
        validate_connectors(loaded)
    except PipelineConfigError as exc:
        raise PipelineConfigError(
            dataclasses.replace(problem, file=label, line=_line(body, problem))
            for problem in exc.problems
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


def _line(body: PipelineBody, problem: Problem) -> int | None:
    """The line of the body ``problem`` is on."""
    if body.positions is None:
        return problem.line
    path = () if problem.key.startswith("(") else parse_key_path(problem.key)
    return YamlDocument(None, body.positions).line_of(path)


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
