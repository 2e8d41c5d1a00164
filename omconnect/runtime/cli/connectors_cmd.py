"""``omconnect connectors list | describe NAME``."""

from __future__ import annotations

import argparse
import sys

from omconnect.connectors.api.plugins import registrations
from omconnect.runtime.docs.connector_pages import render_connector_page


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every connector and transform, with its kind")
    listing.set_defaults(handler=list_command)
    describe = actions.add_parser("describe", help="the options of one connector")
    describe.add_argument("name")
    describe.set_defaults(handler=describe_command)


def list_command(args: argparse.Namespace) -> int:
    rows = [(r.name, r.kind, r.description) for r in registrations()]
    width = max((len(name) for name, _, _ in rows), default=4)
    print(f"{'NAME':<{width}}  {'KIND':<9}  DESCRIPTION")
    for name, kind, description in rows:
        print(f"{name:<{width}}  {kind:<9}  {description}")
    return 0


def describe_command(args: argparse.Namespace) -> int:
    names = {r.name for r in registrations()}
    if args.name not in names:
        print(
            f"unknown connector {args.name!r}; known: {', '.join(sorted(names))}", file=sys.stderr
        )
        return 1
    print(render_connector_page(args.name))
    return 0
