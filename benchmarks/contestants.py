"""The contestants of the CSV -> Parquet benchmark (B3) that run in the project's environment.

A contestant turns (input CSV, fresh run directory) into an ``Invocation``: the command to
measure and the directory whose Parquet files the oracle checks. Peers that need their own
virtualenv (dlt, sling) are built in ``peers.py``. On S3 (``csv_to_parquet.py --storage s3``)
the contestants of ``s3_contestants`` read the CSV uploaded under its file's name and write
under a prefix of their run's; the harness downloads that prefix for the oracle.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3_endpoint import S3Endpoint

BENCHMARKS_DIR = Path(__file__).resolve().parent

# omconnect's run summary line: "... elapsed=3.6s write_rate=276,000 rows/s"
_ELAPSED = re.compile(r"\belapsed=([0-9.]+)s\b")


@dataclass(frozen=True)
class Invocation:
    """One run of a contestant.

    Attributes:
        argv: The command to measure.
        env: Its whole environment.
        output_dir: Where its Parquet output lands (what the oracle reads); on S3, where the
            harness downloads ``output_prefix`` to.
        output_prefix: On S3, the key prefix its Parquet files land under (None: local).
    """

    argv: list[str]
    env: dict[str, str]
    output_dir: Path
    output_prefix: str | None = None


@dataclass(frozen=True)
class Contestant:
    """A tool in the race.

    Attributes:
        name: Short name used in tables and on the command line.
        description: How it reads and writes, one line for the results table.
        prepare: ``(csv_path, run_dir) -> Invocation``; may write files into ``run_dir``.
        not_run: Why it cannot run here (None when it can).
        inner_seconds: Reads the tool's own elapsed time from its stdout+stderr, if it prints one.
    """

    name: str
    description: str
    prepare: Callable[[Path, Path], Invocation]
    not_run: str | None = None
    inner_seconds: Callable[[str], float | None] = field(default=lambda _output: None)


def omconnect_pipeline_yaml(
    csv_path: Path | str, sink_path: str = "out/", s3: S3Endpoint | None = None
) -> str:
    """The pipeline the omconnect contestant runs: CSV -> embedded topic (Avro) -> Parquet.

    The same shape as the quick start, without its filter (B3 measures moving every row).
    With ``s3``, ``csv_path`` and ``sink_path`` are ``s3://`` URLs of that endpoint, reached
    with the ``s3:`` options (the secret from ``$BENCH_S3_SECRET``, as the docs ask).
    """
    source = csv_path if isinstance(csv_path, str) else str(csv_path.resolve())
    options = ""
    if s3 is not None:
        options = (
            "  s3:\n"
            f"    endpoint_url: {s3.endpoint_url}\n"
            f"    region: {s3.region}\n"
            f"    access_key_id: {s3.access_key_id}\n"
            "    secret_access_key: ${BENCH_S3_SECRET}\n"
        )
    return (
        "name: bench-csv-to-parquet\n"
        "broker: embedded://.omconnect\n"
        "state: .omconnect\n"
        "source:\n"
        "  connector: csv\n"
        f"  path: {source}\n"
        "  key: [id]\n"
        f"{options}"
        "topic: t1m\n"
        "format: avro\n"
        "sink:\n"
        "  connector: parquet\n"
        f"  path: {sink_path}\n"
        f"{options}"
    )


@functools.cache
def _compile_omconnect() -> None:
    """Byte-compile omconnect's modules, as installing its wheel does (and as pip did for
    every peer): an editable checkout run with ``PYTHONDONTWRITEBYTECODE`` would otherwise
    parse its sources again in every timed run (about 0.15 s of start-up here)."""
    import compileall

    import omconnect

    compileall.compile_dir(Path(omconnect.__file__).parent, quiet=1)


def _omconnect_command() -> list[str]:
    _compile_omconnect()
    script = Path(sys.executable).parent / "omconnect"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "omconnect.runtime.cli.main"]


def _prepare_omconnect(csv_path: Path, run_dir: Path) -> Invocation:
    pipeline = run_dir / "pipeline.yaml"
    pipeline.write_text(omconnect_pipeline_yaml(csv_path))
    return Invocation(
        argv=[*_omconnect_command(), "run", str(pipeline), "--once"],
        env=dict(os.environ),
        output_dir=run_dir / "out",
    )


def omconnect_inner_seconds(output: str) -> float | None:
    """The ``elapsed=`` of omconnect's run summary (the pipeline alone, no start-up)."""
    found = _ELAPSED.findall(output)
    return float(found[-1]) if found else None


def _prepare_pyarrow(csv_path: Path, run_dir: Path) -> Invocation:
    return Invocation(
        argv=[
            sys.executable,
            str(BENCHMARKS_DIR / "pyarrow_csv_to_parquet.py"),
            str(csv_path.resolve()),
            str(run_dir / "out"),
        ],
        env=dict(os.environ),
        output_dir=run_dir / "out",
    )


OMCONNECT = Contestant(
    name="omconnect",
    description=(
        "`omconnect run --once`: csv source -> embedded topic (Avro) -> parquet sink (zstd)"
    ),
    prepare=_prepare_omconnect,
    inner_seconds=omconnect_inner_seconds,
)

