"""``omconnect serve PIPELINES_DIR``: the long-running worker.

Runs every pipeline file of the folder (continuous ones, and ``schedule:`` ones at their cron
ticks; the folder is re-read on change and on SIGHUP) with the HTTP API, Prometheus metrics and
a status page. The API also serves the embedded schema registry of ``--state`` (default
``$OMCONNECT_STATE`` or ``.omconnect``, the pipelines' default ``state:``) with Confluent's
Schema Registry REST API at its root. Refuses to start (exit 2), listing every problem as
``FILE:LINE: KEY: PROBLEM``, when any file is invalid. SIGTERM or SIGINT stop every pipeline
cleanly and exit 0; a second signal exits at once (130). A stop always ends: runs still going
after 10 s are cancelled, and a run that even a cancel cannot end (a connector call that never
returns) is abandoned with an error naming it (exit 1), at the latest 15 s after the signal.

The API is secure by default: every request but ``/health`` needs the bearer token
(``--token-file``, ``$OMCONNECT_API_TOKEN_FILE``, ``$OMCONNECT_API_TOKEN``, or else the token
generated on the first start into ``STATE/api-token`` with mode 0600; ``serve`` logs the file's
path, and shows the token itself only on a terminal), ``--public-reads`` lets GET and HEAD
through without it, and only the loopback names, ``--host`` and ``--allowed-host`` may be
addressed (see ``runtime.serve.access_guard``). ``--tls-cert`` and ``--tls-key`` serve HTTPS.

``--idle-after`` and ``--stalled-after`` say when a running pipeline shows as idle (no record
for that long) or stalled (a task showed no life for that long); a pipeline's ``freshness:``
overrides them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from omconnect.runtime.cli.logging_setup import setup_logging
from omconnect.runtime.cli.stop_signals import exit_abandoning, stop_on_signals
from omconnect.runtime.config.durations import parse_duration
from omconnect.runtime.config.model import DEFAULT_STATE
from omconnect.runtime.serve.access_guard import ApiAccess
from omconnect.runtime.serve.api_token import (
    TOKEN_FILE_VARIABLE,
    TOKEN_VARIABLE,
    ApiToken,
    ApiTokenError,
    resolve_api_token,
)
from omconnect.runtime.serve.freshness import (
    IDLE_AFTER_SECONDS,
    STALLED_AFTER_SECONDS,
    FreshnessPolicy,
)
from omconnect.runtime.serve.pipeline_folder import PipelineFolderError, load_pipeline_folder
from omconnect.runtime.serve.service import run_service
from omconnect.runtime.serve.supervisor import Supervisor
from omconnect.runtime.serve.uvicorn_server import TlsError, TlsFiles
from omconnect.runtime.state import (
    DirectoryState,
    StateUnavailableError,
    open_schema_registry,
    open_state,
)
from omconnect.runtime.state.schema_registry import SchemaRegistry

log = logging.getLogger("omconnect.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8083
HOST_VARIABLE = "OMCONNECT_HTTP_HOST"
PORT_VARIABLE = "OMCONNECT_HTTP_PORT"
STATE_VARIABLE = "OMCONNECT_STATE"


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
        default=os.environ.get(STATE_VARIABLE) or DEFAULT_STATE,
        help="the state whose embedded schema registry the API serves at /subjects, /schemas, "
        "/config and /compatibility, as Confluent's Schema Registry, and where a token "
        f"generated for the API is kept (default ${STATE_VARIABLE} or {DEFAULT_STATE})",
    )
    access = parser.add_argument_group("access to the HTTP API")
    access.add_argument(
        "--token-file",
        metavar="PATH",
        help=f"file holding the bearer token the API requires (default ${TOKEN_FILE_VARIABLE}, "
        f"then the token in ${TOKEN_VARIABLE}, else one generated into STATE/api-token)",
    )
    access.add_argument(
        "--public-reads",
        action="store_true",
        help="answer GET and HEAD requests without the token (changes still need it)",
    )
    access.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name clients may address the API by, besides localhost, 127.0.0.1, ::1 "
        "and --host (repeatable; * allows any, e.g. behind a proxy that checks it)",
    )
    access.add_argument("--tls-cert", metavar="FILE", help="PEM certificate (chain): serve HTTPS")
    access.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    freshness = parser.add_argument_group("freshness (status, /metrics and the status page)")
    freshness.add_argument(
        "--idle-after",
        type=_positive_duration,
        default=IDLE_AFTER_SECONDS,
        metavar="DURATION",
        help="a running pipeline whose tasks show life but read no record for this long is "
        f"idle (default {IDLE_AFTER_SECONDS:g}s; a pipeline's freshness.idle_after overrides it)",
    )
    freshness.add_argument(
        "--stalled-after",
        type=_positive_duration,
        default=STALLED_AFTER_SECONDS,
        metavar="DURATION",
        help="a running pipeline with a task that showed no life (no poll returned) for this "
        f"long is stalled (default {STALLED_AFTER_SECONDS:g}s; a pipeline's "
        "freshness.stalled_after overrides it)",
    )


def _positive_duration(text: str) -> float:
    """Seconds from ``30``, ``"90s"``, ``"2m"``: more than zero."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than zero")
    return seconds


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
    freshness = FreshnessPolicy(stalled_after=args.stalled_after, idle_after=args.idle_after)
    supervisor = Supervisor(pipelines, folder=args.pipelines_dir, freshness=freshness)
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
    if args.tls_key and not args.tls_cert:
        log.error("--tls-key needs --tls-cert")
        return 2
    try:
        token = _api_token(args)
    except ApiTokenError as exc:
        log.error("%s", exc)
        return 2
    supervisor.redactor.add(token.value)
    access = ApiAccess.served(token.value, args.host, args.allowed_host, args.public_reads)
    tls = (
        TlsFiles(Path(args.tls_cert), args.tls_key and Path(args.tls_key))
        if args.tls_cert
        else None
    )
    try:
        asyncio.run(_serve(supervisor, args.host, args.port, access, registry, tls))
    except TlsError as exc:
        log.error("%s", exc)
        return 2
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", args.host, args.port, exc.strerror or exc)
        return 1
    return 0


def _api_token(args: argparse.Namespace) -> ApiToken:
    """The API token, its source logged (never the token, but on a terminal when new)."""
    state = open_state(args.state)
    directory = state.directory.absolute() if isinstance(state, DirectoryState) else None
    token = resolve_api_token(args.token_file, directory, os.environ)
    if token.generated:
        log.warning(
            "the HTTP API requires a bearer token: generated one into %s (readable by its "
            "owner only); send it as 'Authorization: Bearer TOKEN'",
            token.path,
        )
        if sys.stderr.isatty():  # a terminal is not a collected log
            print(f"API token: {token.value}", file=sys.stderr)
    else:
        log.info("the HTTP API requires the bearer token from %s", token.source)
    return token


async def _serve(
    supervisor: Supervisor,
    host: str,
    port: int,
    access: ApiAccess,
    registry: SchemaRegistry,
    tls: TlsFiles | None,
) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop)
    await run_service(supervisor, host, port, stop, access, registry=registry, tls=tls)
    if supervisor.abandoned:
        # The event loop's own shutdown would wait for them again.
        exit_abandoning(supervisor.abandoned)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m omconnect.runtime.cli.serve_cmd PIPELINES_DIR [options]`` (``omconnect
    serve``'s options)."""
    parser = argparse.ArgumentParser(prog="omconnect serve", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    add_arguments(parser)
    return serve_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
