"""``omconnect``: the command line. Each command lives in its own module of this package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from omconnect import __version__
from omconnect.runtime.cli import (
    connectors_cmd,
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
        "--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)"
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


if __name__ == "__main__":
    sys.exit(main())
