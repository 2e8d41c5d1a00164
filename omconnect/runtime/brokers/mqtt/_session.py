"""A group member's session on the server: the slot it holds (``_membership``), the connection
that holds it, and the four moves of its life.

- **join**: take the lowest parked slot (else a free one), connect as its client id with
  ``clean_start`` false (the server sends what a gone member left unacknowledged there
  again), with a will that parks the slot, subscribe the group's filters and the group's
  requeue topic, watch the claims, then claim the slot live;
- **rejoin** after the connection was lost: the same slot, unless another member took it
  over meanwhile (its claim is live with another member id): then another one;
- **hand back** messages to the group: publish them to the requeue topic (which every member
  subscribes to, shared) and acknowledge the originals once a member's session took them;
- **leave**: with other members live, unsubscribe, hand back what is not acknowledged and end
  the session (expiry 0) and its claim; as the last member, or when nobody took what it
  handed back, park: the session stays, with its subscriptions, for the next member.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence

from omconnect.clients.mqtt_connection import (
    NO_SUBSCRIBERS,
    MqttConnection,
    Outgoing,
    Will,
)
from omconnect.clients.mqtt_inbox import Inbox, Received
from omconnect.runtime.brokers.base import BrokerError
from omconnect.runtime.brokers.mqtt._membership import (
    Members,
    choose_slot,
    claim_record,
    group_claims,
    taken_over,
)
from omconnect.runtime.brokers.mqtt._message_codec import requeue_properties
from omconnect.runtime.brokers.mqtt._server import MqttServer, check_published

log = logging.getLogger("omconnect.broker.mqtt")

Held = list[tuple[str, Received]]
"""Messages a member holds unacknowledged, with their topics."""


class MemberSession:
    """The session of one member of ``group``, subscribed to ``data_filters``; what its
    connection receives goes to ``inbox``. ``held_here`` are the slots the consumers of this
    broker hold (two of them never share one)."""

    def __init__(
        self,
        server: MqttServer,
        group: str,
        data_filters: Sequence[str],
        held_here: set[int],
        inbox: Inbox,
    ) -> None:
        naming = server.naming
        self.group = group
        self.member = uuid.uuid4().hex
        self.members = Members(naming, group, self.member)
        self.requeue_topic = naming.requeue(group)
        self.slot: int | None = None
        self.connection: MqttConnection | None = None
        self.number = 0  # of the current connection: what came on an older one is stale
        self._server = server
        self._filters = [*data_filters, naming.shared(group, self.requeue_topic)]
        self._held_here = held_here
        self._inbox = inbox

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.lost

    async def join(self) -> None:
        """Take a slot and subscribe.

        Raises:
            BrokerError: the server cannot be reached or refused the subscriptions.
        """
        claims = await group_claims(self._server, self.group)
        await self._connect(choose_slot(claims, self._held_here))

    async def rejoin(self) -> None:
        """Connect again after the connection was lost.

        Raises:
            BrokerError: the server cannot be reached.
        """
        old, self.connection = self.connection, None
        if old is not None:
            await old.close()
        slot = self.slot
        assert slot is not None, "join first"
        claims = await group_claims(self._server, self.group)
        self._held_here.discard(slot)
        if taken_over(claims, slot, self.member):
            log.warning(
                "consumer group %r: another member took over slot %d; moving to another",
                self.group,
                slot,
            )
            slot = choose_slot(claims, self._held_here)
        await self._connect(slot)

    async def _connect(self, slot: int) -> None:
        server = self._server
        naming = server.naming
        self._held_here.add(slot)
        self.slot = slot
        self.number += 1
        claim = naming.member(self.group, slot)
        connection: MqttConnection | None = None
        try:
            connection = await server.connect(
                naming.member_client_id(self.group, slot),
                clean_start=False,
                session_expiry=server.options.session_expiry,
                receive_maximum=server.options.receive_maximum,
                will=Will(claim, claim_record("parked")),
                on_message=self._inbox.receiver(self.number),
                on_lost=self._inbox.wake,
            )
            self._check_granted(await connection.subscribe(self._filters))
            self._check_granted(await connection.subscribe([naming.members(self.group)], qos=0))
            await self._claim(connection, claim_record("live", self.member))
        except BaseException:
            self._held_here.discard(slot)
            if connection is not None:
                await connection.close()
            raise
        self.connection = connection

    def _check_granted(self, reasons: list[int]) -> None:
        if reasons and max(reasons) >= 0x80:
            raise BrokerError(
                f"the MQTT broker at {self._server.options.display} refused the subscriptions "
                f"of consumer group {self.group!r} (reason 0x{max(reasons):02X}): it needs "
                "MQTT 5 shared subscriptions and an ACL that lets this client read the topics"
            )

    async def _claim(self, connection: MqttConnection, record: bytes) -> None:
        """Set this slot's retained claim (empty: delete it)."""
        assert self.slot is not None
        topic = self._server.naming.member(self.group, self.slot)
        reasons = await connection.publish([Outgoing(topic, record, retain=True)])
        check_published(reasons, topic, self._server.options.display)

    def ack(self, items: Sequence[Received]) -> None:
        """Acknowledge ``items`` that came on the current connection (QoS 1 ones)."""
        if self.connection is not None and not self.connection.lost:
            self.connection.ack([i.mid for i in items if i.qos and i.connection == self.number])

    async def hand_back(self, held: Held) -> Held:
        """Publish ``held`` to the group's requeue topic and acknowledge the originals that a
        member's session took; what none took (nobody subscribed) is returned, still held.

        Raises:
            BrokerError: the server refused or the connection was lost.
        """
        if not held or self.connection is None:
            return held
        again = [
            Outgoing(self.requeue_topic, item.payload, requeue_properties(item.properties, topic))
            for topic, item in held
        ]
        reasons = await self.connection.publish(again)
        check_published(reasons, self.requeue_topic, self._server.options.display)
        taken = [r != NO_SUBSCRIBERS for r in reasons]
        self.ack([item for (_, item), took in zip(held, taken, strict=True) if took])
        return [entry for entry, took in zip(held, taken, strict=True) if not took]

    async def leave(self, unacknowledged: Callable[[], Held]) -> None:
        """Leave the group (see the module docstring); ``unacknowledged`` gives what this
        member holds, once nothing more can arrive. Quiet about a server that is gone."""
        connection, slot = self.connection, self.slot
        if connection is None or slot is None:
            return
        try:
            if not connection.lost:
                if self.members.others():
                    await connection.unsubscribe(self._filters)
                    if not await self.hand_back(unacknowledged()):
                        await self._claim(connection, b"")
                        await connection.close(session_expiry=0)
                        return
                await self._claim(connection, claim_record("parked"))
        except BrokerError as exc:
            log.warning("consumer group %r: leaving slot %d: %s", self.group, slot, exc)
        finally:
            self.connection = None
            self._held_here.discard(slot)
            await connection.close()
