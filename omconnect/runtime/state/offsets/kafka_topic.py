"""``KafkaTopicOffsetStore``: source positions in a compacted Kafka topic (``offsets: broker``
on a ``kafka://`` broker), where Kafka Connect users look for them.

The topic (``__omconnect-offsets`` by default; two underscores: internal, left out of
``omconnect topics list``) is created when missing with one partition, ``cleanup.policy=compact``
and the URL's ``replication_factor``; an existing topic that is not compacted is refused (its
retention would delete positions). Every record goes to partition 0, so the records of all
pipelines are in one order; a topic made beforehand with more partitions works, only its
partition 0 is used.

A record's key is the JSON array ``[namespace, partition]`` (the namespace is the pipeline
name; the partition is the source partition as tagged JSON, ``schemas.position_codec``, so its
text is ``partition_id``), its value the offset as tagged JSON; ``delete`` writes tombstones
(null values). Compaction keeps the newest record of each key.

Reads come from a dict kept in memory: the store reads the topic to its end when it opens (the
end as fetch responses tell it: some servers, Tansu 0.6, answer ListOffsets wrongly), and
again before ``all``, ``namespaces`` and ``delete``, and before a ``get`` when the last read is
older than ``refresh_interval`` seconds: other processes (another pipeline's worker, the
``offsets`` CLI) may write the same topic. A record replaces what is known of its key only if
it is later in the partition than the record that is known (this store's own writes are known
by the offsets their delivery reports give), so reads never go back in time.

Guarantees of ``put``:

* Durable: every record is produced with ``acks=all`` by an idempotent producer and ``put``
  returns once every one was acknowledged (``OffsetStoreError`` when one was not within the
  URL's ``delivery_timeout_ms``).
* Atomic only with transactions: when the URL declares them (``transactions=true``, the
  default), a ``put`` (and a ``delete``) is one Kafka transaction and the store reads
  ``read_committed``, so a crash mid-put stores every position of the call or none. The
  transactional id is ``omconnect-offsets.<topic>.<namespace>``: a new writer of a namespace
  aborts what a crashed one left open, and fences an older writer that is still alive (its
  next ``put`` fails), so one namespace has one writer at a time. With ``transactions=false``
  a crash mid-put may store some positions of the call and not the others: each one stored is
  still a complete position the source reached (the positions of one call are for different
  partitions), so a restart resumes those partitions later than the others and re-delivers,
  never skips.

Errors are ``OffsetStoreError`` naming the topic and the servers. Safe to use from several
threads (calls are serialised by a lock). confluent-kafka (the ``omconnect[kafka]`` extra) is
imported by this module only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from omconnect.runtime.brokers import parse_broker_url
from omconnect.runtime.brokers.kafka._errors import ConnectionProblems
from omconnect.runtime.brokers.kafka._librdkafka import common_config
from omconnect.runtime.brokers.kafka._options import KafkaOptions, parse_kafka_url
from omconnect.runtime.state.offsets.base import OffsetStore, OffsetStoreError
from omconnect.schemas.position_codec import (
    decode_position_value,
    encode_position_value,
    position_to_json,
)
from omconnect.schemas.record import Position, partition_id

__all__ = ["DEFAULT_TOPIC", "KafkaTopicOffsetStore", "offsets_topic_exists"]

DEFAULT_TOPIC = "__omconnect-offsets"
_PARTITION = 0
_BEGINNING = -2  # librdkafka's OFFSET_BEGINNING
_MISSING = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC}
)
_FENCED = frozenset(
    {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}
)

log = logging.getLogger("omconnect.offsets.kafka")


class _DebugLog(logging.LoggerAdapter):
    """librdkafka's own lines at DEBUG: a store's failures are its exceptions, which carry
    the last error librdkafka reported (its retries would repeat it on every attempt)."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


_CLIENT_LOG = _DebugLog(logging.getLogger("omconnect.offsets.kafka.client"), {})

Key = tuple[str, str]  # (namespace, partition id)


class _Known:
    """What the store knows of one key: where its newest record is in the partition, and that
    record's offset text (None for a tombstone)."""

    __slots__ = ("at", "offset")

    def __init__(self, at: int, offset: str | None) -> None:
        self.at = at
        self.offset = offset


