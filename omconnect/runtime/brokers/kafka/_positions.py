"""Where ``commit_transaction`` stores source positions: one compacted topic per namespace.

The topic is ``__omconnect-positions-<namespace>`` (two underscores: internal, left out of
listings and pattern subscriptions), one partition, compacted: each record's key is a position
id and its value the encoded offset, so the newest record of a key is its position. They are
written inside the producer's Kafka transaction, with the messages they cover, and read back
by a ``read_committed`` reader, so they become visible exactly when those messages do.
"""

from __future__ import annotations

import hashlib
import re

from omconnect.runtime.brokers.base import TopicSettings

PREFIX = "__omconnect-positions-"
SETTINGS = TopicSettings(partitions=1, compacted=True)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_TOPIC = 249


def positions_topic(namespace: str) -> str:
    """The topic of ``namespace``'s positions; a namespace with characters Kafka does not
    allow in topic names (or too long) gets them replaced and a digest of its exact text."""
    safe = _UNSAFE.sub("-", namespace)
    name = PREFIX + safe
    if safe != namespace or len(name) > _MAX_TOPIC:
        digest = hashlib.sha256(namespace.encode()).hexdigest()[:16]
        name = f"{PREFIX}{safe[: _MAX_TOPIC - len(PREFIX) - 17]}-{digest}"
    return name
