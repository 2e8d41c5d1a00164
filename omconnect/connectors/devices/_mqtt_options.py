"""The options of the ``mqtt`` source, and the server address and credentials they give."""

from __future__ import annotations

from typing import Literal
from urllib.parse import SplitResult, unquote, urlsplit

from pydantic import AliasChoices, Field, field_validator

from omconnect.connectors.api import ConfigError, ConnectorSpec, SecretStr, TypeNames
from omconnect.connectors.devices._mqtt_payloads import TopicTemplate

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class MqttSourceSpec(ConnectorSpec):
    """Options of the ``mqtt`` source."""

    url: SecretStr = Field(
        description=(
            "The MQTT server: `mqtt://host:1883`, or `mqtts://host:8883` for TLS (the "
            "server's certificate is checked against the system's CAs); a user and password "
            "may come in the URL (`mqtt://user:password@host:1883`) or as `username` and "
            "`password`. Secret: its password is never shown in logs or errors. The server "
            "must speak MQTT 5 (Mosquitto 2 does)."
        )
    )
    username: str | None = Field(
        default=None, description="The user to connect as (instead of the one in `url`)."
    )
    password: SecretStr | None = Field(
        default=None, description="The password of `username` (instead of the one in `url`)."
    )
    topics: list[str] = Field(
        min_length=1,
        examples=[["plant/+/+/telemetry"]],
        description=(
            "MQTT topic filters to subscribe to: `+` matches one level, a last `#` every "
            "level below (`plant/+/+/telemetry`, `plant/#`)."
        ),
    )
    qos: Literal[0, 1] = Field(
        default=1,
        description=(
            "The QoS of the subscriptions. 1 (at least once): a message is acknowledged to "
            "the server only once omconnect's broker stored it, so messages are never lost; "
            "those in flight during a crash come again. 0 (at most once): the server sends "
            "each message once and forgets it, so those in flight during a crash or a "
            "lost connection, and those published while omconnect is stopped, are lost."
        ),
    )
    client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=65535,
        description=(
            "The MQTT client id, which names the server's session for this source (default "
            "`omconnect-<pipeline name>`). The session is persistent (clean start off): "
            "what is published to `topics` while omconnect is stopped waits there and is "
            "read when it comes back, for `session_expiry` seconds. Two running pipelines "
            "must not share a client id: the server would disconnect one for the other."
        ),
    )
    session_expiry: float = Field(
        default=86_400.0,
        ge=0,
        le=0xFFFFFFFF,
        description=(
            "Seconds the server keeps the session (subscriptions and unacknowledged "
            "messages) while omconnect is disconnected; 0 ends it at each disconnect (what "
            "is published meanwhile is lost). The server may cap it "
            "(Mosquitto: `persistent_client_expiration`) and bounds what a session queues "
            "(Mosquitto: `max_queued_messages`, 1000 by default, then drops)."
        ),
    )
    receive_maximum: int = Field(
        default=10_000,
        ge=1,
        le=65535,
        description=(
            "The most QoS 1 messages the server sends before omconnect acknowledged them "
            "(after its broker stored them): bounds the memory they take and the messages "
            "delivered twice after a crash. The server queues only so many more (Mosquitto: "
            "`max_queued_messages`, 1,000 by default) and drops the rest, also while omconnect "
            "is connected but behind; raise it (up to 65535) where devices send in bursts."
        ),
    )
    payload: Literal["json", "bytes", "string"] = Field(
        default="json",
        description=(
            "How payloads are read: `json` (one JSON object per message; its fields become "
            "the record's), `string` (UTF-8 text in a `payload` field) or `bytes` (as they "
            "are, in a `payload` field). A payload that cannot be read so goes to the dead "
            "letter topic (with `errors.tolerance: all`) with its topic and the reason."
        ),
    )
    columns: TypeNames | None = Field(
        default=None,
        validation_alias=AliasChoices("columns", "schema"),
        description=(
            "`payload: json` only: the fields to read and their types, `{name: type}`, also "
            "accepted as `schema`, written as in the `cast` transform (`int64`, `float64`, "
            "`decimal(p,s)`, `string`, `timestamp(UTC)`, `array<..>`, `struct<..>`, SQL "
            "spellings such as `bigint`, `double`, `timestamptz`). Only these fields are "
            "read (others in the payload are ignored) and a missing one is null; a payload "
            "with a value that does not fit its type is a bad payload. Without `columns` "
            "the fields and types are inferred from the payloads of each poll."
        ),
    )
    topic_fields: str | None = Field(
        default=None,
        examples=["plant/{site}/{device}/telemetry"],
        description=(
            "Topic levels that become string fields: a template of the topic where a level "
            "`{name}` becomes the field `name` (`plant/{site}/{device}/telemetry` gives "
            "`site` and `device`). The fields of a topic that does not fit the template "
            "(other levels) are null."
        ),
    )
    topic_field: str | None = Field(
        default="topic",
        min_length=1,
        description="The field that holds each message's MQTT topic (null: no such field).",
    )
    time_field: str | None = Field(
        default="received_at",
        min_length=1,
        description=(
            "The field that holds when omconnect received each message (`timestamp(UTC)`; "
            "null: no such field). It is also the record's timestamp."
        ),
    )
    key: list[str] = Field(
        default_factory=list,
        description=(
            "Fields that make the message key (for example `[site, device]`): fields of "
            "`topic_fields`, `columns`, `topic_field`, `time_field` or `payload`."
        ),
    )
    batch_size: int = Field(
        default=10_000,
        ge=1,
        description=(
            "The most messages one poll reads. The pipeline's `batching:` groups polls "
            "into the batches it publishes."
        ),
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a connection attempt may take."
    )
    keepalive: int = Field(
        default=30,
        ge=1,
        le=65535,
        description=(
            "Seconds between keep-alive pings; a connection silent for 1.5 times this is "
            "dead, and omconnect connects again."
        ),
    )

    @field_validator("topic_fields")
    @classmethod
    def _template(cls, template: str | None) -> str | None:
        if template is not None:
            TopicTemplate.check(template)
        return template

    @field_validator("topics")
    @classmethod
    def _filters(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            check_filter(topic)
        return topics


def check_filter(topic: str) -> None:
    """Refuse what is no MQTT topic filter.

    Raises:
        ValueError: an empty filter, a level with a wildcard and other text, a `#` that is
            not the last level.
    """
    if not topic:
        raise ValueError("an empty topic filter")
    levels = topic.split("/")
    for number, level in enumerate(levels):
        if ("+" in level or "#" in level) and len(level) > 1:
            raise ValueError(f"{topic!r}: a wildcard (+ or #) must be a whole level")
        if level == "#" and number != len(levels) - 1:
            raise ValueError(f"{topic!r}: # must be the last level")


def server_url(spec: MqttSourceSpec) -> SplitResult:
    """The parsed ``url``.

    Raises:
        ConfigError: at ``url``, without showing it: another scheme, no host, a path, a
            bad port.
    """
    text = spec.url.get_secret_value()
    try:
        parsed = urlsplit(text)
        parsed.port  # noqa: B018 - parsing the port may raise
    except ValueError:
        raise ConfigError(
            "not a URL of the form mqtt://host:1883 (or mqtts://host:8883)", key="url"
        ) from None
    if parsed.scheme not in DEFAULT_PORTS:
        raise ConfigError(
            f"the scheme must be mqtt:// or mqtts:// (found {parsed.scheme or 'none'}://)",
            key="url",
        )
    if not parsed.hostname:
        raise ConfigError("no host: write mqtt://host:1883", key="url")
    if parsed.path.strip("/") or parsed.query:
        raise ConfigError(
            "the URL takes no path or options: topics go in `topics`, settings in their "
            "own options",
            key="url",
        )
    return parsed


def credentials(spec: MqttSourceSpec, parsed: SplitResult) -> tuple[str | None, str | None]:
    """The user and password: the options, else the URL's."""
    username = spec.username if spec.username is not None else _unquoted(parsed.username)
    if spec.password is not None:
        return username, spec.password.get_secret_value()
    return username, _unquoted(parsed.password)


def _unquoted(text: str | None) -> str | None:
    return unquote(text) if text is not None else None
