"""One run of a pipeline file for Airflow: the runner ``omconnect run --once`` uses, and its
summary as a JSON-able dict (the operator's XCom, the trigger's event).

The operator calls ``run_pipeline`` in its worker process. The trigger runs this module as a
child process (``python -m omconnect.runtime.airflow.pipeline_run``), so that the pipeline
never runs on the triggerer's shared event loop: the child prints the summary as one JSON
line on stdout and exits 0, ``EXIT_FAILED`` when the run failed (the reason, redacted, on
stderr), ``EXIT_INVALID`` for a pipeline file that does not load, and ``EXIT_BUSY`` when the
pipeline (or one of its tasks) already runs elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omconnect.runtime.config.loader import LoadedPipeline, load_pipeline
from omconnect.runtime.config.problems import PipelineConfigError
from omconnect.runtime.config.reference_resolvers import register_resolver
from omconnect.runtime.pipeline_positions import pipeline_offsets
from omconnect.runtime.state import PipelineRunningError
from omconnect.runtime.worker.collector import batch_collections
from omconnect.runtime.worker.metrics import PipelineMetrics
from omconnect.runtime.worker.runner import PipelineRunner

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_BUSY = 75  # EX_TEMPFAIL: try again later
MAX_SUMMARY_POSITIONS = 1000
"""Positions listed in a summary at most (an XCom stays small; the count is always there)."""
PREFETCHED_ENV = "OMCONNECT_AIRFLOW_REFERENCES"
"""The child's environment variable holding the trigger's resolved ``${airflow...}`` values."""
_WATCH_SECONDS = 0.2


@dataclass(frozen=True)
class RunRequest:
    """What to run: ``pipeline`` from ``working_dir`` (where its relative paths start, as the
    directory ``omconnect run`` is started in), which of its source tasks and whether its
    sink, and until when: ``once`` (caught up: what is there now is delivered) or, for a
    streaming run, until ``until_records`` records were written (published, without a sink)."""

    pipeline: str
    working_dir: str | None = None
    tasks: tuple[int, ...] | None = None
    sink: bool = True
    until_records: int | None = None

    @property
    def once(self) -> bool:
        return self.until_records is None


class PipelineBusyError(RuntimeError):
    """The pipeline, or a task of it, runs in another process."""


def run_pipeline(
    request: RunRequest, on_loaded: Callable[[LoadedPipeline], None] | None = None
) -> dict[str, Any]:
    """Load and run the request in this process and return its summary; ``on_loaded`` sees
    the loaded pipeline before it runs.

    The process's working directory is ``request.working_dir`` for the run (an Airflow task
    has its process to itself; restored afterwards).

    Raises:
        PipelineConfigError: the file does not load (redacted).
        PipelineBusyError: it already runs elsewhere.
        RuntimeError: the run failed, its connectors' checks too (a file not there yet, a
            database that cannot be reached); the message is redacted.
    """
    with working_directory(request.working_dir):
        loaded = load_pipeline(request.pipeline)
        if on_loaded is not None:
            on_loaded(loaded)
        with batch_collections():
            return asyncio.run(_run(loaded, request, asyncio.Event()))


async def _run(loaded: LoadedPipeline, request: RunRequest, stop: asyncio.Event) -> dict[str, Any]:
    started = time.monotonic()
    try:
        runner = PipelineRunner(
            loaded, once=request.once, command="airflow", tasks=request.tasks, sink=request.sink
        )
        if request.until_records is None:
            metrics = await runner.run(stop)
        else:
            metrics = await _run_until(runner, stop, request.until_records)
    except PipelineRunningError as exc:
        raise PipelineBusyError(loaded.redactor.redact(str(exc))) from None
    except PipelineConfigError as exc:  # the connectors' own checks: what they reach may change
        raise RuntimeError(str(exc)) from None
    except Exception as exc:
        message = loaded.redactor.redact(f"{type(exc).__name__}: {exc}")
        raise RuntimeError(f"pipeline {loaded.config.name} failed: {message}") from None
    return await summary(loaded, metrics, time.monotonic() - started)


async def _run_until(runner: PipelineRunner, stop: asyncio.Event, records: int) -> PipelineMetrics:
    """Run continuously and stop cleanly (committing what was delivered) after ``records``."""
    run = asyncio.ensure_future(runner.run(stop))
    metrics = runner.metrics
    while not run.done():
        delivered = metrics.rows_written if runner.runs_sink else metrics.rows_published
        if delivered >= records:
            stop.set()
            break
        await asyncio.wait({run}, timeout=_WATCH_SECONDS)
    return await run


async def summary(
    loaded: LoadedPipeline, metrics: PipelineMetrics, seconds: float
) -> dict[str, Any]:
    """The XCom of a run: its counters and the pipeline's committed positions, redacted."""
    try:
        positions: list[dict[str, Any]] | str = await pipeline_offsets(loaded)
    except Exception as exc:  # the counters still stand without the positions
        positions = f"unavailable: {type(exc).__name__}: {exc}"
    listed = positions[:MAX_SUMMARY_POSITIONS] if isinstance(positions, list) else positions
    result = {
        "pipeline": loaded.config.name,
        **metrics.counts(),
        "positions_committed": len(positions) if isinstance(positions, list) else None,
        "positions": listed,
        "duration_seconds": round(seconds, 3),
    }
    redacted: dict[str, Any] = loaded.redactor.redact_value(result)
    return redacted


