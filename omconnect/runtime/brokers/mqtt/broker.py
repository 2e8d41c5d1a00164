"""``MqttBroker``: the access point of one ``mqtt://`` URL."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from omconnect.runtime.brokers.base import (
    QUEUE_CAPABILITIES,
    ConsumerStart,
    OwningBroker,
    RebalanceListener,
    TopicInfo,
    TopicSettings,
)
from omconnect.runtime.brokers.mqtt._naming import check_topic
from omconnect.runtime.brokers.mqtt._options import MqttOptions
from omconnect.runtime.brokers.mqtt._server import CATALOG_RECORD, MqttServer
from omconnect.runtime.brokers.mqtt.consumer import MqttConsumer
from omconnect.runtime.brokers.mqtt.producer import MqttProducer

log = logging.getLogger("omconnect.broker.mqtt")


class MqttBroker(OwningBroker):
    """Producers, consumers and the topic catalog on an MQTT 5 server (see the package
    docstring for how the contract maps onto MQTT)."""

    capabilities = QUEUE_CAPABILITIES

    def __init__(self, options: MqttOptions, url: str) -> None:
        super().__init__(url)
        self.options = options
        self._server = MqttServer(options)
        # The slots this broker's consumers hold, per group: never two of them in one slot.
        self._slots: dict[str, set[int]] = {}

    async def producer(self) -> MqttProducer:
        """A producer; it connects on its first send."""
        return self._owned(MqttProducer(self._server))

    async def consumer(
        self,
        group: str,
        topics: Sequence[str] = (),
        *,
        pattern: str | None = None,
        listener: RebalanceListener | None = None,
        start: ConsumerStart = "earliest",
    ) -> MqttConsumer:
        """A member of ``group``, subscribed when this returns: it gets what is published
        from now on (and what a gone member of the group left in the session it takes
        over). ``start`` changes nothing: an MQTT server keeps no history to start from.

        Raises:
            ValueError: a group or topic name MQTT cannot carry.
            BrokerError: the server cannot be reached or refused the subscriptions.
        """
        del start
        consumer = MqttConsumer(
            self._server, group, topics, pattern, listener, self._slots.setdefault(group, set())
        )
        await consumer.join()
        return self._owned(consumer)

    async def create_topic(self, name: str, settings: TopicSettings | None = None) -> None:
        """Enter ``name`` in the topic catalog: an MQTT topic exists as soon as something
        is published to it, so there is nothing else to create. A topic has one partition and
        no retention or compaction (a retained message keeps one message per MQTT topic for
        new subscribers, it does not compact by key); settings asking for them are logged
        and ignored.

        Raises:
            ValueError: a name MQTT cannot carry as one topic level.
            BrokerError: the server cannot be reached.
        """
        check_topic(name)
        wanted = settings or TopicSettings()
        ignored = [
            what
            for what, asked in (
                (f"{wanted.partitions} partitions", wanted.partitions > 1),
                ("compaction", wanted.compacted),
                (
                    "retention",
                    wanted.retention_ms is not None or wanted.retention_bytes is not None,
                ),
            )
            if asked
        ]
        if ignored:
            log.warning(
                "topic %r: mqtt:// topics have one partition and no retention or compaction; "
                "ignoring %s",
                name,
                ", ".join(ignored),
            )
        await self._server.publish_retained(self._server.naming.catalog_entry(name), CATALOG_RECORD)

    async def list_topics(self) -> list[TopicInfo]:
        """The topics in the catalog (made by ``create_topic`` or a first send through
        omconnect; topics other MQTT clients publish to are not listed), one partition each.
        The message count is 0: an MQTT server does not say how many messages it holds."""
        return [TopicInfo(name, 1, 0) for name in await self._server.topic_names()]

    async def _close_connection(self) -> None:
        await self._server.close()
