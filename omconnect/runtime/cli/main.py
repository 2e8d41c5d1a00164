"""``omconnect``: the command line. Each command lives in its own module of this package.

Every command runs under ``failures.report_failure``: a failure is one line on stderr and a
non-zero exit, never a traceback (``--log-level DEBUG`` prints it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from omconnect import __version__
from omconnect.runtime.cli import (
    connectors_cmd,
    failures,
    offsets_cmd,
    run_cmd,
    schema_cmd,
    serve_cmd,
    topics_cmd,
    validate_cmd,
)


def build_parser() -> argparse.ArgumentParser:
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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        run_cmd,
        validate_cmd,
        connectors_cmd,
        topics_cmd,
        offsets_cmd,
        serve_cmd,
        schema_cmd,
    ):
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the top of the program: one clear line, no traceback
        command = " ".join(
            str(word) for word in (args.command, getattr(args, "action", None)) if word
        )
        debug = str(args.log_level).upper() == "DEBUG"
        return failures.report_failure(error, command, debug)


if __name__ == "__main__":
    sys.exit(main())
