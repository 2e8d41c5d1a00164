"""``omconnect validate PIPELINE.yaml...``: refuse bad pipeline files before anything runs."""

from __future__ import annotations

import argparse
import json
import sys

from omconnect.runtime.config.loader import load_pipeline, redacted_config, validate_connectors
from omconnect.runtime.config.problems import PipelineConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipelines", nargs="+", help="pipeline YAML files")
    parser.add_argument(
        "--print", action="store_true", help="print each resolved config (secrets redacted)"
    )
    parser.set_defaults(handler=validate_command)


def validate_command(args: argparse.Namespace) -> int:
    failed = 0
    for path in args.pipelines:
        try:
            loaded = load_pipeline(path)
            validate_connectors(loaded)
        except PipelineConfigError as exc:
            failed += 1
            print(str(exc), file=sys.stderr)
            continue
        print(f"{path}: ok")
        if args.print:
            print(json.dumps(redacted_config(loaded), indent=2, default=str))
    return 1 if failed else 0
