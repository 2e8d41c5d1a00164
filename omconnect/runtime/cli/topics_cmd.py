"""``omconnect topics list | tail``: look at what is on a broker.

Both only read: they create no broker log, no state directory and no schema registry (an
embedded broker directory without a log is an error). ``tail`` of a topic that does not
exist fails at once with a message saying so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from typing import Any

from omconnect.runtime.brokers import Broker, open_broker, parse_broker_url
from omconnect.runtime.cli.failures import USAGE_EXIT, CommandError
from omconnect.runtime.cli.message_view import MessageView
from omconnect.runtime.state import open_state

DEFAULT_BROKER = "embedded://.omconnect"
DEFAULT_STATE = ".omconnect"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="topics with partitions and message counts")
    listing.add_argument("--broker", default=DEFAULT_BROKER, help=f"default {DEFAULT_BROKER}")
    listing.set_defaults(handler=list_command)
    tail = actions.add_parser("tail", help="print messages as one JSON object per line")
    tail.add_argument("topic")
    tail.add_argument("--broker", default=DEFAULT_BROKER, help=f"default {DEFAULT_BROKER}")
    tail.add_argument(
        "--state", default=DEFAULT_STATE, help="where the schema registry lives (for Avro)"
    )
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    tail.add_argument("--max", type=int, default=None, help="stop after N messages")
    tail.add_argument(
        "--no-follow", action="store_true", help="stop at the end instead of waiting for more"
    )
    tail.add_argument(
        "--format", choices=["json", "text"], default="json", help="output format (default json)"
    )
    tail.set_defaults(handler=tail_command)


def list_command(args: argparse.Namespace) -> int:
    async def listing() -> list[Any]:
        broker = _open(args.broker)
        try:
            return await broker.list_topics()
        finally:
            await broker.close()

    topics = asyncio.run(listing())
    width = max((len(t.name) for t in topics), default=5)
    print(f"{'TOPIC':<{width}}  PARTITIONS  MESSAGES")
    for t in topics:
        print(f"{t.name:<{width}}  {t.partitions:>10}  {t.messages:>8}")
    return 0


def tail_command(args: argparse.Namespace) -> int:
    try:
        asyncio.run(_tail(args))
    except BrokenPipeError:
        sys.stderr.close()
    return 0


def _open(url: str) -> Broker:
    """The broker at ``url``, opened without creating anything."""
    try:
        return open_broker(url, create=False)
    except ValueError as exc:  # a malformed URL or an unknown option (not a secret: a CLI arg)
        raise CommandError(f"--broker: {exc}", USAGE_EXIT) from None


async def _tail(args: argparse.Namespace) -> None:
    state = open_state(args.state)
    broker = _open(args.broker)
    if not broker.capabilities.log:
        # Checked before subscribing: a queue broker would keep a queue for the tail's group.
        await broker.close()
        scheme = parse_broker_url(broker.url).scheme
        raise CommandError(
            f"topics tail reads a log; {scheme}:// is a queue broker, whose messages are in "
            "its consumer groups' queues"
        )
    try:
        topics = {topic.name for topic in await broker.list_topics()}
    except BaseException:
        await broker.close()
        raise
    if args.topic not in topics:
        await broker.close()
        raise CommandError(
            f"topic {args.topic!r} does not exist on {args.broker} "
            "(omconnect topics list shows the topics there)"
        )
    view = MessageView(state.open_existing_schema_registry())
    consumer = await broker.consumer(f"omconnect.tail.{uuid.uuid4().hex}", [args.topic])
    try:
        ends = await consumer.end_offsets()
        if not args.from_beginning:
            await consumer.seek(ends)
        printed = 0
        while args.max is None or printed < args.max:
            batches = await consumer.poll(1000, 0.5)
            if not batches and args.no_follow and _at_end(await consumer.end_offsets(), ends):
                return
            for batch in batches:
                for row in range(len(batch.messages)):
                    item = view.describe(batch, row)
                    if args.format == "json":
                        print(json.dumps(item, ensure_ascii=False), flush=False)
                    else:
                        print(f"{item['partition']}:{item['offset']} {item['key']} {item['value']}")
                    printed += 1
                    if args.max is not None and printed >= args.max:
                        break
                ends[(batch.topic, batch.partition)] = max(
                    ends.get((batch.topic, batch.partition), 0), batch.next_offset
                )
                if args.max is not None and printed >= args.max:
                    break
            sys.stdout.flush()
    finally:
        await consumer.close()
        await broker.close()


def _at_end(current: dict[Any, int], seen: dict[Any, int]) -> bool:
    return all(seen.get(tp, 0) >= end for tp, end in current.items())