class KafkaTopicOffsetStore(OffsetStore):
    """Offsets in the compacted topic ``topic`` of the ``kafka://`` broker ``url``.

    Opening connects (within the URL's ``connect_timeout_ms``), creates the topic when it is
    missing and reads it to its end.

    Args:
        url: the pipeline's broker URL (``kafka://host:9092?...``, ``oms:kafka://`` too);
            its options set the timeouts, the replication factor of a created topic and
            whether puts are transactions (``transactions``).
        topic: the offsets topic.
        refresh_interval: how old (seconds) the last read of the topic may be before a
            ``get`` reads on to its end.

    Raises:
        ValueError: the URL is malformed (the broker driver's message).
        OffsetStoreError: no broker answered, the topic cannot be created or read, or it is
            not compacted.
    """

    def __init__(
        self, url: str, topic: str = DEFAULT_TOPIC, *, refresh_interval: float = 1.0
    ) -> None:
        parsed = parse_broker_url(url)
        self._options = parse_kafka_url(parsed)
        self.topic = topic
        self.refresh_interval = refresh_interval
        self._servers = self._options.servers
        self._transactions = bool(self._options.transactions)
        self._timeout = self._options.request_timeout_ms / 1000
        self._delivery_timeout = self._options.delivery_timeout_ms / 1000
        self._lock = threading.Lock()
        self._problems = ConnectionProblems()
        self._known: dict[Key, _Known] = {}
        self._next = _BEGINNING
        self._read_at = 0.0
        self._producer: Producer | None = None
        self._transactional: dict[str, Producer] = {}
        self._fenced: set[str] = set()
        self._closed = False
        admin = AdminClient(self._common())
        self._ensure_topic(admin)
        self._consumer = Consumer(
            {
                **self._common(),
                "group.id": "omconnect-offsets-reader",  # assigned only: never joins it
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
                "fetch.error.backoff.ms": 20,
            }
        )
        try:
            # With the partition's leader known, librdkafka fetches at once (not after a
            # half-second timer).
            self._metadata(self._consumer)
            self._read_to_end()
        except BaseException:
            self._consumer.close()
            raise

    # -- the contract ------------------------------------------------------------------------

    def get(self, namespace: str, partition: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The stored offset of ``partition`` in ``namespace``, or None."""
        key = (namespace, partition_id(partition))
        with self._lock:
            if time.monotonic() - self._read_at > self.refresh_interval:
                self._read_to_end()
            known = self._known.get(key)
        if known is None or known.offset is None:
            return None
        return decode_position_value(known.offset)

    def all(self, namespace: str) -> list[Position]:
        """Every position of ``namespace``, ordered by partition."""
        with self._lock:
            self._read_to_end()
            found = sorted(
                (pid, known.offset)
                for (name, pid), known in self._known.items()
                if name == namespace and known.offset is not None
            )
        return [
            Position(decode_position_value(pid), decode_position_value(offset))
            for pid, offset in found
        ]

    def put(self, namespace: str, positions: Iterable[Position]) -> None:
        """Store ``positions`` (see the module docstring for atomicity); the last one wins for
        a repeated partition.

        Raises:
            TypeError: a partition or offset holds a value positions cannot hold (see
                ``position_codec``); nothing is stored.
            OffsetStoreError: a record was not acknowledged in time, or the transaction
                failed (then none of the call's positions is stored, with transactions).
        """
        latest: dict[str, tuple[bytes, bytes]] = {}
        for position in positions:
            pid = partition_id(position.partition)
            latest[pid] = (
                _record_key(namespace, position.partition),
                encode_position_value(position.offset).encode(),
            )
        if not latest:
            return
        with self._lock:
            self._write(namespace, list(latest.values()), "storing positions")

    def delete(self, namespace: str, partition: Mapping[str, Any] | None = None) -> int:
        """Forget one partition, or every partition of ``namespace`` (tombstones); returns
        how many were stored."""
        with self._lock:
            self._read_to_end()
            if partition is None:
                doomed = [
                    key
                    for key, known in self._known.items()
                    if key[0] == namespace and known.offset is not None
                ]
            else:
                key = (namespace, partition_id(partition))
                known = self._known.get(key)
                doomed = [key] if known is not None and known.offset is not None else []
            if doomed:
                records = [(_key_bytes(name, pid), None) for name, pid in doomed]
                self._write(namespace, records, "deleting positions")
            return len(doomed)

    def namespaces(self) -> list[str]:
        """Every namespace with at least one stored position, sorted."""
        with self._lock:
            self._read_to_end()
            return sorted({name for (name, _), k in self._known.items() if k.offset is not None})

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._consumer.close()
            self._producer = None
            self._transactional.clear()

    # -- reading -----------------------------------------------------------------------------

    def _read_to_end(self) -> None:
        """Read the partition from where the last read stopped to its end (the last stable
        offset, for this ``read_committed`` reader), as fetch responses tell it."""
        if self._closed:
            raise OffsetStoreError(f"the offset store on {self.topic!r} is closed")
        consumer = self._consumer
        consumer.assign([TopicPartition(self.topic, _PARTITION, self._next)])
        deadline = time.monotonic() + self._timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise OffsetStoreError(
                        f"reading the offsets topic {self.topic!r} at {self._servers} took "
                        f"longer than {self._timeout:g} s{self._last_error()}; check that the "
                        "broker is up"
                    )
                # What is queued already, else wait for the next message or the end.
                messages = consumer.consume(10_000, 0) or [
                    m for m in [consumer.poll(min(remaining, 0.1))] if m is not None
                ]
                for message in messages:
                    if self._take(message):
                        self._read_at = time.monotonic()
                        return
        except KafkaException as error:
            raise OffsetStoreError(
                f"reading the offsets topic {self.topic!r} at {self._servers}: {_text(error)}"
            ) from None
        finally:
            consumer.unassign()

    def _take(self, message: Message) -> bool:
        """Learn from one consumed message; whether it says the partition's end is reached."""
        error = message.error()
        if error is None:
            offset = message.offset() or 0
            self._next = offset + 1
            self._apply(message.key(), message.value(), offset)
            return False
        if error.code() == KafkaError._PARTITION_EOF:
            self._next = message.offset() or 0
            return True
        if error.code() in _MISSING:
            raise OffsetStoreError(
                f"the offsets topic {self.topic!r} is missing at {self._servers} (deleted "
                "while in use?)"
            )
        if error.fatal():
            raise OffsetStoreError(
                f"reading the offsets topic {self.topic!r} at {self._servers}: {error.str()}"
            )
        return False  # librdkafka retries the rest (a broker that is away, ...)

    def _apply(self, raw_key: bytes | str | None, value: bytes | str | None, at: int) -> None:
        """Know the record at ``at``: its key's value (a tombstone when ``value`` is None),
        unless a later record of that key is known already."""
        try:
            namespace, partition = json.loads(raw_key or b"")
            if not isinstance(namespace, str) or not isinstance(partition, dict):
                raise ValueError("not [namespace, partition]")
            pid = _canonical(partition)
            offset = None if value is None else _text_of(value)
        except (ValueError, TypeError) as error:
            log.warning(
                "offsets topic %s: skipping record %d, not an omconnect position (%s)",
                self.topic,
                at,
                error,
            )
            return
        key = (namespace, pid)
        known = self._known.get(key)
        if known is not None and known.at >= at:
            return
        self._known[key] = _Known(at, offset)

    # -- writing -----------------------------------------------------------------------------

    def _write(
        self, namespace: str, records: Sequence[tuple[bytes, bytes | None]], what: str
    ) -> None:
        """Produce ``records`` (``(key, value)``; a None value is a tombstone) and wait for
        every acknowledgement, in one transaction when the URL declares transactions."""
        if self._closed:
            raise OffsetStoreError(f"the offset store on {self.topic!r} is closed")
        if self._transactions:
            self._write_transaction(namespace, records, what)
            return
        producer = self._idempotent()
        failures: list[str] = []
        on_delivery = self._on_delivery(failures, self._apply)
        try:
            for key, value in records:
                self._produce(producer, key, value, on_delivery)
            left = producer.flush(self._delivery_timeout)
        except KafkaException as error:
            raise OffsetStoreError(self._failed(what, namespace, _text(error))) from None
        if failures or left:
            reason = failures[0] if failures else f"{left} record(s) not acknowledged in time"
            raise OffsetStoreError(self._failed(what, namespace, reason))

    def _write_transaction(
        self, namespace: str, records: Sequence[tuple[bytes, bytes | None]], what: str
    ) -> None:
        if namespace in self._fenced:
            raise OffsetStoreError(self._fenced_message(what, namespace))
        producer = self._transactional_producer(namespace)
        staged: list[tuple[bytes | str | None, bytes | str | None, int]] = []
        failures: list[str] = []
        on_delivery = self._on_delivery(failures, lambda *record: staged.append(record))
        try:
            producer.begin_transaction()
            for key, value in records:
                self._produce(producer, key, value, on_delivery)
            producer.commit_transaction(self._delivery_timeout)
        except KafkaException as error:
            self._abort(namespace, producer, error)
            if namespace in self._fenced:
                raise OffsetStoreError(self._fenced_message(what, namespace)) from None
            raise OffsetStoreError(self._failed(what, namespace, _text(error))) from None
        if failures:  # cannot happen after a commit; kept as a guard
            raise OffsetStoreError(self._failed(what, namespace, failures[0]))
        for record in staged:
            self._apply(*record)

    def _abort(self, namespace: str, producer: Producer, error: KafkaException) -> None:
        """Abort the failed transaction; forget a producer that cannot go on (fatally failed),
        and for good a namespace whose newer writer fenced this one: a new producer would
        fence that writer in turn."""
        first = error.args[0] if error.args else None
        if isinstance(first, KafkaError) and (first.fatal() or first.code() in _FENCED):
            self._transactional.pop(namespace, None)
            if first.code() in _FENCED or "fenced" in first.str().lower():
                self._fenced.add(namespace)
            return
        try:
            producer.abort_transaction(self._delivery_timeout)
        except KafkaException:
            self._transactional.pop(namespace, None)

    def _produce(
        self,
        producer: Producer,
        key: bytes,
        value: bytes | None,
        on_delivery: Callable[[KafkaError | None, Message], None],
    ) -> None:
        while True:
            try:
                producer.produce(
                    self.topic, value, key, partition=_PARTITION, on_delivery=on_delivery
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)

    def _on_delivery(
        self,
        failures: list[str],
        delivered: Callable[[bytes | str | None, bytes | str | None, int], None],
    ) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(error.str())
            else:
                delivered(message.key(), message.value(), message.offset() or 0)

        return report

    def _idempotent(self) -> Producer:
        if self._producer is None:
            producer = Producer(self._producer_config())
            self._metadata(producer)
            self._producer = producer
        return self._producer

    def _metadata(self, client: Producer | Consumer) -> None:
        """Learn the brokers and partition leaders before the first read or write."""
        try:
            client.list_topics(timeout=self._timeout)
        except KafkaException as error:
            raise OffsetStoreError(
                f"cannot reach the Kafka broker at {self._servers} for the offsets topic "
                f"{self.topic!r}: {_text(error)}{self._last_error()}"
            ) from None

    def _transactional_producer(self, namespace: str) -> Producer:
        producer = self._transactional.get(namespace)
        if producer is None:
            config = {
                **self._producer_config(),
                "transactional.id": f"omconnect-offsets.{self.topic}.{namespace}",
                "transaction.timeout.ms": self._options.transaction_timeout_ms,
            }
            producer = Producer(config)
            self._metadata(producer)
            try:
                producer.init_transactions(self._timeout)
            except KafkaException as error:
                raise OffsetStoreError(
                    f"cannot start writing the offsets of {namespace!r} to topic "
                    f"{self.topic!r} at {self._servers}: {_text(error)}"
                ) from None
            self._transactional[namespace] = producer
        return producer

    def _producer_config(self) -> dict[str, Any]:
        return {
            **self._common(),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,
            "message.timeout.ms": self._options.delivery_timeout_ms,
            "request.timeout.ms": min(
                self._options.request_timeout_ms, self._options.delivery_timeout_ms
            ),
        }

    def _fenced_message(self, what: str, namespace: str) -> str:
        return self._failed(
            what,
            namespace,
            "another process writes the positions of this namespace now (it fenced this "
            "one): is the pipeline running twice, with two local state: directories?",
        )

    def _failed(self, what: str, namespace: str, reason: str) -> str:
        return (
            f"{what} of {namespace!r} in the offsets topic {self.topic!r} at {self._servers} "
            f"failed: {reason}"
        )

    # -- opening -----------------------------------------------------------------------------

    def _common(self) -> dict[str, Any]:
        return _client_config(self._options, self._problems)

    def _last_error(self) -> str:
        return _said(self._problems)

    def _ensure_topic(self, admin: AdminClient) -> None:
        """Create the topic when it is missing; refuse one whose retention deletes records."""
        if _topic_partitions(admin, self._options, self.topic, self._last_error) is None:
            topic = NewTopic(
                self.topic,
                num_partitions=1,
                replication_factor=self._options.replication_factor,
                config={"cleanup.policy": "compact"},
            )
            future = admin.create_topics([topic], request_timeout=self._timeout)[self.topic]
            try:
                future.result(timeout=self._timeout + 1)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise OffsetStoreError(
                        f"cannot create the offsets topic {self.topic!r} at {self._servers}: "
                        f"{_text(error)}"
                    ) from None
            return
        policy = self._cleanup_policy(admin)
        if policy is not None and "compact" not in policy.split(","):
            raise OffsetStoreError(
                f"the offsets topic {self.topic!r} at {self._servers} has "
                f"cleanup.policy={policy}: its retention would delete stored positions; make "
                "it compact (kafka-configs --alter --entity-type topics --entity-name "
                f"{self.topic} --add-config cleanup.policy=compact)"
            )

    def _cleanup_policy(self, admin: AdminClient) -> str | None:
        """The topic's ``cleanup.policy``, or None when the broker does not say."""
        resource = ConfigResource("topic", self.topic)
        try:
            future = admin.describe_configs([resource], request_timeout=self._timeout)[resource]
            entries = future.result(timeout=self._timeout + 1)
        except KafkaException as error:
            log.debug("cannot describe the offsets topic %s: %s", self.topic, _text(error))
            return None
        entry = entries.get("cleanup.policy")
        return None if entry is None or entry.value is None else str(entry.value)


def offsets_topic_exists(url: str, topic: str = DEFAULT_TOPIC) -> bool:
    """Whether the broker of ``url`` has the offsets topic ``topic`` (creates nothing).

    Raises:
        ValueError: the URL is malformed.
        OffsetStoreError: no broker answered.
    """
    options = parse_kafka_url(parse_broker_url(url))
    problems = ConnectionProblems()
    admin = AdminClient(_client_config(options, problems))
    found = _topic_partitions(admin, options, topic, lambda: _said(problems))
    return found is not None


def _topic_partitions(
    admin: AdminClient, options: Any, topic: str, last_error: Callable[[], str]
) -> int | None:
    """How many partitions ``topic`` has, None when it does not exist. All topics are listed:
    asking for one by name may create it on a broker that creates topics on first use.

    Raises:
        OffsetStoreError: no broker answered within ``connect_timeout_ms``.
    """
    seconds = options.connect_timeout_ms / 1000
    try:
        metadata = admin.list_topics(timeout=seconds)
    except KafkaException:
        admin.poll(0)  # serves the error callback that says why
        raise OffsetStoreError(
            f"cannot reach the Kafka broker at {options.servers} within {seconds:g} s to read "
            f"the offsets topic {topic!r}{last_error()}; check that it is up and that the "
            "broker URL is right"
        ) from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return None
    return len(found.partitions)


def _client_config(options: KafkaOptions, problems: ConnectionProblems) -> dict[str, Any]:
    """The kafka:// driver's client settings, under this store's client id and log."""
    return {
        **common_config(options, problems),
        "client.id": "omconnect-offsets",
        "logger": _CLIENT_LOG,
    }


def _said(problems: ConnectionProblems) -> str:
    """`` (the last connection error librdkafka reported)``, or nothing."""
    detail = problems.last()
    return f" ({detail})" if detail else ""


def _canonical(value: Any) -> str:
    """JSON as ``position_codec`` writes it: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _record_key(namespace: str, partition: Mapping[str, Any]) -> bytes:
    """``[namespace, partition]`` as canonical JSON: the partition part is ``partition_id``."""
    return _canonical([namespace, position_to_json(partition)]).encode()


def _key_bytes(namespace: str, pid: str) -> bytes:
    """The record key of a known ``(namespace, partition id)``."""
    return _canonical([namespace, json.loads(pid)]).encode()


def _text_of(value: bytes | str) -> str:
    text = value.decode() if isinstance(value, bytes) else value
    json.loads(text)  # a record whose value is not JSON is not a position
    return text


def _text(error: KafkaException) -> str:
    first = error.args[0] if error.args else None
    return first.str() if isinstance(first, KafkaError) else str(error)
