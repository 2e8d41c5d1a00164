"""Whatever bytes a pipeline file holds, loading raises only PipelineConfigError."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omconnect.runtime.config import LoadedPipeline, PipelineConfigError, load_pipeline

KEYS = [
    "name",
    "source",
    "sink",
    "transforms",
    "connector",
    "type",
    "path",
    "tables",
    "batch_size",
    "password",
    "s3",
    "region",
    "batching",
    "linger",
    "max_bytes",
    "schedule",
    "errors",
    "tolerance",
    "tasks",
    "format",
    "fields",
    "where",
    "mode",
    "dsn",
    "topic",
    "<<",
]
CONNECTORS = ["test-src", "test-sink", "test-filter", "test-rename", "csv"]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.sampled_from([*CONNECTORS, "${A}", "${A:-1}", "${file:x}", "$${", "5s", "16MiB", "@daily"]),
    st.text(max_size=20),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=6)
    ),
    max_leaves=30,
)
YAML_FRAGMENTS = st.lists(
    st.sampled_from(
        [
            "name: p\n",
            "sink:\n",
            "  connector: test-sink\n",
            "  path: o\n",
            "- x\n",
            "&a ",
            "*a",
            "!!python/object:os.system ",
            "<<: *a\n",
            "<<: ",
            "!!int ",
            "!!set ",
            "{",
            "}",
            "[",
            "]",
            ": ",
            "'",
            '"',
            "\t",
            "---\n",
            "? ",
            "%YAML 1.1\n",
            "!x ",
            "|\n",
            ">-\n",
            "#",
            "\\",
            "\ufeff",
            "\x00",
        ]
    )
    | st.text(max_size=8),
    max_size=30,
).map("".join)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def load_bytes(directory: Path, content: bytes) -> LoadedPipeline | None:
    path = directory / "fuzz.yaml"
    path.write_bytes(content)
    try:
        return load_pipeline(path, env={"A": "7"})
    except PipelineConfigError as exc:
        assert exc.problems, "an error must say what is wrong"
        return None


FUZZ = settings(
    max_examples=int(os.environ.get("OMCONNECT_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(fuzz_dir: Path, content: bytes) -> None:
    load_bytes(fuzz_dir, content)


@FUZZ
@given(YAML_FRAGMENTS)
def test_yaml_like_text(fuzz_dir: Path, text: str) -> None:
    load_bytes(fuzz_dir, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(DOCUMENTS)
def test_structured_documents(fuzz_dir: Path, document: Any) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    load_bytes(fuzz_dir, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["p", "-bad", "ok.name"])},
        optional={
            "source": st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=5).map(
                lambda d: {"connector": "test-src", **d}
            ),
            "sink": st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=5).map(
                lambda d: {"connector": "test-sink", **d}
            ),
            "batching": st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=3),
            "schedule": SCALARS,
            "tasks": SCALARS,
        },
    )
)
def test_nearly_valid_pipelines(fuzz_dir: Path, document: dict[str, Any]) -> None:
    text = yaml.safe_dump(document, allow_unicode=True)
    load_bytes(fuzz_dir, text.encode("utf-8", "surrogatepass"))
