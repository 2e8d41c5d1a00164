"""Secrets never appear in errors, in redacted_config output or in log lines."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from omconnect.runtime.config import (
    LoadedPipeline,
    PipelineConfigError,
    RedactingFilter,
    Redactor,
    load_pipeline,
    redacted_config,
)

Write = Callable[..., Path]

ENV_CANARY = "env-canary-7Qx2"
FILE_CANARY = "file-canary-Lp9w"
URL_CANARY = "url-canary-Zk4r"
BROKER_CANARY = "broker-canary-Hh3s"
SPEC_CANARY = "spec-canary-Mn8t"
CANARIES = (ENV_CANARY, FILE_CANARY, URL_CANARY, BROKER_CANARY, SPEC_CANARY)


def assert_no_canary(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text


def test_secrets_are_masked_in_every_problem(write_pipeline: Write, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text(FILE_CANARY + "\n")
    path = write_pipeline(
        f"""
        name: p
        broker: kafka://user:{BROKER_CANARY}@broker:9092
        tasks: ${{TEST_DB_PASSWORD}}
        commit_interval: ${{file:secret.txt}}
        max_in_flight_bytes: "postgresql://u:{URL_CANARY}@db/x"
        schedule: "kafka://user:{BROKER_CANARY}@broker:9092"
        sink:
          connector: test-sink
          path: o
          dsn: {SPEC_CANARY}
          mode: {SPEC_CANARY}
        """
    )
    with pytest.raises(PipelineConfigError) as caught:
        load_pipeline(path, env={"TEST_DB_PASSWORD": ENV_CANARY})
    text = str(caught.value)
    assert_no_canary(text)
    assert text.splitlines() == [
        f'{path}:3: tasks: expected an integer, got "***"',
        f'{path}:4: commit_interval: invalid duration "***": expected seconds as a number or '
        'a string like "200ms", "5s", "2m", "1h"',
        f'{path}:5: max_in_flight_bytes: invalid size "postgresql://u:***@db/x": expected '
        'bytes as an integer or a string like "512KiB", "16MiB", "16MB", "1GB"',
        f'{path}:6: schedule: invalid cron expression "kafka://user:***@broker:9092": expected '
        "5 fields (minute hour day-of-month month day-of-week) or an alias like @daily, got 1",
        f"{path}:11: sink.mode: input should be 'append' or 'upsert', got \"***\"",
    ]


def test_secret_typed_option_of_the_wrong_type_is_not_shown(write_pipeline: Write) -> None:
    path = write_pipeline("name: p\nsink: {connector: test-sink, path: o, dsn: 73519264}\n")
    with pytest.raises(PipelineConfigError) as caught:
        load_pipeline(path, env={})
    assert str(caught.value) == f"{path}:2: sink.dsn: expected a string"


def test_yaml_errors_are_redacted_too(write_pipeline: Write) -> None:
    path = write_pipeline(f"name: p\n{ENV_CANARY}: [\n")
    with pytest.raises(PipelineConfigError) as caught:
        load_pipeline(path, env={"SOME_TOKEN": ENV_CANARY})
    assert_no_canary(str(caught.value))


@pytest.fixture
def loaded_with_secrets(write_pipeline: Write, tmp_path: Path) -> LoadedPipeline:
    (tmp_path / "pw.txt").write_text(FILE_CANARY)
    path = write_pipeline(
        f"""
        name: p
        broker: kafka://user:{BROKER_CANARY}@broker:9092
        state: postgresql://u:{URL_CANARY}@db/state
        description: token is ${{API_TOKEN}}
        source:
          connector: test-src
          path: in
          password: ${{file:pw.txt}}
        sink:
          connector: test-sink
          path: out
          dsn: {SPEC_CANARY}
        """
    )
    return load_pipeline(path, env={"API_TOKEN": ENV_CANARY})


def test_redacted_config_masks_every_secret(loaded_with_secrets: LoadedPipeline) -> None:
    shown = redacted_config(loaded_with_secrets)
    text = json.dumps(shown)
    assert_no_canary(text)
    assert shown["broker"] == "kafka://user:***@broker:9092"
    assert shown["state"] == "postgresql://u:***@db/state"
    assert shown["description"] == "token is ***"
    assert shown["source"]["password"] == "***" and shown["sink"]["dsn"] == "***"
    assert shown["source"]["batch_size"] == 1000  # defaults are shown
    assert shown["topic"] == "p" and shown["errors"]["dead_letter_topic"] == "p.dlq"


def test_log_lines_through_the_filter_mask_secrets(loaded_with_secrets: LoadedPipeline) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(loaded_with_secrets.redactor))
    logger = logging.getLogger("omconnect.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("connecting to %s with %s", "broker", SPEC_CANARY)
        logger.warning("dsn=%r url=%s", SPEC_CANARY, f"postgresql://u:{URL_CANARY}@db/state")
        try:
            raise RuntimeError(f"login failed for {FILE_CANARY} / {ENV_CANARY}")
        except RuntimeError:
            logger.exception("task failed with %s", BROKER_CANARY)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert_no_canary(text)
    assert "connecting to broker with ***" in text
    assert "RuntimeError: login failed for *** / ***" in text
    assert "task failed with ***" in text


def test_redactor_masks_longest_first_and_escaped_spellings() -> None:
    redactor = Redactor(["abcd", "abcdefgh", 'q"uo\\te'])
    assert redactor.redact("xabcdefghx abcd") == "x***x ***"
    assert redactor.redact(repr('q"uo\\te')) == "'***'"
    assert redactor.redact(json.dumps('q"uo\\te')) == '"***"'


def test_redactor_environment_guesses_skip_short_and_common_values() -> None:
    redactor = Redactor()
    redactor.add_environment(
        {"MY_KEY": "no", "USE_TOKEN": "true", "DB_PASSWORD": "hunter22", "HOME": "/home/x"}
    )
    assert redactor.redact("no true hunter22 /home/x") == "no true *** /home/x"


def test_url_passwords_with_awkward_characters() -> None:
    redactor = Redactor()
    redactor.add_url_passwords("amqp://guest:p%40ss@rabbit:5672/vh redis://:r3dis@cache:6379")
    assert redactor.redact("amqp://guest:p%40ss@rabbit p@ss r3dis") == (
        "amqp://guest:***@rabbit *** ***"
    )


def _redaction_seconds(size: int) -> float:
    """CPU seconds of this thread to gather and mask the secrets of one ``size``-character
    value (best of 3): long runs of scheme characters, of ``a:/`` and of ``user:password@``, one
    real URL. CPU time, not wall time: tests running beside this one must not make it fail."""
    url = f"postgresql://u:{URL_CANARY}@db/x"
    part = size // 4
    value = " ".join(
        [
            "ab+c.d-" * (part // 7),
            "a:/" * (part // 3),
            "x://" + "u:p@" * (part // 4),
            url,
            "a" * part,
        ]
    )
    best = float("inf")
    for _attempt in range(3):
        started = time.thread_time()
        redactor = Redactor()
        redactor.add_environment({"HUGE_TOKEN": value})
        redactor.collect({"description": value})
        masked = redactor.redact(f"{value} {url}")
        best = min(best, time.thread_time() - started)
        assert URL_CANARY not in masked
    return best


def test_redaction_is_linear_in_the_size_of_a_value() -> None:
    # Quadratic before: 100k characters took seconds, 4 MB never finished.
    four = _redaction_seconds(4 * 1024 * 1024)
    assert four < 1.0
    eight = _redaction_seconds(8 * 1024 * 1024)
    assert eight < 3 * four + 0.1, (four, eight)


def test_many_secrets_are_masked_longest_first_like_one_alternation() -> None:
    secrets = ["ab", "abc", "abcd", "b.c", "bcd", "c", "x" * 300, "z" * 299 + "y"]
    redactor = Redactor(secrets)
    text = "abcde ab b.cd abx bcdx " + "x" * 301 + "y " + "z" * 300 + "y"
    assert redactor.redact(text) == "***e *** ***d ***x ***x ***xy z***"


def test_unredact_puts_back_the_one_secret_a_mask_stands_for() -> None:
    redactor = Redactor(["hunter2secret"])
    shown = redactor.redact("in/hunter2secret/a.csv")
    assert shown == "in/***/a.csv"
    assert redactor.unredact(shown) == "in/hunter2secret/a.csv"
    assert redactor.unredact("plain/a.csv") == "plain/a.csv"
    assert Redactor().unredact("literally/***/a.csv") == "literally/***/a.csv"
    two = Redactor(["first-secret", "other-secret"])
    with pytest.raises(ValueError, match="several secrets"):
        two.unredact("in/***/a.csv")
