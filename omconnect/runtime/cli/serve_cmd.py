"""``omconnect serve PIPELINES_DIR``: the long-running worker.

Runs every pipeline file of the folder (continuous ones, and ``schedule:`` ones at their cron
ticks) with the HTTP API, Prometheus metrics and a status page. The API also serves the
embedded schema registry of ``--state`` (default ``.omconnect``, the pipelines' default
``state:``) with Confluent's Schema Registry REST API at its root. Refuses to start (exit 2),
listing every problem as ``FILE:LINE: KEY: PROBLEM``, when any file is invalid. SIGTERM or
SIGINT stop every pipeline cleanly and exit 0; a second signal exits at once (130). A stop
always ends: runs still going after 10 s are cancelled, and a run that even a cancel cannot end
(a connector call that never returns) is abandoned with an error naming it (exit 1), at the
latest 15 s after the signal.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from omconnect.runtime.cli.logging_setup import setup_logging
from omconnect.runtime.cli.stop_signals import exit_abandoning, stop_on_signals
from omconnect.runtime.config.model import DEFAULT_STATE
from omconnect.runtime.serve.pipeline_folder import PipelineFolderError, load_pipeline_folder
from omconnect.runtime.serve.service import run_service
from omconnect.runtime.serve.supervisor import Supervisor
from omconnect.runtime.state import StateUnavailableError, open_schema_registry
from omconnect.runtime.state.schema_registry import SchemaRegistry

log = logging.getLogger("omconnect.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8083
HOST_VARIABLE = "OMCONNECT_HTTP_HOST"
PORT_VARIABLE = "OMCONNECT_HTTP_PORT"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=serve_command)
    parser.add_argument("pipelines_dir", metavar="PIPELINES_DIR", help="folder of *.yaml files")
    parser.add_argument(
        "--host",
        default=os.environ.get(HOST_VARIABLE, DEFAULT_HOST),
        help=f"address of the HTTP API (default ${HOST_VARIABLE} or {DEFAULT_HOST}; "
        "0.0.0.0 listens on every interface)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=os.environ.get(PORT_VARIABLE) or str(DEFAULT_PORT),
        help=f"port of the HTTP API (default ${PORT_VARIABLE} or {DEFAULT_PORT}; 0 picks one)",
    )
    parser.add_argument(
        "--state",
        default=DEFAULT_STATE,
        help="the state whose embedded schema registry the API serves at /subjects, /schemas, "
        f"/config and /compatibility, as Confluent's Schema Registry (default {DEFAULT_STATE})",
    )


def _port(text: str) -> int:
    """A TCP port number, 0 to 65535 (argparse also applies it to the default from
    ``$OMCONNECT_HTTP_PORT``)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port: expected 0 to 65535 (from --port or ${PORT_VARIABLE})"
        )
    return port


def serve_command(args: argparse.Namespace) -> int:
    """Run the worker until a signal; the exit status of ``omconnect serve``."""
    try:
        pipelines = load_pipeline_folder(args.pipelines_dir)
    except PipelineFolderError as exc:
        print(str(exc), file=sys.stderr)
        print(f"{args.pipelines_dir}: not starting: fix the problems above", file=sys.stderr)
        return 2
    supervisor = Supervisor(pipelines)
    supervisor.redactor.add_url_passwords(args.state)  # a postgresql:// state's password
    setup_logging(getattr(args, "log_level", "INFO"), supervisor.redactor)
    try:
        registry = open_schema_registry(args.state)
    except StateUnavailableError as exc:
        log.error("--state %s: %s", args.state, exc)
        return 2
    except Exception as exc:  # each store fails in its own way (a file in the way, a lock)
        log.error("cannot open the schema registry of --state %s: %s", args.state, exc)
        return 1
    try:
        asyncio.run(_serve(supervisor, args.host, args.port, registry))
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc.strerror or exc)
        return 1
    return 0


async def _serve(supervisor: Supervisor, host: str, port: int, registry: SchemaRegistry) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop)
    await run_service(supervisor, host, port, stop, registry=registry)
    if supervisor.abandoned:
        # The event loop's own shutdown would wait for them again.
        exit_abandoning(supervisor.abandoned)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m omconnect.runtime.cli.serve_cmd PIPELINES_DIR [--host H] [--port P]
    [--state S]``."""
    parser = argparse.ArgumentParser(prog="omconnect serve", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    add_arguments(parser)
    return serve_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
