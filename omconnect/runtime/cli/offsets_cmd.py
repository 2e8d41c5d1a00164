"""``omconnect offsets list | set | reset | export | import PIPELINE``: stored positions.

Source positions live in the offset store under the pipeline's name; the sink's positions are
the committed offsets of its consumer group on the broker. ``set``, ``reset`` and ``import``
hold the pipeline's lock while they work: they are refused (exit 1) while the pipeline runs.

Positions are printed with the pipeline's secrets masked (``in/***/a.csv``); ``set`` and
``import`` put a masked secret back when exactly one of the pipeline's secrets fits, and ask
the source connector (``SourceConnector.validate_offset``) whether it can resume from each
position before anything is stored. ``list`` and ``export`` create nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omconnect.runtime.cli.failures import USAGE_EXIT, CommandError, note_secrets
from omconnect.runtime.config.loader import LoadedPipeline, load_pipeline
from omconnect.runtime.config.problems import PipelineConfigError
from omconnect.runtime.pipeline_positions import pipeline_offsets
from omconnect.runtime.position_changes import (
    changed_offset_store,
    rewind_sink,
    sink_rewind_refusal,
    unmasked,
    usable_position,
)
from omconnect.runtime.state import PipelineRunningError
from omconnect.runtime.state.backends import open_existing_pipeline_offset_store
from omconnect.runtime.state.offsets import export_offsets, import_offsets
from omconnect.schemas.position_codec import position_from_json
from omconnect.schemas.record import Position


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="source positions and sink consumer offsets")
    listing.add_argument("pipeline")
    listing.set_defaults(handler=list_command)
    setting = actions.add_parser("set", help="store one source position")
    setting.add_argument("pipeline")
    setting.add_argument("--partition", required=True, help='JSON, e.g. \'{"file": "a.csv"}\'')
    setting.add_argument("--offset", required=True, help="JSON, e.g. '{\"row\": 100}'")
    setting.set_defaults(handler=set_command)
    reset = actions.add_parser("reset", help="forget positions so the next run starts over")
    reset.add_argument("pipeline")
    reset.add_argument("--partition", help="JSON of one source partition (default: all)")
    reset.add_argument(
        "--sink", action="store_true", help="also rewind the sink's consumer group to the start"
    )
    reset.set_defaults(handler=reset_command)
    exporting = actions.add_parser("export", help="source positions as JSON lines on stdout")
    exporting.add_argument("pipeline")
    exporting.set_defaults(handler=export_command)
    importing = actions.add_parser("import", help="store source positions from JSON lines")
    importing.add_argument("pipeline")
    importing.add_argument("file", help="a file written by `offsets export` (- for stdin)")
    importing.set_defaults(handler=import_command)


def _load(path: str) -> LoadedPipeline | None:
    try:
        loaded = load_pipeline(path)
    except PipelineConfigError as exc:
        print(str(exc), file=sys.stderr)
        return None
    note_secrets(loaded.redactor)
    return loaded


def _shown(loaded: LoadedPipeline, entry: dict[str, Any]) -> str:
    return json.dumps(loaded.redactor.redact_value(entry))


def _json_object(option: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{option} must be a JSON object: {exc}", USAGE_EXIT) from None
    if not isinstance(value, dict):
        raise CommandError(f"{option} must be a JSON object, not {text!r}", USAGE_EXIT)
    return value


def _refused_while_running(
    command: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    def refusing(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except PipelineRunningError as exc:
            print(str(exc), file=sys.stderr)
            return 1

    return refusing


def list_command(args: argparse.Namespace) -> int:
    loaded = _load(args.pipeline)
    if loaded is None:
        return 2
    for entry in asyncio.run(pipeline_offsets(loaded)):
        print(_shown(loaded, entry))
    return 0


@_refused_while_running
def set_command(args: argparse.Namespace) -> int:
    loaded = _load(args.pipeline)
    if loaded is None:
        return 2
    try:
        partition, offset = json.loads(args.partition), json.loads(args.offset)
    except ValueError as exc:
        print(f"--partition and --offset must be JSON objects: {exc}", file=sys.stderr)
        return 2
    if not isinstance(partition, dict) or not isinstance(offset, dict):
        print("--partition and --offset must be JSON objects", file=sys.stderr)
        return 2
    try:
        # Tagged values ({"$datetime": "..."}) as `offsets list` prints them.
        position = Position(position_from_json(partition), position_from_json(offset))
        position = usable_position(loaded, position)
    except ValueError as exc:
        print(f"--partition/--offset: {exc}", file=sys.stderr)
        return 2
    with changed_offset_store(loaded, "omconnect offsets set") as store:
        store.put(loaded.config.name, [position])
    return 0


@_refused_while_running
def reset_command(args: argparse.Namespace) -> int:
    loaded = _load(args.pipeline)
    if loaded is None:
        return 2
    partition = None
    if args.partition:
        try:
            found = position_from_json(_json_object("--partition", args.partition))
            partition = unmasked(loaded, dict(found))
        except ValueError as exc:
            raise CommandError(f"--partition: {exc}", USAGE_EXIT) from None
    refusal = sink_rewind_refusal(loaded) if args.sink else None
    if refusal is not None:
        raise CommandError(f"--sink: {refusal}", USAGE_EXIT)
    with changed_offset_store(loaded, "omconnect offsets reset") as store:
        removed = store.delete(loaded.config.name, partition)
        print(f"removed {removed} source position(s)")
        if args.sink and loaded.sink is not None:
            asyncio.run(rewind_sink(loaded))
            print("rewound the sink's consumer group to the start")
    return 0


def export_command(args: argparse.Namespace) -> int:
    loaded = _load(args.pipeline)
    if loaded is None:
        return 2
    cfg = loaded.config
    store = open_existing_pipeline_offset_store(cfg.state, cfg.offsets, cfg.broker)
    if store is None:
        return 0
    try:
        for row in export_offsets(store, loaded.config.name):
            print(_shown(loaded, row))
    finally:
        store.close()
    return 0


@_refused_while_running
def import_command(args: argparse.Namespace) -> int:
    loaded = _load(args.pipeline)
    if loaded is None:
        return 2
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    try:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        print(f"{args.file}: not JSON lines: {exc}", file=sys.stderr)
        return 2
    try:
        with changed_offset_store(loaded, "omconnect offsets import") as store:
            count = import_offsets(
                store, loaded.config.name, rows, lambda position: usable_position(loaded, position)
            )
    except ValueError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    print(f"imported {count} source position(s)")
    return 0
