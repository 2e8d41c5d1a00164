"""load_pipeline: good files load; every kind of problem is reported as FILE:LINE: KEY: PROBLEM."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from omconnect.connectors.api import ConfigError
from omconnect.runtime.config import (
    PipelineConfigError,
    format_key_path,
    load_pipeline,
    load_pipelines,
    parse_key_path,
)

Write = Callable[..., Path]


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(PipelineConfigError) as caught:
        load_pipeline(path, env=env or {})
    lines = str(caught.value).splitlines()
    assert lines == [str(problem) for problem in caught.value.problems]
    return lines


def test_good_file_loads_with_defaults_and_parsed_units(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: orders-to-lake
        source: {connector: test-src, path: data/orders.csv, tables: [a, b], poll_interval: 200ms}
        transforms:
          - {type: test-filter, where: "amount > 0"}
          - {type: test-rename, fields: {amt: amount}}
        format: json
        sink: {connector: test-sink, path: out/orders/, mode: upsert}
        schedule: "*/15 * * * *"
        errors: {tolerance: all, retry_timeout: 2m}
        batching: {max_bytes: 16MiB, linger: 1h30m}
        max_in_flight_bytes: 1GB
        """
    )
    loaded = load_pipeline(path, env={})
    config = loaded.config
    assert config.name == "orders-to-lake"
    assert config.effective_topic == "orders-to-lake"
    assert config.effective_dead_letter_topic == "orders-to-lake.dlq"
    assert config.broker == "embedded://.omconnect" and config.state == ".omconnect"
    assert config.format == "json" and config.tasks == 1
    assert config.errors.tolerance == "all" and config.errors.retry_timeout == 120.0
    assert config.batching.max_bytes == 16 * 1024 * 1024 and config.batching.linger == 5400.0
    assert config.batching.max_rows == 50_000 and config.commit_interval == 5.0
    assert config.max_in_flight_bytes == 10**9
    assert loaded.source is not None and loaded.sink is not None
    assert loaded.source.registration.name == "test-src"
    assert loaded.source.spec.tables == ["a", "b"]  # type: ignore[attr-defined]
    assert loaded.source.spec.poll_interval == pytest.approx(0.2)  # type: ignore[attr-defined]
    assert loaded.sink.spec.mode == "upsert"  # type: ignore[attr-defined]
    assert [t.registration.name for t in loaded.transforms] == ["test-filter", "test-rename"]
    registration, spec = loaded.transforms[1]
    assert registration.kind == "transform" and spec.fields == {"amt": "amount"}  # type: ignore[attr-defined]
    assert loaded.positions[("sink",)] == (7, 1)


def test_sink_only_pipeline_with_explicit_topics(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: lake
        topic: orders
        errors: {dead_letter_topic: bad-orders}
        sink: {connector: test-sink, path: out/}
        """
    )
    loaded = load_pipeline(path, env={})
    assert loaded.source is None and loaded.transforms == []
    assert loaded.config.effective_topic == "orders"
    assert loaded.config.effective_dead_letter_topic == "bad-orders"


def test_unknown_top_level_key_suggests_the_right_one(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: p
        sink: {connector: test-sink, path: out/}
        shedule: "@daily"
        """
    )
    assert problems_of(path) == [f'{path}:3: shedule: unknown key (did you mean "schedule"?)']


def test_unknown_option_in_a_nested_spec_model_suggests(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: p
        source:
          connector: test-src
          pth: x
          s3:
            regoin: eu-west-1
        """
    )
    assert problems_of(path) == [
        f"{path}:2: source.path: missing required key",
        f'{path}:4: source.pth: unknown key (did you mean "path"?)',
        f'{path}:6: source.s3.regoin: unknown key (did you mean "region"?)',
    ]


def test_unknown_connector_and_transform_suggest_near_names(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: p
        source: {connector: test-srx, path: x}
        transforms:
          - {type: test-filter, where: "a > 1"}
          - {type: test-renam, fields: {}}
        """
    )
    assert problems_of(path) == [
        f'{path}:2: source.connector: unknown source connector "test-srx" '
        '(did you mean "test-src"?)',
        f'{path}:5: transforms[1].type: unknown transform "test-renam" '
        '(did you mean "test-rename"?)',
    ]


def test_unknown_connector_without_near_name_lists_known_ones(write_pipeline: Write) -> None:
    path = write_pipeline("name: p\nsink: {connector: zzzzzzzz}\n")
    [line] = problems_of(path)
    assert line.startswith(f'{path}:2: sink.connector: unknown sink connector "zzzzzzzz" (known: ')
    # Other test modules register plugins too; the built-ins sort first.
    assert "avro, csv" in line


