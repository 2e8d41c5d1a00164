"""``omconnect run PIPELINE.yaml [--once]``.

Exit 0 when the run ended cleanly, 2 for an invalid pipeline file, 1 when the run failed or
the pipeline already runs in another process (the message names it: pid, host, command,
start time).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from omconnect.runtime.cli.logging_setup import setup_logging
from omconnect.runtime.cli.progress import report_progress
from omconnect.runtime.cli.stop_signals import stop_on_signals
from omconnect.runtime.config.loader import LoadedPipeline, load_pipeline
from omconnect.runtime.config.problems import PipelineConfigError
from omconnect.runtime.state import PipelineRunningError
from omconnect.runtime.worker.log_context import set_log_context
from omconnect.runtime.worker.runner import PipelineRunner

log = logging.getLogger("omconnect.run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", help="the pipeline YAML file")
    parser.add_argument(
        "--once",
        action="store_true",
        help="read what is there now, deliver it to the topic and the sink, commit, exit 0",
    )
    parser.add_argument(
        "--task",
        dest="tasks",
        type=int,
        action="append",
        metavar="N",
        help=(
            "run only source task N (repeatable; numbered from 0 as the source splits its work "
            "into the pipeline's `tasks:`), so that the tasks of one pipeline run in separate "
            "processes or machines, each with its own positions"
        ),
    )
    parser.add_argument(
        "--no-sink",
        action="store_true",
        help="publish the source's records without running the sink (with --task: a fan-out)",
    )
    parser.add_argument(
        "--sink-only",
        action="store_true",
        help="run the sink alone, on what the source's tasks published (after a fan-out)",
    )
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    try:
        loaded = load_pipeline(args.pipeline)
    except PipelineConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    setup_logging(args.log_level, loaded.redactor)
    set_log_context(pipeline=loaded.config.name)
    if args.sink_only and (args.tasks or args.no_sink):
        print(
            "--sink-only runs the sink and no source task: not with --task or --no-sink",
            file=sys.stderr,
        )
        return 2
    tasks = [] if args.sink_only else args.tasks
    try:
        metrics = asyncio.run(_run(loaded, args.once, tasks, not args.no_sink))
    except PipelineConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except PipelineRunningError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except Exception as exc:  # the top of the program: report, redacted, and fail
        message = loaded.redactor.redact(f"{type(exc).__name__}: {exc}")
        log.error("pipeline %s failed: %s", loaded.config.name, message)
        log.debug("traceback", exc_info=True)
        return 1
    log.info("%s", metrics.summary())
    return 0


async def _run(loaded: LoadedPipeline, once: bool, tasks: list[int] | None, sink: bool) -> Any:
    stop = asyncio.Event()
    stop_on_signals(stop)
    runner = PipelineRunner(loaded, once=once, command="omconnect run", tasks=tasks, sink=sink)
    done = asyncio.Event()
    progress = asyncio.create_task(report_progress(runner.metrics, done))
    try:
        return await runner.run(stop)
    finally:
        done.set()
        await progress
