"""Names on the NATS server: the stream and subject of a topic partition, the groups bucket.

A topic partition is the stream ``OMC_<topic>-<partition>`` (``OMC-<namespace>_...`` in a
namespace) listening on the subject ``<topic>.<partition>`` (``<namespace>.<topic>.<p>``).
Stream names may not hold ``.``, so the topic is written with ``.`` as ``_`` and every other
character outside ``[A-Za-z0-9-]`` (``_`` included) as ``~XX`` per UTF-8 byte: readable for
the usual dotted names (``orders.public.customers`` -> ``OMC_orders_public_customers-0``) and
reversible, so the topics can be listed from the stream names alone.
"""

from __future__ import annotations

import re

_KEPT = re.compile(r"[A-Za-z0-9-]")
_ESCAPE = re.compile(r"~([0-9A-F]{2})")
_BAD_SUBJECT_TOKEN = re.compile(r"[\s*>]")


class Naming:
    """The names of one namespace (``""`` for none)."""

    def __init__(self, namespace: str = "") -> None:
        self.namespace = namespace
        self.stream_prefix = f"OMC-{namespace}_" if namespace else "OMC_"
        self._subject_prefix = f"{namespace}." if namespace else ""
        self.groups_bucket = f"OMC-{namespace}_groups" if namespace else "OMC_groups"

    def stream(self, topic: str, partition: int) -> str:
        """The stream holding ``partition`` of ``topic``."""
        return f"{self.stream_prefix}{encode_topic(topic)}-{partition}"

    def subject(self, topic: str, partition: int) -> str:
        """The subject messages of ``partition`` of ``topic`` are published on."""
        return f"{self._subject_prefix}{topic}.{partition}"

    def partition_of(self, stream: str) -> tuple[str, int] | None:
        """The topic and partition a stream of this namespace holds, or None for a stream
        that is not one (another namespace's, a key-value bucket, someone else's)."""
        if not stream.startswith(self.stream_prefix):
            return None
        body = stream[len(self.stream_prefix) :]
        encoded, dash, number = body.rpartition("-")
        if not dash or not number.isdigit() or not encoded:
            return None
        try:
            return decode_topic(encoded), int(number)
        except ValueError:
            return None


def check_topic(topic: str) -> None:
    """Refuse topic names NATS cannot carry as subject tokens.

    Raises:
        ValueError: an empty name or token (``a..b``), whitespace, ``*`` or ``>``, or a
            leading ``$`` (system subjects).
    """
    tokens = topic.split(".")
    if not topic or any(not token for token in tokens):
        raise ValueError(f"topic name {topic!r} has an empty part between dots")
    if _BAD_SUBJECT_TOKEN.search(topic) or topic.startswith("$"):
        raise ValueError(
            f"topic name {topic!r} cannot be a NATS subject (no whitespace, '*', '>' or "
            "leading '$')"
        )


def encode_topic(topic: str) -> str:
    """``topic`` as a stream name part: ``.`` -> ``_``, other unsafe bytes -> ``~XX``."""
    parts = []
    for char in topic:
        if char == ".":
            parts.append("_")
        elif _KEPT.fullmatch(char):
            parts.append(char)
        else:
            parts.extend(f"~{byte:02X}" for byte in char.encode())
    return "".join(parts)


def decode_topic(encoded: str) -> str:
    """The inverse of ``encode_topic``.

    Raises:
        ValueError: ``encoded`` is not something ``encode_topic`` writes.
    """
    raw = bytearray()
    at = 0
    while at < len(encoded):
        char = encoded[at]
        if char == "_":
            raw += b"."
            at += 1
        elif char == "~":
            match = _ESCAPE.match(encoded, at)
            if match is None:
                raise ValueError(f"bad escape in stream name part {encoded!r}")
            raw.append(int(match.group(1), 16))
            at += 3
        elif _KEPT.fullmatch(char):
            raw += char.encode()
            at += 1
        else:
            raise ValueError(f"unexpected {char!r} in stream name part {encoded!r}")
    return raw.decode()