def test_wrong_types_and_missing_required_options(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: p
        source:
          connector: test-src
          batch_size: lots
        sink:
          connector: test-sink
          path: [a, b]
        tasks: 0
        format: xml
        """
    )
    assert problems_of(path) == [
        f"{path}:2: source.path: missing required key",
        f'{path}:4: source.batch_size: expected an integer, got "lots"',
        f"{path}:7: sink.path: expected a string",
        f"{path}:8: tasks: input should be greater than or equal to 1, got 0",
        f"{path}:9: format: input should be 'avro', 'json', 'cloudevents' or 'raw', got \"xml\"",
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "commit_interval: soon",
            'commit_interval: invalid duration "soon": expected seconds as a number or a string '
            'like "200ms", "5s", "2m", "1h"',
        ),
        (
            "commit_interval: -1",
            "commit_interval: invalid duration -1: must be a finite, non-negative time",
        ),
        (
            "max_in_flight_bytes: 12 parsecs",
            'max_in_flight_bytes: invalid size "12 parsecs": unknown unit "parsecs"',
        ),
        (
            "max_in_flight_bytes: [1]",
            "max_in_flight_bytes: invalid size of type list: expected bytes as an integer or a "
            'string like "512KiB", "16MiB", "16MB", "1GB"',
        ),
        (
            'schedule: "* * *"',
            'schedule: invalid cron expression "* * *": expected 5 fields (minute hour '
            "day-of-month month day-of-week) or an alias like @daily, got 3",
        ),
        (
            'schedule: "61 * * * *"',
            'schedule: invalid cron expression "61 * * * *": minute "61": 61 is out of range 0-59',
        ),
        (
            'schedule: "*/0 * * * *"',
            'schedule: invalid cron expression "*/0 * * * *": minute "*/0": step "0" must be a '
            "positive integer",
        ),
        (
            'schedule: "0 25 * * *"',
            'schedule: invalid cron expression "0 25 * * *": hour "25": 25 is out of range 0-23',
        ),
        (
            'schedule: "@fortnightly"',
            'schedule: invalid cron expression "@fortnightly": unknown alias (@yearly, '
            "@annually, @monthly, @weekly, @daily, @midnight, @hourly)",
        ),
    ],
)
def test_invalid_duration_size_and_cron(write_pipeline: Write, line: str, expected: str) -> None:
    path = write_pipeline(f"name: p\nsink: {{connector: test-sink, path: o}}\n{line}\n")
    assert problems_of(path) == [f"{path}:3: {expected}"]


def test_transform_item_problems_carry_the_index(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: p
        sink: {connector: test-sink, path: o}
        transforms:
          - {type: test-filter, where: "x > 1"}
          - {type: test-filter}
          - {type: test-rename, fields: {a: [1]}, wher: x}
          - just-a-string
        """
    )
    assert problems_of(path) == [
        f"{path}:5: transforms[1].where: missing required key",
        f"{path}:6: transforms[2].fields.a: expected a string",
        f"{path}:6: transforms[2].wher: unknown key",
        f'{path}:7: transforms[3]: expected a mapping, got "just-a-string"',
    ]


def test_duplicate_key_points_at_the_second_occurrence(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: p
        sink:
          connector: test-sink
          path: a
          path: b
        """
    )
    assert problems_of(path) == [f"{path}:5: sink.path: duplicate key (first defined on line 4)"]


def test_python_tag_is_refused_not_constructed(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: p
        sink: {connector: test-sink, path: o}
        description: !!python/object/apply:os.system ["echo pwned"]
        topic: !!python/name:os.system
        """
    )
    assert problems_of(path) == [
        f'{path}:3: description: tag "tag:yaml.org,2002:python/object/apply:os.system" '
        "is not allowed",
        f'{path}:4: topic: tag "tag:yaml.org,2002:python/name:os.system" is not allowed',
    ]


def test_an_escaped_lone_surrogate_is_refused_where_it_is(write_pipeline: Write) -> None:
    """``"\\ud800"`` is valid YAML (and JSON) but not text: one line, no traceback."""
    path = write_pipeline(
        """
        name: p
        sink: {connector: test-sink, path: "o\\ud800"}
        """
    )
    assert problems_of(path) == [
        f"{path}:2: sink.path: a string holds an escaped lone surrogate (\\ud800-\\udfff), "
        "which is not text"
    ]


def test_alias_bomb_is_refused(write_pipeline: Write) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        levels.append(f"a{level}: &a{level} [{refs}]")
    path = write_pipeline("name: p\nsink: {connector: test-sink, path: o}\n" + "\n".join(levels))
    [line] = problems_of(path)
    assert line.startswith(f"{path}:")
    assert line.endswith("(yaml): aliases expand to more than 10000 nodes (alias bomb?)")


def test_recursive_alias_is_refused(write_pipeline: Write) -> None:
    path = write_pipeline("name: p\nsink: &s {connector: test-sink, path: o, self: *s}\n")
    assert problems_of(path) == [f"{path}:2: (yaml): an alias refers to a node that contains it"]


