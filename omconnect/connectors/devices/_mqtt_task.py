"""``MqttSourceTask``: one session on the MQTT server, its messages as record batches, their
acknowledgements sent from ``commit`` (see ``mqtt`` for the guarantees)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from omconnect.codecs.type_names import parse_type
from omconnect.connectors.api import (
    AsyncSourceTask,
    ConfigError,
    ConnectorError,
    ConnectorSpec,
    Position,
    PositionMark,
    RecordBatch,
    RetriableError,
    TaskContext,
)
from omconnect.connectors.devices._mqtt_options import (
    DEFAULT_PORTS,
    MqttSourceSpec,
    credentials,
    server_url,
)
from omconnect.connectors.devices._mqtt_payloads import Decoded, PayloadReader, TopicTemplate
from omconnect.connectors.devices._readings import readings_batch
from omconnect.schemas.arrow import to_arrow_type
from omconnect.schemas.message_batch import HEADERS_TYPE
from omconnect.schemas.message_ids import MessageIdRuns

if TYPE_CHECKING:
    from omconnect.clients.mqtt_connection import MqttConnection
    from omconnect.clients.mqtt_inbox import Received

log = logging.getLogger("omconnect.connectors.mqtt")

SCHEMA_NAME = "mqtt"
# The longest a poll waits for a first message.
POLL_WAIT = 1.0
# Under ``run --once`` the read ends when nothing arrived for this long...
ONCE_QUIET = 0.5
# ...or this long after the task started (a stream that never pauses).
ONCE_LONGEST = 10.0
# SUBACK reason codes from 0x80 are refusals.
REFUSED = 0x80


class MqttSourceTask(AsyncSourceTask):
    """Reads the source's topic filters through one persistent session, on the event loop
    (paho's network thread hands messages over through ``Inbox``)."""

    async def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        """Connect with the session of the client id and subscribe.

        Raises:
            RetriableError: the server cannot be reached (one line: where, and what to check).
            ConnectorError: the server refused the connection or a subscription.
        """
        assert isinstance(config, MqttSourceSpec)
        # paho (the ``mqtt`` extra) is imported when a task starts, not with the connector
        # module, which every command imports when plugins load.
        try:
            from omconnect.clients.mqtt_connection import Endpoint
            from omconnect.clients.mqtt_inbox import Inbox
        except ImportError as error:
            raise ConfigError(
                "the mqtt source needs paho-mqtt: pip install 'omconnect[mqtt]'", key="url"
            ) from error
        self.config = config
        self.context = context
        parsed = server_url(config)
        username, password = credentials(config, parsed)
        host = parsed.hostname or ""
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
        self._endpoint = Endpoint(
            host=host,
            port=port,
            display=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            username=username,
            password=password,
            tls=parsed.scheme == "mqtts",
            connect_timeout=config.connect_timeout,
            keepalive=config.keepalive,
            setting="the source's url (and username, password)",
        )
        self.client_id = config.client_id or _default_client_id(context)
        self._partition = {"client_id": self.client_id}
        self._run = uuid.uuid4().hex[:16]
        self._seq = 0
        # (seq, message) of the QoS 1 messages polled and not acknowledged yet, in order.
        self._unacked: deque[tuple[int, Received]] = deque()
        self._connections = 0
        self._connection: MqttConnection | None = None
        self._inbox = Inbox(asyncio.get_running_loop())
        declared = {n: to_arrow_type(parse_type(t)) for n, t in (config.columns or {}).items()}
        self._reader = PayloadReader(config.payload, declared)
        self._template = TopicTemplate(config.topic_fields) if config.topic_fields else None
        self._reserved = set(self._template.fields if self._template else ())
        self._reserved |= {n for n in (config.topic_field, config.time_field) if n is not None}
        self._dropped_fields: set[str] = set()
        self._wanted: dict[str, bool] = {}
        self._started = asyncio.get_running_loop().time()
        await self._connect()

    async def _connect(self) -> None:
        from omconnect.clients.mqtt_connection import MqttConnection

        config = self.config
        self._connections += 1
        connection = MqttConnection(
            self._endpoint,
            self.client_id,
            errors=RetriableError,
            refused_errors=ConnectorError,
            clean_start=False,
            session_expiry=config.session_expiry,
            receive_maximum=config.receive_maximum,
            on_message=self._inbox.receiver(self._connections),
            on_lost=self._inbox.wake,
        )
        await connection.open()
        try:
            # Retained messages only for a new subscription: not again on every restart.
            reasons = await connection.subscribe(config.topics, config.qos, retain_handling=1)
        except BaseException:
            await connection.close()
            raise
        if reasons and max(reasons) >= REFUSED:
            await connection.close()
            raise ConnectorError(
                f"the MQTT broker at {self._endpoint.display} refused to subscribe client id "
                f"{self.client_id!r} to {', '.join(config.topics)} (reason 0x{max(reasons):02X}): "
                "check the filters and that the server's ACL lets this client read them"
            )
        self._connection = connection
        log.info(
            "reading %s from the MQTT broker at %s as client id %r (%s session)",
            ", ".join(config.topics),
            self._endpoint.display,
            self.client_id,
            "its stored" if connection.session_present else "a new",
        )

    async def _connected(self) -> None:
        """Connect again when the connection was lost; what it had delivered and was not
        acknowledged comes again on the new one.

        Raises:
            RetriableError: the server cannot be reached (the runtime retries with backoff).
        """
        connection = self._connection
        if connection is not None and not connection.lost:
            return
        if connection is not None:
            self._connection = None
            await connection.close()
            log.warning(
                "lost the connection to the MQTT broker at %s; connecting again (messages "
                "not acknowledged yet come again)",
                self._endpoint.display,
            )
        await self._connect()

    async def poll(self) -> list[RecordBatch] | None:
        """What arrived since the last poll (at most ``batch_size`` messages), waiting up to
        ``POLL_WAIT`` seconds for a first one; None when nothing came (under ``once``: when
        nothing came for ``ONCE_QUIET`` seconds, or ``ONCE_LONGEST`` passed).

        Raises:
            RetriableError: the connection was lost and the server cannot be reached.
        """
        await self._connected()
        loop = asyncio.get_running_loop()
        once = self.context.once
        if once and loop.time() - self._started >= ONCE_LONGEST:
            return None
        size = self.config.batch_size
        items = self._inbox.take(size)
        if not items:
            await self._inbox.wait(ONCE_QUIET if once else POLL_WAIT)
            await self._inbox.gather(size)
            items = self._inbox.take(size)
        batches = self._batches(items)
        return batches or None

    def _batches(self, items: list[Received]) -> list[RecordBatch]:
        """The batches of ``items``: one per part of payloads read with one schema; every
        message taken is covered by a mark (bad payloads and unwanted topics too)."""
        current = self._connections
        # QoS 1 messages of a lost connection come again on the new one.
        kept = [i for i in items if i.qos == 0 or i.connection == current]
        if not kept:
            return []
        first = self._seq + 1
        self._seq += len(kept)
        seqs = np.arange(first, self._seq + 1, dtype=np.int64)
        self._unacked.extend((int(s), i) for s, i in zip(seqs, kept, strict=True) if i.qos)
        wanted = [n for n, item in enumerate(kept) if self._subscribed(item.topic)]
        messages = [kept[n] for n in wanted]
        batches: list[RecordBatch] = []
        bad: list[tuple[int, Exception]] = []
        for part in self._reader.read([m.payload for m in messages]):
            if part.table is None:
                assert part.error is not None
                bad.append((part.start, part.error))
                continue
            rows = messages[part.start : part.end]
            row_seqs = seqs[wanted[part.start : part.end]]
            batches.append(self._batch(part, rows, row_seqs))
        if bad:
            self._report(
                [messages[n] for n, _ in bad],
                [e for _, e in bad],
                seqs[[wanted[n] for n, _ in bad]],
            )
        end = self._mark(self._seq)
        if not batches:
            batches.append(self._batch(Decoded(0, 0, pa.table({})), [], seqs[:0]))
        last = batches[-1]
        last.marks = (PositionMark(last.num_rows, end.position),)
        return batches

    def _subscribed(self, topic: str) -> bool:
        """Whether ``topic`` matches a filter of the config (a stored session may hold the
        subscriptions of an earlier config too)."""
        found = self._wanted.get(topic)
        if found is None:
            from paho.mqtt.client import topic_matches_sub

            found = any(topic_matches_sub(f, topic) for f in self.config.topics)
            if len(self._wanted) > 100_000:
                self._wanted.clear()
            self._wanted[topic] = found
        return found

    def _mark(self, seq: int) -> PositionMark:
        return PositionMark(0, Position(self._partition, {"run": self._run, "seq": seq}))

    def _batch(self, part: Decoded, rows: list[Received], seqs: np.ndarray) -> RecordBatch:
        config = self.config
        assert part.table is not None
        payload = part.table
        topics = [m.topic for m in rows]
        columns: dict[str, pa.Array | pa.ChunkedArray] = {}
        if self._template is not None:
            columns.update(self._template.columns(topics))
        for name in payload.column_names:
            if name in self._reserved:
                self._drop_once(name)
                continue
            columns[name] = payload.column(name)
        if config.topic_field is not None:
            columns[config.topic_field] = pa.array(topics, pa.string())
        table = pa.table(columns)
        if config.topic_field is not None:
            table = _not_null(table, config.topic_field)
        runs = _id_runs(self._run, seqs)
        mark = PositionMark(
            len(rows), self._mark(int(seqs[-1]) if len(seqs) else self._seq).position
        )
        return readings_batch(
            table,
            np.array([m.received_ms for m in rows], dtype=np.int64),
            schema_name=SCHEMA_NAME,
            time_field=config.time_field,
            key=config.key,
            marks=(mark,),
            row_headers=_headers(rows),
            message_ids=runs,
        )

    def _drop_once(self, name: str) -> None:
        if name not in self._dropped_fields:
            self._dropped_fields.add(name)
            log.warning(
                "payloads have a field %r, which the source's options also make (from the "
                "topic or the receive time): the payload's is left out",
                name,
            )

    def _report(self, messages: list[Received], errors: list[Exception], seqs: np.ndarray) -> None:
        where = [
            {"topic": m.topic, "client_id": self.client_id, "run": self._run, "seq": int(s)}
            for m, s in zip(messages, seqs, strict=True)
        ]
        self.context.errors.report_raw([m.payload for m in messages], errors, where, stage="read")

    async def commit(self, positions: Sequence[Position]) -> None:
        """Acknowledge to the server every QoS 1 message up to ``positions`` (their PUBACKs
        go out in the order the messages came). Messages of a connection since lost are not
        acknowledged: the server sends them again."""
        reached = [
            int(p.offset["seq"])
            for p in positions
            if p.partition == self._partition and p.offset.get("run") == self._run
        ]
        if not reached:
            return
        upto = max(reached)
        mids = []
        while self._unacked and self._unacked[0][0] <= upto:
            _, item = self._unacked.popleft()
            if item.connection == self._connections:
                mids.append(item.mid)
        connection = self._connection
        if mids and connection is not None and not connection.lost:
            connection.ack(mids)

    async def stop(self) -> None:
        """Disconnect; the session stays on the server with what was not acknowledged."""
        connection, self._connection = getattr(self, "_connection", None), None
        if connection is not None:
            await connection.close()


def _default_client_id(context: TaskContext) -> str:
    suffix = f"-{context.task_id}" if context.task_id else ""
    return f"omconnect-{context.pipeline}{suffix}"


def _not_null(table: pa.Table, name: str) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, pa.field(name, pa.string(), False), table.column(index))


def _headers(rows: list[Received]) -> pa.MapArray | None:
    """The MQTT 5 user properties of each message (and its content type, first, as
    ``content-type``) as header entries; None when no message has any."""
    entries: list[list[tuple[str, bytes]] | None] = []
    for message in rows:
        found: list[tuple[str, bytes]] = []
        content_type = getattr(message.properties, "ContentType", None)
        if content_type is not None:
            found.append(("content-type", str(content_type).encode()))
        for name, value in getattr(message.properties, "UserProperty", ()):
            found.append((str(name), str(value).encode()))
        entries.append(found or None)
    if not any(entries):
        return None
    return pa.array(entries, HEADERS_TYPE)


def _id_runs(run: str, seqs: np.ndarray) -> MessageIdRuns:
    """``<run>-<seq>`` of every row, as runs of consecutive sequence numbers."""
    if not len(seqs):
        return MessageIdRuns()
    breaks = np.flatnonzero(np.diff(seqs) != 1) + 1
    starts = np.concatenate(([0], breaks))
    lengths = np.diff(np.concatenate((starts, [len(seqs)])))
    firsts = seqs[starts]
    return MessageIdRuns.derived(
        [run] * len(starts), [int(f) for f in firsts], [int(n) for n in lengths]
    )
