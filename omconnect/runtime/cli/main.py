"""``omconnect``: the command line. Each command lives in its own module of this package.

Start-up imports only the module of the command being run: ``COMMANDS`` lists every command
with its one-line help, which is all ``omconnect --help`` shows, and the command named on the
line adds its own arguments (``add_arguments(parser)``, which sets ``handler``). So ``run``
does not load the HTTP server of ``serve``, nor ``--help`` the pipeline runner.

The process is tuned for batch work before anything heavy is imported: OpenBLAS gets one
thread (omconnect calls no BLAS routine, and numpy's import alone had its idle threads spin for
0.1 CPU-second), and Python's cycle collector runs rarely and skips the objects that exist once
the command is loaded (``worker.collector``).

Every command runs under ``failures.report_failure``: a failure is one line on stderr and a
non-zero exit, never a traceback (``--log-level DEBUG`` prints it).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
from collections.abc import Sequence

from omconnect import __version__
from omconnect.runtime.worker.collector import tune_for_batch_work

COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "run_cmd",
        "run a pipeline until stopped, or with --once until what is there now is delivered",
    ),
    "validate": ("validate_cmd", "check pipeline files; non-zero exit on problems"),
    "connectors": ("connectors_cmd", "list and describe the installed connectors"),
    "topics": ("topics_cmd", "list topics, or print the messages of one"),
    "offsets": ("offsets_cmd", "list, set or reset a pipeline's positions"),
    "serve": (
        "serve_cmd",
        "run a folder of pipelines with an HTTP API, metrics and a status page",
    ),
    "schema": (
        "schema_cmd",
        "print the JSON Schema of pipeline files (for yaml-language-server)",
    ),
}
"""Command name -> (its module in this package, its one-line help)."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``omconnect`` parser, with the arguments of ``command`` only (its module is
    imported); the other commands are their names and help, and accept anything."""
    parser = argparse.ArgumentParser(
        prog="omconnect",
        description="Move data from sources through a broker into sinks, as YAML pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"omconnect {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        help="DEBUG, INFO, WARNING or ERROR (default INFO); DEBUG also shows the traceback "
        "of an unexpected error",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "text"),
        default=os.environ.get("OMCONNECT_LOG_FORMAT", "auto"),
        help="log lines as text, or as one JSON object each (ts, level, logger, message, "
        "pipeline, task); auto (the default, or $OMCONNECT_LOG_FORMAT): text on a terminal, "
        "json otherwise",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        chosen = name == command
        subparser = commands.add_parser(name, help=summary, description=summary, add_help=chosen)
        if chosen:
            importlib.import_module(f"omconnect.runtime.cli.{module}").add_arguments(subparser)
    return parser


def tune_process() -> None:
    """One OpenBLAS thread and a rarer cycle collector (see the module docstring)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    tune_for_batch_work()


def main(argv: Sequence[str] | None = None) -> int:
    tune_process()
    arguments = sys.argv[1:] if argv is None else list(argv)
    # First only the global options and the command's name (--help and --version end there).
    name = build_parser().parse_known_args(arguments)[0].command
    args = build_parser(name).parse_args(arguments)
    if args.log_format != "auto":  # imported only then: logging_setup loads the config layer
        from omconnect.runtime.cli.logging_setup import choose_log_format

        choose_log_format(args.log_format)
    gc.freeze()  # what the command's modules made lives as long as the process
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the top of the program: one clear line, no traceback
        # Imported here: the known failures name classes of the whole runtime.
        from omconnect.runtime.cli.failures import report_failure

        command = " ".join(
            str(word) for word in (args.command, getattr(args, "action", None)) if word
        )
        debug = str(args.log_level).upper() == "DEBUG"
        return report_failure(error, command, debug)


if __name__ == "__main__":
    sys.exit(main())