def test_anchors_aliases_and_merge_keys_work(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: p
        description: &d shared
        topic: *d
        sink: {<<: {connector: test-sink, path: o}, mode: upsert}
        transforms:
          - &f {type: test-filter, where: "a > 1"}
          - {<<: *f, where: "b > 2"}
        """
    )
    loaded = load_pipeline(path, env={})
    assert loaded.config.topic == "shared"
    assert loaded.sink is not None and loaded.sink.spec.mode == "upsert"  # type: ignore[attr-defined]
    wheres = [spec.where for _, spec in loaded.transforms]  # type: ignore[attr-defined]
    assert wheres == ["a > 1", "b > 2"]


def test_malformed_yaml_reports_the_parser_line(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: p
        sink:
          connector: test-sink
          path: [unclosed
        schedule: "@daily"
        """
    )
    [line] = problems_of(path)
    assert line.startswith(f"{path}:5: (yaml): while parsing a flow sequence")


def test_tab_indentation_is_a_yaml_problem(write_pipeline: Write) -> None:
    path = write_pipeline("name: p\nsink:\n\tconnector: x\n")
    [line] = problems_of(path)
    assert line.startswith(f"{path}:3: (yaml): ")
    assert "'\\t'" in line


def test_file_level_problems(write_pipeline: Write, tmp_path: Path) -> None:
    empty = write_pipeline("", name="empty.yaml")
    assert problems_of(empty) == [
        f"{empty}:1: expected a mapping of pipeline keys (name, source, sink, ...)"
    ]
    neither = write_pipeline("name: p\n", name="neither.yaml")
    assert problems_of(neither) == [f"{neither}:1: a pipeline needs a source, a sink, or both"]
    bad_name = write_pipeline("name: -p\nsink: {connector: test-sink, path: o}\n", name="n.yaml")
    assert problems_of(bad_name) == [
        f"{bad_name}:1: name: a pipeline name is letters, digits, '.', '_' and '-', starting "
        'with a letter or a digit, got "-p"'
    ]
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: p\nsink: x\n\xff\xfe\n")
    assert problems_of(binary) == [f"{binary}:3: (yaml): the file is not UTF-8 text"]
    missing = tmp_path / "missing.yaml"
    assert problems_of(missing) == [f"{missing}: cannot read the file: No such file or directory"]


def test_many_problems_are_all_reported_sorted_by_line(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        tasks: many
        name: p
        source: {connector: test-src, path: x, batch_size: -}
        topic: ${NOPE}
        sink: {connector: nope-sink}
        formt: json
        """
    )
    lines = problems_of(path)
    assert [line.split(":")[1] for line in lines] == ["1", "3", "4", "5", "6"]
    assert lines[2] == f'{path}:4: topic: environment variable "NOPE" is not set and has no default'


def test_yaml_1_1_surprises_stay_strings(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: p
        description: no
        state: 1:30
        sink: {connector: test-sink, path: 2024-01-01}
        """
    )
    loaded = load_pipeline(path, env={})
    assert loaded.config.description == "no" and loaded.config.state == "1:30"
    assert loaded.sink is not None and loaded.sink.spec.path == "2024-01-01"  # type: ignore[attr-defined]


def test_load_pipelines_collects_errors_and_duplicate_names(write_pipeline: Write) -> None:
    first = write_pipeline("name: p\nsink: {connector: test-sink, path: o}\n", name="a.yaml")
    again = write_pipeline("# same\nname: p\nsink: {connector: test-sink, path: o}\n", "b.yaml")
    broken = write_pipeline("name: q\n", name="c.yaml")
    other = write_pipeline("name: r\nsink: {connector: test-sink, path: o}\n", name="d.yaml")
    loaded, errors = load_pipelines([first, again, broken, other], env={})
    assert [pipeline.path for pipeline in loaded] == [first, other]
    assert [str(error) for error in errors] == [
        f'{again}:2: name: pipeline name "p" is already used by {first}',
        f"{broken}:1: a pipeline needs a source, a sink, or both",
    ]


def test_problem_at_locates_later_errors(write_pipeline: Write) -> None:
    path = write_pipeline("name: p\nsink:\n  connector: test-sink\n  path: o\n")
    loaded = load_pipeline(path, env={})
    problem = loaded.problem_at(("sink", "path"), "directory is not writable")
    assert str(problem) == f"{path}:4: sink.path: directory is not writable"
    error = ConfigError("table does not exist", key="tables[0]")
    later = loaded.connector_problem(("sink",), error)
    assert str(later) == f"{path}:2: sink.tables[0]: table does not exist"


def test_key_paths_round_trip() -> None:
    for path in [("source", "tables", 0), ("transforms", 1, "fields", "a"), ("name",), ()]:
        assert parse_key_path(format_key_path(path)) == path


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"name: p\n#" + b"x" * (4 * 1024 * 1024))
    assert problems_of(path) == [f"{path}:1: the file is larger than 4194304 bytes"]


def test_environment_defaults_to_the_process_environment(
    write_pipeline: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMCONNECT_TEST_TOPIC", "from-env")
    path = write_pipeline(
        "name: p\ntopic: ${OMCONNECT_TEST_TOPIC}\nsink: {connector: test-sink, path: o}\n"
    )
    assert load_pipeline(path).config.topic == "from-env"
