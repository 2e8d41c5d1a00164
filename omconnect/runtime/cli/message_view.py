"""Turning one consumed message into a JSON-able dict for ``topics tail`` (the slow path),
through the OpenMessaging message model (``omconnect.schemas.message.Message``)."""

from __future__ import annotations

import base64
import datetime
import decimal
import io
import json
import struct
import uuid
from typing import Any

import fastavro

from omconnect.runtime.brokers.base import ConsumedBatch
from omconnect.schemas.message import Message

AVRO_MAGIC = 0


class MessageView:
    """Decodes keys and values: Confluent-framed Avro via the schema registry, else JSON,
    else UTF-8 text, else base64. Without a registry (none was made yet) Avro bodies are
    shown the other ways."""

    def __init__(self, registry: Any | None) -> None:
        self.registry = registry
        self._schemas: dict[int, Any] = {}

    def describe(self, batch: ConsumedBatch, row: int) -> dict[str, Any]:
        """The message in ``row`` as OpenMessaging sees it (``Message``): its id, topic,
        partition, offset, born timestamp, key and data decoded, and every header."""
        offsets = batch.messages.offsets
        message = Message.from_batch_row(batch.messages, row, batch.topic, batch.partition)
        return {
            "message_id": message.header.message_id,
            "topic": message.header.destination,
            "partition": message.extension_header.partition,
            "offset": int(offsets[row].as_py()) if offsets is not None else None,
            "timestamp": message.header.born_timestamp,
            "key": self.decode(message.extension_header.message_key),
            "value": self.decode(message.data),
            "headers": {k: _text(v) for k, v in batch.messages.header_dict(row).items()},
        }

    def decode(self, body: bytes | None) -> Any:
        if body is None:
            return None
        if len(body) >= 5 and body[0] == AVRO_MAGIC:
            schema_id = struct.unpack(">I", body[1:5])[0]
            schema = self._schema(schema_id)
            if schema is not None:
                return _jsonable(fastavro.schemaless_reader(io.BytesIO(body[5:]), schema, None))
        try:
            return json.loads(body)
        except ValueError:
            return _text(body)

    def _schema(self, schema_id: int) -> Any:
        if self.registry is None:
            return None
        if schema_id not in self._schemas:
            try:
                self._schemas[schema_id] = fastavro.parse_schema(self.registry.get(schema_id))
            except Exception:  # an unknown id: show the body some other way
                self._schemas[schema_id] = None
        return self._schemas[schema_id]


def _text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return _text(value)
    return value
