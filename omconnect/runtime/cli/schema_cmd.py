"""``omconnect schema``: the JSON Schema of pipeline files, for editor completion."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omconnect.runtime.config.json_schema import pipeline_json_schema


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help="write it to this file instead of printing it")
    parser.set_defaults(handler=schema_command)


def render_pipeline_schema() -> str:
    return json.dumps(pipeline_json_schema(), indent=2, sort_keys=True) + "\n"


def schema_command(args: argparse.Namespace) -> int:
    text = render_pipeline_schema()
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text, end="")
    return 0
