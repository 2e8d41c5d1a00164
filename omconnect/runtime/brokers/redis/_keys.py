"""The Redis keys of one broker, all under its prefix.

* ``<prefix>:<topic>:<partition>``: the stream of one topic partition;
* ``<prefix>:<topic>:<partition>:times``: when its entries were added (a sorted set of
  checkpoints, only for topics with ``retention_ms``);
* ``<prefix>:topics``: the topics (a hash, topic -> its settings as JSON);
* ``<prefix>:group:<group>:doc`` / ``:offsets`` / ``:alive``: a consumer group's document
  (members, owners, generation), its committed offsets (a hash) and its members' heartbeats
  (a sorted set).

A stream key always ends in a partition number and no other key does, so no topic or group
name can make two keys collide; the prefix has no ``:`` of its own.
"""

from __future__ import annotations

from omconnect.runtime.brokers.base import TopicPartition

MAX_TOPIC_LENGTH = 249


def check_topic(name: str) -> str:
    """``name`` if it can be a topic: 1 to 249 characters, none of them a control character.

    Raises:
        ValueError: it cannot.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a topic name cannot be empty")
    if len(name) > MAX_TOPIC_LENGTH:
        raise ValueError(f"a topic name has at most {MAX_TOPIC_LENGTH} characters: {name!r}")
    if not name.isprintable():
        raise ValueError(f"a topic name cannot hold control characters: {name!r}")
    return name


class KeyNames:
    """The keys of the broker with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.topics = f"{prefix}:topics"

    def stream(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:{topic}:{partition}"

    def checkpoints(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:{topic}:{partition}:times"

    def group_document(self, group: str) -> str:
        return f"{self.prefix}:group:{group}:doc"

    def group_offsets(self, group: str) -> str:
        return f"{self.prefix}:group:{group}:offsets"

    def group_alive(self, group: str) -> str:
        return f"{self.prefix}:group:{group}:alive"

    def all_keys_pattern(self) -> str:
        """A ``SCAN MATCH`` pattern of every key of this prefix."""
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.prefix)
        return f"{escaped}:*"


def offset_field(tp: TopicPartition) -> str:
    """The field of a partition in a group's offsets hash: ``<partition>:<topic>``."""
    return f"{tp[1]}:{tp[0]}"


def parse_offset_field(field: bytes | str) -> TopicPartition:
    text = field.decode() if isinstance(field, bytes) else field
    partition, _, topic = text.partition(":")
    return topic, int(partition)
