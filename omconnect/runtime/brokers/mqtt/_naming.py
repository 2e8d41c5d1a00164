"""Where things live on the MQTT server: the topics, filters and client ids of one prefix.

Every omconnect topic is one MQTT topic level under the prefix: topic ``orders.eu`` of prefix
``omconnect`` is ``omconnect/orders.eu`` ('.' is an ordinary character in MQTT). The driver's
own records sit two or more levels deeper, so no subscription to ``<prefix>/+`` (every topic)
or to one topic ever matches them:

- ``<prefix>/.topics/<topic>``: the topic catalog, a retained message per topic;
- ``<prefix>/.groups/<group>/members/<slot>``: the retained claim of a group member's slot;
- ``<prefix>/.groups/<group>/requeue``: messages a member hands back to its group.

Group members read through shared subscriptions, ``$share/<group>/<prefix>/<topic>``. Client
ids are ``<client id prefix>/<group>/<slot>`` for group members (stable, so a member's
persistent session can be taken back) and ``<client id prefix>/<role>/<random>`` otherwise.

MQTT strings are UTF-8, and Mosquitto closes the connection of a client that sends one with
a control character (tab included), U+0000 or a noncharacter, in a topic, a client id or a
user property; ``check_text`` refuses what it would.
"""

from __future__ import annotations

import re
import uuid

# What Mosquitto refuses in an MQTT string: C0 and C1 controls, DEL, the noncharacters
# (U+FDD0..U+FDEF and the last two code points of every plane); and lone surrogates, which
# are not UTF-8 at all.
_NONCHARACTERS = "".join(
    chr(plane * 0x10000 + 0xFFFE) + chr(plane * 0x10000 + 0xFFFF) for plane in range(17)
)
_REFUSED = re.compile(f"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef{_NONCHARACTERS}]")
_WILDCARDS = re.compile(r"[/+#]")
MAX_STRING_BYTES = 65535


def plain_text(text: str) -> bool:
    """Whether ``text`` can travel as an MQTT string as it is."""
    if _REFUSED.search(text) is not None:
        return False
    return len(text) <= MAX_STRING_BYTES // 4 or len(text.encode()) <= MAX_STRING_BYTES


def check_text(text: str, what: str) -> str:
    """``text`` if it can be an MQTT string (a ``what``), else ``ValueError``."""
    if not plain_text(text):
        raise ValueError(
            f"{what} {text!r} cannot travel over MQTT (no control characters, tabs, U+0000 or "
            "noncharacters, at most 65535 bytes)"
        )
    return text


def check_topic(topic: str) -> str:
    """``topic`` if it can be an omconnect topic on MQTT: one topic level.

    Raises:
        ValueError: empty, with '/', '+' or '#', or with characters MQTT cannot carry.
    """
    if not topic or _WILDCARDS.search(topic):
        raise ValueError(
            f"topic name {topic!r} cannot be an MQTT topic level (not empty, no '/', '+' or '#')"
        )
    return check_text(topic, "topic name")


def check_group(group: str) -> str:
    """``group`` if it can name a shared subscription.

    Raises:
        ValueError: empty, with '/', '+' or '#', or with characters MQTT cannot carry.
    """
    if not group or _WILDCARDS.search(group):
        raise ValueError(
            f"consumer group {group!r} cannot name an MQTT shared subscription "
            "(not empty, no '/', '+' or '#')"
        )
    return check_text(group, "consumer group")


class Naming:
    """The MQTT names of one broker URL's ``prefix`` and ``client_id`` options."""

    def __init__(self, prefix: str, client_id: str) -> None:
        self.prefix = prefix
        self.client_id = client_id
        self.every_topic = f"{prefix}/+"
        self.catalog_filter = f"{prefix}/.topics/+"

    def topic(self, name: str) -> str:
        """The MQTT topic of omconnect topic ``name``."""
        return f"{self.prefix}/{name}"

    def topic_name(self, mqtt_topic: str) -> str | None:
        """The omconnect topic of an MQTT topic, or None for one that is not a topic here."""
        name = mqtt_topic.removeprefix(f"{self.prefix}/")
        if name == mqtt_topic or "/" in name:
            return None
        return name

    def shared(self, group: str, mqtt_filter: str) -> str:
        """The shared subscription of ``group`` to ``mqtt_filter``."""
        return f"$share/{group}/{mqtt_filter}"

    def catalog_entry(self, topic: str) -> str:
        return f"{self.prefix}/.topics/{topic}"

    def members(self, group: str) -> str:
        """The filter of every slot claim of ``group``."""
        return f"{self.prefix}/.groups/{group}/members/+"

    def member(self, group: str, slot: int) -> str:
        return f"{self.prefix}/.groups/{group}/members/{slot}"

    def requeue(self, group: str) -> str:
        return f"{self.prefix}/.groups/{group}/requeue"

    def member_client_id(self, group: str, slot: int) -> str:
        return f"{self.client_id}/{group}/{slot}"

    def client_id_for(self, role: str) -> str:
        """A client id of its own for a producer or an admin connection."""
        return f"{self.client_id}/{role}/{uuid.uuid4().hex[:12]}"

    def marker(self, mqtt_filter: str) -> str:
        """A topic matching ``mqtt_filter`` (ending in ``/+``) that no record uses: what a
        reader of retained messages publishes to learn that it has seen them all."""
        return f"{mqtt_filter[:-1]}.marker-{uuid.uuid4().hex}"
