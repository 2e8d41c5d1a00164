"""Pipeline and topic names are checked before anything runs (Kafka's rules for topics)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from omconnect.runtime.config import PipelineConfigError, load_pipeline

Write = Callable[..., Path]
SINK = "sink: {connector: test-sink, path: o}\n"


def problems(path: Path) -> list[str]:
    with pytest.raises(PipelineConfigError) as caught:
        load_pipeline(path, env={})
    return str(caught.value).splitlines()


def test_a_pipeline_name_too_long_for_file_names_is_refused(write_pipeline: Write) -> None:
    path = write_pipeline(f"name: {'n' * 300}\n{SINK}")
    assert problems(path) == [
        f"{path}:1: name: a pipeline name has at most 160 characters (it names the default "
        "topic and files derived from it), got 300"
    ]
    load_pipeline(write_pipeline(f"name: {'n' * 160}\n{SINK}"), env={})


@pytest.mark.parametrize("topic", [".hidden", ".", "..", "a/b", "a b", "t" * 250, "ö"])
def test_topic_names_follow_kafkas_rules(write_pipeline: Write, topic: str) -> None:
    path = write_pipeline(f'name: p\ntopic: "{topic}"\n{SINK}')
    [line] = problems(path)
    assert line.startswith(f"{path}:2: topic: a topic name ")


def test_every_topic_setting_is_checked(write_pipeline: Write) -> None:
    path = write_pipeline(
        'name: p\ntopics: [ok, ".x"]\nerrors: {dead_letter_topic: "a:b"}\n' + SINK
    )
    assert [line.split(": a topic name")[0] for line in problems(path)] == [
        f"{path}:2: topics[1]",
        f"{path}:3: errors.dead_letter_topic",
    ]


def test_a_topic_whose_dead_letter_topic_would_be_too_long(write_pipeline: Write) -> None:
    path = write_pipeline(f"name: p\ntopic: {'t' * 249}\n{SINK}")
    [line] = problems(path)
    assert "the dead letter topic <topic>.dlq would have 253 characters" in line
    load_pipeline(
        write_pipeline(f"name: p\ntopic: {'t' * 249}\nerrors: {{dead_letter_topic: d}}\n{SINK}"),
        env={},
    )


def test_names_users_of_kafka_write_are_accepted(write_pipeline: Write) -> None:
    path = write_pipeline(f"name: Orders_v2.eu-1\ntopic: _orders.v2-eu_1\n{SINK}")
    loaded = load_pipeline(path, env={})
    assert loaded.config.effective_dead_letter_topic == "_orders.v2-eu_1.dlq"
