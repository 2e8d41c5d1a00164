"""``NatsProducer``: publishes message batches to JetStream, pipelined, acks awaited."""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors

from omconnect.runtime.brokers.base import BrokerError, Producer, SendResult
from omconnect.runtime.brokers.key_partitioning import KeyPartitioner
from omconnect.runtime.brokers.nats._acks import AckInbox
from omconnect.runtime.brokers.nats._catalog import TopicCatalog
from omconnect.runtime.brokers.nats._connection import NatsConnection, describe
from omconnect.runtime.brokers.nats._message_codec import encode_rows
from omconnect.schemas.message_batch import MessageBatch

MAX_UNACKNOWLEDGED = 16_384
"""Messages a producer has out unacknowledged at most, over all its sends (``AckInbox.room``):
about a third of a second of publishing here, so that the window never slows a send down."""


class NatsProducer(Producer):
    """Publishes through the broker's connection.

    A send partitions the batch (Kafka's murmur2 of the key, as every driver does; messages
    without a key all go to one partition, rotating per send), publishes every message
    without waiting for the previous one's acknowledgement and returns once the server
    acknowledged them all (a ``PubAck`` is sent after the message is stored; ``_acks``). It
    waits as long as acknowledgements keep coming, and fails once none came for
    ``ack_timeout`` seconds: a large send to a slow server is not cut short. Concurrent sends
    of one producer publish one after the other, so each partition stores them in call order,
    while their acknowledgements are awaited together.

    Every message with a message id carries it as ``Nats-Msg-Id``: within the topic's
    duplicate window (``duplicate_window``, 2 minutes by default) the server drops a message
    whose id it stored already and acknowledges it as a duplicate, with the first copy's
    sequence. A send that failed (no acknowledgement for ``ack_timeout``, a server restart)
    can therefore be repeated as a whole without storing anything twice. One thing a failure
    can change is order: a message lost with the connection while later ones of the same
    send got through is stored after them when the send is repeated.
    """

    def __init__(self, connection: NatsConnection, catalog: TopicCatalog) -> None:
        self._connection = connection
        self._catalog = catalog
        self._order = asyncio.Lock()
        self._acks = AckInbox()
        self._partitioner = KeyPartitioner()
        self._closed = False

    async def send(
        self, topic: str, messages: MessageBatch, partition: int | None = None
    ) -> list[SendResult]:
        """Publish ``messages`` to ``topic`` (created with one partition if it does not
        exist); returns once every message is acknowledged.

        Raises:
            ValueError: ``partition`` does not exist in ``topic``.
            BrokerError: a message was refused, or no acknowledgement came for
                ``ack_timeout`` seconds while some were missing; some of the others may be
                stored (send it again: the ids make the server drop the copies).
        """
        if self._closed:
            raise BrokerError("the producer is closed")
        if len(messages) == 0:
            return []
        count = await self._catalog.partitions(topic, create=True)
        assert count is not None
        parts = self._partitioner.split(messages, count, partition)
        client = await self._connection.client()
        await self._acks.open(client)
        naming = self._connection.naming
        number, pending = self._acks.expect(len(messages))
        ack_timeout = self._connection.options.ack_timeout
        sizes: list[tuple[int, int]] = []
        try:
            async with self._order:
                index = 0
                for target, part in parts:
                    subject = naming.subject(topic, target)
                    for payload, headers in encode_rows(part):
                        if self._acks.outstanding >= MAX_UNACKNOWLEDGED:
                            await self._acks.room(MAX_UNACKNOWLEDGED, ack_timeout)
                        reply = self._acks.reply(number, index)
                        await client.publish(subject, payload, reply=reply, headers=headers)
                        self._acks.published(pending)
                        index += 1
                    sizes.append((target, len(part)))
            await self._acks.until_acknowledged(pending, self._connection.options.ack_timeout)
        except TimeoutError:
            raise BrokerError(
                f"NATS {self._connection.display}: {pending.left} of {len(messages)} messages "
                f"to topic {topic!r} were not acknowledged: no acknowledgement for "
                f"{self._connection.options.ack_timeout:g} s (ack_timeout); sent again, those "
                "with message ids are not stored twice"
            ) from None
        except nats.js.errors.NoStreamResponseError:
            self._catalog.forget(topic)
            raise BrokerError(
                f"NATS {self._connection.display}: no stream takes the messages of topic "
                f"{topic!r} (were its streams deleted?)"
            ) from None
        except nats.errors.MaxPayloadError:
            raise BrokerError(
                f"NATS {self._connection.display}: a message to topic {topic!r} is larger than "
                "the server's max_payload (1 MB by default; raise it in the server "
                "configuration)"
            ) from None
        except (nats.errors.Error, OSError) as exc:
            raise BrokerError(
                f"NATS {self._connection.display}: publishing to topic {topic!r} failed: "
                f"{describe(exc)}"
            ) from None
        finally:
            self._acks.forget(number)
        return _results(topic, sizes, pending.sequences)

    async def flush(self) -> None:
        """Wait until every send so far is acknowledged (or failed)."""
        waiting = self._acks.waiting
        if waiting:
            await asyncio.wait(waiting)

    async def close(self) -> None:
        """Stop waiting for acknowledgements; the connection belongs to the broker."""
        self._closed = True
        await self._acks.close()


def _results(topic: str, sizes: list[tuple[int, int]], sequences: list[int]) -> list[SendResult]:
    """One result per run of consecutive sequences of a partition (a duplicate takes its
    first copy's sequence, so a partly repeated send makes several runs)."""
    results: list[SendResult] = []
    at = 0
    for number, size in sizes:
        first = previous = sequences[at]
        for sequence in sequences[at + 1 : at + size]:
            if sequence != previous + 1:
                results.append(SendResult(topic, number, first - 1, previous - first + 1))
                first = sequence
            previous = sequence
        results.append(SendResult(topic, number, first - 1, previous - first + 1))
        at += size
    return results
