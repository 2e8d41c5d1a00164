"""The ``mqtt`` source: messages of MQTT topic filters into records, acknowledged to the MQTT
server only once omconnect's broker stored them.

How nothing is lost. The source connects with a persistent session (clean start off, the
``session_expiry`` option) under a stable client id, subscribes at QoS 1 and acknowledges
messages by hand (paho-mqtt's ``manual_ack``): a message is PUBACKed from ``commit``, which
the runtime calls once its broker acknowledged every record up to a position. Until then the
server keeps the message in the session, and sends it again when the source connects again
(after a crash, a stop or a lost connection). So at QoS 1:

- a restart loses nothing: what was published while omconnect was down waits in the session
  (within the server's limits: Mosquitto's ``max_queued_messages``, 1000 by default, and
  ``persistent_client_expiration``);
- a crash (SIGKILL included) delivers again what was received and not yet committed: at most
  ``receive_maximum`` messages, in practice the batches in flight. Records carry the MQTT
  topic and the receive time, not an MQTT message id (MQTT has none): consumers that must
  not count a reading twice de-duplicate by a reading id or time in the payload.

At QoS 0 the server sends each message once: those received and not yet published by
omconnect when it crashes or loses its connection are lost, and nothing is kept for the
session while omconnect is stopped.

Positions. MQTT has no offset to resume from: the server's session is the resume point. The
position of a record, ``{"client_id": ...}`` -> ``{"run": ..., "seq": n}``, counts the
messages of one run of the task, only so that ``commit`` knows which messages to
acknowledge; a new run starts a new count and never reads stored positions (setting one with
``omconnect offsets`` changes nothing). Message ids (``oms.message_id``) are ``<run>-<seq>``,
unique per delivery: a message delivered again gets a new id.

Each poll returns what arrived since the last one (up to ``batch_size`` messages, waiting up
to about a second when nothing did): topic levels (``topic_fields``), the topic and the receive
time become fields, MQTT 5 user properties become the record's headers (the content type as
``content-type``), payloads are read as ``payload`` says (``_mqtt_payloads``). A payload that
cannot be read goes to the dead letter topic with its topic and the reason, and is
acknowledged once the report is delivered, like the records around it.
"""

from __future__ import annotations

from typing import ClassVar

from omconnect.connectors.api import ConfigError, ConnectorSpec, SourceConnector, register
from omconnect.connectors.devices._mqtt_options import MqttSourceSpec, server_url
from omconnect.connectors.devices._mqtt_payloads import PAYLOAD_COLUMN, TopicTemplate
from omconnect.connectors.devices._mqtt_task import MqttSourceTask
from omconnect.connectors.devices._readings import check_names


class MqttSource(SourceConnector):
    """Reads MQTT topics (telemetry) with a persistent session, acknowledging each message
    only after omconnect's broker stored it."""

    name = "mqtt"
    spec: ClassVar[type[ConnectorSpec]] = MqttSourceSpec
    description = "Read MQTT topics (device telemetry) at least once, with a persistent session."

    task_class = MqttSourceTask

    def validate(self) -> None:
        """Refuse a malformed ``url``, ``columns`` without JSON payloads, two fields of one
        name and key fields that no option makes. Reaches no server."""
        config = self.config
        assert isinstance(config, MqttSourceSpec)
        server_url(config)
        if config.columns is not None and config.payload != "json":
            raise ConfigError(
                f"`columns` types the fields of JSON payloads; with payload: {config.payload} "
                f"the record has one `{PAYLOAD_COLUMN}` field",
                key="columns",
            )
        names = _field_sources(config)
        check_names(names)
        known = {name for name, _ in names}
        for number, field in enumerate(config.key):
            if field not in known:
                raise ConfigError(
                    f"the key field {field!r} is none of the record's known fields "
                    f"({', '.join(sorted(known)) or 'none'}): declare it in `columns` or "
                    "`topic_fields`",
                    key=f"key[{number}]",
                )


def _field_sources(config: MqttSourceSpec) -> list[tuple[str, str]]:
    """(field, option) of every field whose name is known before any payload."""
    names: list[tuple[str, str]] = []
    if config.topic_fields is not None:
        names += [(n, "topic_fields") for n in TopicTemplate(config.topic_fields).fields]
    if config.payload == "json":
        names += [(n, f"columns.{n}") for n in config.columns or {}]
    else:
        names.append((PAYLOAD_COLUMN, "payload"))
    if config.topic_field is not None:
        names.append((config.topic_field, "topic_field"))
    if config.time_field is not None:
        names.append((config.time_field, "time_field"))
    return names


register(MqttSource)
