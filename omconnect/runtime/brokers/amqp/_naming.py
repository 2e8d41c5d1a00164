"""Names on the RabbitMQ server: the exchange of a topic, the queue of a group, and the two
things the driver keeps per prefix (the all-topics exchange and the catalog stream).

Without a prefix a topic's exchange is named exactly after the topic and a group's queue
after the group, so other AMQP clients find them by the names omconnect users know; with
``?prefix=p`` they are ``p.<topic>`` and ``p.<group>``. A prefix has no dot, so the exchange
``p.a.b`` can only be topic ``a.b`` of prefix ``p``. The driver's own names have a colon:
``<p or omconnect>:topics`` (the topic exchange every topic's exchange forwards to, which
pattern subscriptions bind to) and ``<p or omconnect>:catalog`` (the stream listing topics
and groups). AMQP 0-9-1 names are letters, digits and ``-_.:@#,/+`` or spaces (the client
refuses others), at most 255 bytes.
"""

from __future__ import annotations

import re

# AMQP short strings (exchange, queue and routing key names) hold at most 255 bytes.
MAX_NAME_BYTES = 255
# The protocol's grammar of exchange and queue names, which the client enforces.
_NAME = re.compile(r"[A-Za-z0-9_.:@#,/+ -]*")


class Names:
    """The names of one prefix (``""`` for none)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        base = prefix or "omconnect"
        self.all_topics = f"{base}:topics"
        self.catalog = f"{base}:catalog"

    def exchange(self, topic: str) -> str:
        """The exchange messages of ``topic`` are published to.

        Raises:
            ValueError: a name AMQP cannot carry or that RabbitMQ reserves.
        """
        name = f"{self.prefix}.{topic}" if self.prefix else topic
        _check(name, topic, "topic", self.all_topics)
        return name

    def queue(self, group: str) -> str:
        """The queue the members of ``group`` share.

        Raises:
            ValueError: a name AMQP cannot carry or that RabbitMQ reserves.
        """
        name = f"{self.prefix}.{group}" if self.prefix else group
        _check(name, group, "consumer group", self.catalog)
        return name

    def topic_of(self, exchange: str) -> str:
        """The topic whose exchange is ``exchange`` (a message's ``exchange`` field names the
        exchange it was published to, also when it reached the queue through another)."""
        if self.prefix:
            return exchange.removeprefix(f"{self.prefix}.")
        return exchange


def _check(name: str, given: str, kind: str, reserved: str) -> None:
    if not given:
        raise ValueError(f"a {kind} name cannot be empty")
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{kind} {given!r} cannot be an AMQP name: letters, digits, spaces and -_.:@#,/+ only"
        )
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ValueError(
            f"{kind} {given!r} is too long for RabbitMQ: with the prefix its name may have "
            f"at most {MAX_NAME_BYTES} bytes"
        )
    if name.startswith("amq."):
        raise ValueError(f"{kind} {given!r} cannot be used: RabbitMQ reserves names 'amq.*'")
    if name == reserved:
        raise ValueError(f"{kind} {given!r} cannot be used: the amqp:// driver keeps {name!r}")
