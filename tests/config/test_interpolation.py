"""${VAR}, ${VAR:-default}, ${VAR-default}, ${file:...} and $${ in pipeline files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from omconnect.runtime.config import PipelineConfigError, load_pipeline

Write = Callable[..., Path]


def load_description(write: Write, value: str, env: dict[str, str]) -> str | None:
    path = write(f"name: p\nsink: {{connector: test-sink, path: o}}\ndescription: '{value}'\n")
    return load_pipeline(path, env=env).config.description


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("pre-${A}-${B}-post", {"A": "1", "B": "2"}, "pre-1-2-post"),
        ("${A:-dflt}", {}, "dflt"),
        ("${A:-dflt}", {"A": ""}, "dflt"),
        ("${A:-dflt}", {"A": "set"}, "set"),
        ("${A-dflt}", {}, "dflt"),
        ("${A-dflt}", {"A": ""}, ""),
        ("${A:-}", {}, ""),
        ("$${A} costs $5", {"A": "x"}, "${A} costs $5"),
        ("$ alone, $A and a trailing $", {"A": "x"}, "$ alone, $A and a trailing $"),
        ("${A}", {"A": "a\nb: c"}, "a\nb: c"),
    ],
)
def test_environment_references(
    write_pipeline: Write, value: str, env: dict[str, str], expected: str
) -> None:
    assert load_description(write_pipeline, value, env) == expected


def test_whole_value_number_is_coerced_by_the_model(write_pipeline: Write) -> None:
    path = write_pipeline(
        "name: p\ntasks: ${TASKS}\nsource:\n  connector: test-src\n  path: x\n  batch_size: ${N}\n"
    )
    loaded = load_pipeline(path, env={"TASKS": "3", "N": "250"})
    assert loaded.config.tasks == 3
    assert loaded.source is not None and loaded.source.spec.batch_size == 250  # type: ignore[attr-defined]


def test_undefined_variable_unterminated_and_invalid_references(write_pipeline: Write) -> None:
    path = write_pipeline(
        """
        name: p
        sink:
          connector: test-sink
          path: ${OUT_DIR}/orders
        description: "${oops"
        topic: "${1BAD}"
        """
    )
    with pytest.raises(PipelineConfigError) as caught:
        load_pipeline(path, env={})
    assert str(caught.value).splitlines() == [
        f'{path}:4: sink.path: environment variable "OUT_DIR" is not set and has no default',
        f'{path}:5: description: unterminated "${{" (write "$${{" for a literal "${{")',
        f'{path}:6: topic: invalid reference "${{1BAD}}": expected ${{VAR}}, '
        "${VAR:-default}, ${VAR-default} or ${file:path}",
    ]


def test_keys_are_not_interpolated(write_pipeline: Write) -> None:
    path = write_pipeline(
        "name: p\nsink: {connector: test-sink, path: o}\ntransforms:\n"
        "  - {type: test-rename, fields: {'${A}': b}}\n"
    )
    loaded = load_pipeline(path, env={"A": "x"})
    assert loaded.transforms[0].spec.fields == {"${A}": "b"}  # type: ignore[attr-defined]


def test_file_reference_relative_to_the_pipeline(write_pipeline: Write, tmp_path: Path) -> None:
    (tmp_path / "pipelines" / "secrets").mkdir(parents=True)
    (tmp_path / "pipelines" / "secrets" / "desc.txt").write_text("from a file\n")
    path = write_pipeline(
        "name: p\nsink: {connector: test-sink, path: o}\ndescription: ${file:secrets/desc.txt}\n",
        name="pipelines/p.yaml",
    )
    assert load_pipeline(path, env={}).config.description == "from a file"


def test_file_reference_with_absolute_path(write_pipeline: Write, tmp_path: Path) -> None:
    secret = tmp_path / "abs.txt"
    secret.write_text("absolute\r\n")
    path = write_pipeline(
        f"name: p\nsink: {{connector: test-sink, path: o}}\ndescription: ${{file:{secret}}}\n"
    )
    assert load_pipeline(path, env={}).config.description == "absolute"


def test_file_reference_escaping_the_directory_is_refused(
    write_pipeline: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The working directory and the pipeline directory are both tmp_path/work/...
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (tmp_path / "outside.txt").write_text("do not read me")
    os.symlink(tmp_path / "outside.txt", work / "link.txt")
    path = write_pipeline(
        """
        name: p
        sink: {connector: test-sink, path: o}
        description: ${file:../outside.txt}
        topic: ${file:link.txt}
        """,
        name="work/p.yaml",
    )
    with pytest.raises(PipelineConfigError) as caught:
        load_pipeline(path, env={})
    assert str(caught.value).splitlines() == [
        f'{path}:3: description: file "../outside.txt" is outside the pipeline\'s directory '
        "and the working directory",
        f'{path}:4: topic: file "link.txt" is outside the pipeline\'s directory and the '
        "working directory",
    ]
    assert "do not read me" not in str(caught.value)


def test_file_reference_up_into_the_working_directory_is_allowed(
    write_pipeline: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shared.txt").write_text("shared")
    path = write_pipeline(
        "name: p\nsink: {connector: test-sink, path: o}\ndescription: ${file:../shared.txt}\n",
        name="pipelines/p.yaml",
    )
    assert load_pipeline(path, env={}).config.description == "shared"


def test_missing_file_is_a_problem(write_pipeline: Write) -> None:
    path = write_pipeline(
        "name: p\nsink: {connector: test-sink, path: o}\ndescription: ${file:nope.txt}\n"
    )
    with pytest.raises(PipelineConfigError) as caught:
        load_pipeline(path, env={})
    assert str(caught.value) == (
        f'{path}:3: description: cannot read file "nope.txt": No such file or directory'
    )