@contextlib.contextmanager
def working_directory(directory: str | None) -> Iterator[None]:
    """The process works in ``directory`` (None: where it is) until the block ends."""
    if directory is None:
        yield
        return
    before = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)


def register_prefetched(values: Mapping[str, str]) -> None:
    """Resolve ``${airflow:...}``/``${airflow_var:...}`` from ``values`` (keyed by the
    reference's text, ``airflow:conn_id``): what the trigger fetched for its child."""
    for prefix in {key.partition(":")[0] for key in values}:
        register_resolver(prefix, functools.partial(_prefetched, values, prefix))


def _prefetched(values: Mapping[str, str], prefix: str, name: str) -> str:
    try:
        return values[f"{prefix}:{name}"]
    except KeyError:
        raise LookupError(f"{prefix} {name!r} was not fetched") from None


def _parse_args(argv: list[str] | None) -> RunRequest:
    parser = argparse.ArgumentParser(prog="python -m omconnect.runtime.airflow.pipeline_run")
    parser.add_argument("pipeline")
    parser.add_argument("--task", dest="tasks", type=int, action="append")
    parser.add_argument("--no-sink", action="store_true")
    parser.add_argument("--sink-only", action="store_true")
    parser.add_argument("--until-records", type=int)
    args = parser.parse_args(argv)
    tasks = () if args.sink_only else tuple(args.tasks) if args.tasks else None
    return RunRequest(args.pipeline, None, tasks, not args.no_sink, args.until_records)


def main(argv: list[str] | None = None) -> int:
    """The trigger's child: run, print the summary as JSON, exit with the status above."""
    from omconnect.runtime.cli.logging_setup import setup_logging
    from omconnect.runtime.cli.stop_signals import stop_on_signals

    request = _parse_args(argv)
    register_prefetched(json.loads(os.environ.pop(PREFETCHED_ENV, "{}")))
    try:
        loaded = load_pipeline(request.pipeline)
    except PipelineConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    # Warnings and errors only (the trigger keeps stderr for the failure's message), redacted.
    setup_logging("WARNING", loaded.redactor)

    async def watched() -> dict[str, Any]:
        # SIGTERM (the trigger cancelled) stops the run cleanly: nothing undelivered is
        # committed, so the next run delivers it.
        stop = asyncio.Event()
        stop_on_signals(stop)
        return await _run(loaded, request, stop)

    try:
        result = asyncio.run(watched())
    except PipelineBusyError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BUSY
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