PYARROW = Contestant(
    name="pyarrow",
    description="pyarrow `csv.open_csv` -> `ParquetWriter` (zstd), streaming, no topic",
    prepare=_prepare_pyarrow,
)


def s3_contestants(s3: S3Endpoint) -> list[Contestant]:
    """omconnect and pyarrow reading the CSV from ``s3`` and writing Parquet back to it."""

    def prepare_omconnect(csv_path: Path, run_dir: Path) -> Invocation:
        prefix = s3.output_prefix(run_dir.name)
        pipeline = run_dir / "pipeline.yaml"
        pipeline.write_text(omconnect_pipeline_yaml(s3.url(csv_path.name), s3.url(prefix), s3=s3))
        return Invocation(
            argv=[*_omconnect_command(), "run", str(pipeline), "--once"],
            env={**os.environ, "BENCH_S3_SECRET": s3.secret_access_key},
            output_dir=run_dir / "out",
            output_prefix=prefix,
        )

    def prepare_pyarrow(csv_path: Path, run_dir: Path) -> Invocation:
        prefix = s3.output_prefix(run_dir.name)
        return Invocation(
            argv=[
                sys.executable,
                str(BENCHMARKS_DIR / "pyarrow_csv_to_parquet.py"),
                s3.url(csv_path.name),
                s3.url(prefix),
                *("--s3-endpoint", s3.endpoint_url),
            ],
            env={**os.environ, **s3.credentials_env()},
            output_dir=run_dir / "out",
            output_prefix=prefix,
        )

    return [
        Contestant(
            name=OMCONNECT.name,
            description=(
                "`omconnect run --once`: csv source (`s3://` path, `s3:` endpoint options) -> "
                "embedded topic (Avro) -> parquet sink (zstd) to an `s3://` prefix"
            ),
            prepare=prepare_omconnect,
            inner_seconds=omconnect_inner_seconds,
        ),
        Contestant(
            name=PYARROW.name,
            description=(
                "pyarrow `S3FileSystem(endpoint_override=..., scheme='http')`: "
                "`csv.open_csv` on its input stream -> `ParquetWriter` (zstd) to S3"
            ),
            prepare=prepare_pyarrow,
        ),
    ]


def omconnect_at(ref: str, work_dir: Path) -> Contestant:
    """omconnect as of git ``ref`` (say ``HEAD~1``), in the same environment as the current
    code, so a change is measured against the code before it in the same run.

    The tree of ``ref`` is exported to ``work_dir/baseline-<commit>`` and put first on
    ``PYTHONPATH``, with a ``dist-info`` holding the entry points of ``ref``'s pyproject: the
    first distribution of a name on the path wins, so its plugins load from its own modules
    even where the two versions name them differently.
    """
    exported = export_baseline(ref, work_dir)
    if isinstance(exported, str):
        return Contestant(f"omconnect@{ref}", "", _prepare_omconnect, not_run=exported)
    sha, tree = exported

    def prepare(csv_path: Path, run_dir: Path) -> Invocation:
        invocation = _prepare_omconnect(csv_path, run_dir)
        env = dict(invocation.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
        argv = [sys.executable, "-m", "omconnect.runtime.cli.main", *invocation.argv[-3:]]
        return Invocation(argv=argv, env=env, output_dir=invocation.output_dir)

    return Contestant(
        name=f"omconnect@{sha}",
        description=f"the same pipeline on omconnect as of commit {sha} (the baseline)",
        prepare=prepare,
        inner_seconds=omconnect_inner_seconds,
    )


def export_baseline(ref: str, work_dir: Path) -> tuple[str, Path] | str:
    """The short commit of git ``ref`` and its ``omconnect`` tree exported under ``work_dir``
    (``baseline-<commit>``, with the ``dist-info`` of its entry points), or why not."""
    repo = BENCHMARKS_DIR.parent
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=repo, capture_output=True, text=True
    )
    if commit.returncode != 0:
        return commit.stderr.strip() or f"no git ref {ref}"
    sha = commit.stdout.strip()
    tree = work_dir / f"baseline-{sha}"
    if not (tree / "omconnect").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", sha, "omconnect"], cwd=repo, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    if not any(tree.glob("omconnect-*.dist-info")):  # also a tree exported by an older run
        pyproject = subprocess.run(
            ["git", "show", f"{sha}:pyproject.toml"], cwd=repo, capture_output=True, check=True
        )
        _write_dist_info(tree, sha, tomllib.loads(pyproject.stdout.decode()))
    return sha, tree


def _write_dist_info(tree: Path, sha: str, pyproject: dict[str, Any]) -> None:
    """``omconnect``'s distribution metadata as of ``sha`` in ``tree``: its name and its entry
    points (connectors, transforms, brokers), as an installer would write them."""
    info = tree / f"omconnect-0.0.0+{sha}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: omconnect\nVersion: 0.0.0+{sha}\n"
    )
    groups = pyproject.get("project", {}).get("entry-points", {})
    lines = []
    for group, entries in groups.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {target}" for name, target in entries.items())
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
