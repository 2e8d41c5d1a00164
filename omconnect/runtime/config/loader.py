"""Loading a pipeline file: YAML, interpolation, the pipeline model and every connector spec.

``load_pipeline`` either returns a fully validated ``LoadedPipeline`` or raises one
``PipelineConfigError`` listing every problem found (``FILE:LINE: KEY.PATH: PROBLEM``), with
every secret of the pipeline masked in the messages.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from omconnect.connectors.api.errors import ConfigError
from omconnect.connectors.api.sink import SinkConnector
from omconnect.connectors.api.source import SourceConnector
from omconnect.runtime.config.connector_blocks import ValidatedConnector, validate_block
from omconnect.runtime.config.interpolation import interpolate
from omconnect.runtime.config.model import PipelineConfig
from omconnect.runtime.config.problems import (
    Issue,
    KeyPath,
    PipelineConfigError,
    Problem,
    format_key_path,
    parse_key_path,
)
from omconnect.runtime.config.redaction import Redactor
from omconnect.runtime.config.validation_issues import validation_issues
from omconnect.runtime.config.yaml_source import (
    MAX_DOCUMENT_CHARS,
    YamlDocument,
    YamlSyntaxError,
    parse_yaml,
)

PIPELINE_SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadedPipeline:
    """A validated pipeline file.

    ``source``/``sink`` are None when the file has no such block; ``transforms`` are in
    order. ``redactor`` masks this pipeline's secrets; use it for every log line and error
    about the pipeline. ``positions`` maps key paths to their (line, column) in the file.
    """

    path: Path
    config: PipelineConfig
    source: ValidatedConnector | None
    sink: ValidatedConnector | None
    transforms: list[ValidatedConnector]
    redactor: Redactor
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict, repr=False)

    def problem_at(self, path: KeyPath, message: str, suggestion: str | None = None) -> Problem:
        """A redacted ``Problem`` at ``path`` of this file, for errors found after loading
        (a connector's ``validate()`` raising ``ConfigError(key=...)``, for example)."""
        document = YamlDocument(data=None, positions=self.positions)
        return _problem(str(self.path), document, Issue(path, message, suggestion), self.redactor)

    def connector_problem(self, block: KeyPath, error: ConfigError) -> Problem:
        """The ``Problem`` for a ``ConfigError`` raised by the plugin configured at ``block``
        (``("source",)``, ``("transforms", 2)``); its ``key`` is relative to the block."""
        key = parse_key_path(error.key) if error.key else ()
        return self.problem_at((*block, *key), str(error))


def load_pipeline(path: str | Path, env: Mapping[str, str] | None = None) -> LoadedPipeline:
    """Load and validate one pipeline file.

    Args:
        path: the YAML file; problems name it as given.
        env: variables for ``${VAR}`` (default: ``os.environ``).

    Raises:
        PipelineConfigError: with every problem found, sorted by line.
    """
    file = str(path)
    path = Path(path)
    env = os.environ if env is None else env
    redactor = Redactor()
    redactor.add_environment(env)
    document = _read_document(path, file, redactor)
    if not isinstance(document.data, dict):
        message = "expected a mapping of pipeline keys (name, source, sink, ...)"
        issues = [*document.issues, Issue((), message)]
        raise PipelineConfigError(_problem(file, document, i, redactor) for i in issues)

    surrogates = list(_lone_surrogates(document.data, ()))
    if surrogates:  # no text: pydantic and the connectors would fail on it with a traceback
        raise PipelineConfigError(_problem(file, document, i, redactor) for i in surrogates)
    interpolated = interpolate(document.data, env, path.absolute().parent)
    data: dict[str, Any] = interpolated.data
    for value in interpolated.file_values:
        redactor.add(value)
    redactor.collect(data)

    found: list[Issue] = []
    config: PipelineConfig | None = None
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        found.extend(validation_issues(exc, data, PipelineConfig))
    source, source_issues = validate_block("source", data.get("source"), ("source",), redactor)
    sink, sink_issues = validate_block("sink", data.get("sink"), ("sink",), redactor)
    found.extend(source_issues + sink_issues)
    transforms: list[ValidatedConnector] = []
    items = data.get("transforms")
    for index, item in enumerate(items if isinstance(items, list) else []):
        transform, item_issues = validate_block("transform", item, ("transforms", index), redactor)
        found.extend(item_issues)
        if transform is not None:
            transforms.append(transform)

    # A value already reported (unsafe tag, failed interpolation) is not reported again.
    reported = document.dropped | interpolated.failed_paths
    found = [issue for issue in found if not _under(issue.path, reported)]
    issues = document.issues + interpolated.issues + found
    if issues or config is None:
        raise PipelineConfigError(_problem(file, document, issue, redactor) for issue in issues)
    return LoadedPipeline(path, config, source, sink, transforms, redactor, document.positions)


def _lone_surrogates(value: Any, path: tuple[str | int, ...]) -> Iterator[Issue]:
    """An issue for each string of ``value`` that holds a lone surrogate (``"\\ud800"`` in a
    double-quoted YAML string or JSON): such a string is not text."""
    if isinstance(value, str):
        if any("\ud800" <= char <= "\udfff" for char in value):
            yield Issue(
                path,
                "a string holds an escaped lone surrogate (\\ud800-\\udfff), which is not text",
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _lone_surrogates(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _lone_surrogates(item, (*path, index))


def load_pipelines(
    paths: Iterable[str | Path], env: Mapping[str, str] | None = None
) -> tuple[list[LoadedPipeline], list[PipelineConfigError]]:
    """Load many pipeline files, collecting errors instead of stopping at the first.

    A pipeline whose ``name`` is already used by an earlier file is an error too.
    """
    loaded: list[LoadedPipeline] = []
    errors: list[PipelineConfigError] = []
    names: dict[str, Path] = {}
    for path in paths:
        try:
            pipeline = load_pipeline(path, env)
        except PipelineConfigError as exc:
            errors.append(exc)
            continue
        first = names.setdefault(pipeline.config.name, pipeline.path)
        if first is not pipeline.path:
            message = f'pipeline name "{pipeline.config.name}" is already used by {first}'
            errors.append(PipelineConfigError([pipeline.problem_at(("name",), message)]))
            continue
        loaded.append(pipeline)
    return loaded, errors


def pipeline_files(directory: str | Path) -> list[Path]:
    """The pipeline files (``*.yaml``, ``*.yml``) directly inside ``directory``, sorted."""
    return sorted(
        entry
        for entry in Path(directory).iterdir()
        if entry.suffix in PIPELINE_SUFFIXES and entry.is_file()
    )


def validate_connectors(loaded: LoadedPipeline, source: SourceConnector | None = None) -> None:
    """Call the configured connectors' own ``validate()`` (which may reach their systems) and
    raise ``PipelineConfigError`` locating each ``ConfigError`` in the pipeline file.
    ``source`` is the source connector to validate, when the caller built it (a run validates
    the one it runs, which keeps what validating found, such as a database's tables)."""
    problems: list[Problem] = []
    for block, validated in (("source",), loaded.source), (("sink",), loaded.sink):
        if validated is None:
            continue
        try:
            connector = (
                source
                if source is not None and block == ("source",)
                else validated.registration.cls(validated.spec)
            )
            if isinstance(connector, SourceConnector | SinkConnector):  # always: not a transform
                connector.validate()
        except ConfigError as error:
            problems.append(loaded.connector_problem(block, error))
    if problems:
        raise PipelineConfigError(problems)


def redacted_config(loaded: LoadedPipeline) -> dict[str, Any]:
    """The effective configuration of a loaded pipeline with every secret masked.

    Connector and transform blocks show their validated spec (defaults filled in); ``topic``
    and ``errors.dead_letter_topic`` show their effective values.
    """
    config = loaded.config
    result: dict[str, Any] = config.model_dump(
        mode="python", exclude={"source", "sink", "transforms"}
    )
    result["topic"] = config.effective_topic
    result["errors"]["dead_letter_topic"] = config.effective_dead_letter_topic
    if loaded.source is not None:
        result["source"] = {
            "connector": loaded.source.registration.name,
            **dict(loaded.source.spec),
        }
    if loaded.sink is not None:
        result["sink"] = {"connector": loaded.sink.registration.name, **dict(loaded.sink.spec)}
    result["transforms"] = [
        {"type": transform.registration.name, **dict(transform.spec)}
        for transform in loaded.transforms
    ]
    return cast(dict[str, Any], loaded.redactor.redact_value(result))


def _read_document(path: Path, file: str, redactor: Redactor) -> YamlDocument:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_DOCUMENT_CHARS + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PipelineConfigError(
            [Problem(file, None, "", f"cannot read the file: {reason}")]
        ) from None
    if len(raw) > MAX_DOCUMENT_CHARS:
        message = f"the file is larger than {MAX_DOCUMENT_CHARS} bytes"
        raise PipelineConfigError([Problem(file, 1, "", message)])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise PipelineConfigError(
            [Problem(file, line, "(yaml)", "the file is not UTF-8 text")]
        ) from None
    try:
        return parse_yaml(text)
    except YamlSyntaxError as exc:
        message = redactor.redact(exc.message)
        raise PipelineConfigError([Problem(file, exc.line, "(yaml)", message)]) from None


def _problem(file: str, document: YamlDocument, issue: Issue, redactor: Redactor) -> Problem:
    line = issue.line if issue.line is not None else document.line_of(issue.path)
    suggestion = redactor.redact(issue.suggestion) if issue.suggestion is not None else None
    return Problem(
        file=file,
        line=line,
        key=redactor.redact(format_key_path(issue.path)),
        message=redactor.redact(issue.message),
        suggestion=suggestion,
    )


def _under(path: KeyPath, roots: set[KeyPath]) -> bool:
    return any(path[: len(root)] == root for root in roots)
