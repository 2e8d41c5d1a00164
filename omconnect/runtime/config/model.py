"""The pipeline file's own keys as pydantic models.

Connector and transform blocks are kept open here (``connector``/``type`` plus any options);
the loader validates their options against the registered spec of that connector.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from omconnect.runtime.brokers import parse_broker_url
from omconnect.runtime.brokers.direct import NO_BROKER
from omconnect.runtime.config.cron import check_cron, check_timezone
from omconnect.runtime.config.durations import ByteSize, Duration
from omconnect.runtime.state.offsets.broker_stores import (
    BROKER_OFFSET_STORES,
    broker_offsets_refusal,
)

PIPELINE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
# A pipeline name becomes the default topic (and "<topic>.<stream>" topics), and a file sink
# writes ".<topic>-<partition>-<20-digit offset>.<ext>.<pid>-<token>.tmp", about 55 bytes
# more: 160 keeps that under the usual 255-byte limit of a file name, with room for a stream.
MAX_PIPELINE_NAME = 160
# Kafka's rules: its legal characters, at most 249 of them; a leading "." would also make
# file sinks write hidden files that file sources skip.
TOPIC_NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$"
MAX_TOPIC_NAME = 249
DEAD_LETTER_SUFFIX = ".dlq"
DEFAULT_BROKER = "embedded://.omconnect"
DEFAULT_STATE = ".omconnect"

CronExpression = Annotated[str, AfterValidator(check_cron)]
"""A five-field cron expression or an ``@hourly``-style alias."""

TimeZoneName = Annotated[str, AfterValidator(check_timezone)]
"""An IANA time zone name (``UTC``, ``Europe/Berlin``), as ``zoneinfo`` knows them."""

SCHEMA_REGISTRY_URL_PATTERN = r"^https?://[^/?#]+"


def check_schema_registry_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host, else ``ValueError`` saying the form."""
    if not re.match(SCHEMA_REGISTRY_URL_PATTERN, url) or "?" in url or "#" in url:
        raise ValueError(
            "a schema registry URL is http://host:port or https://user:password@host:port "
            "(an optional path, no query)"
        )
    return url


SchemaRegistryUrl = Annotated[
    str,
    AfterValidator(check_schema_registry_url),
    Field(json_schema_extra={"pattern": SCHEMA_REGISTRY_URL_PATTERN}),
]
"""The base URL of a Confluent-compatible schema registry: ``http(s)://[user:password@]host``."""


def check_pipeline_name(name: str) -> str:
    """``name`` if it is a valid pipeline name, else ``ValueError`` saying the rule."""
    if len(name) > MAX_PIPELINE_NAME:
        raise ValueError(
            f"a pipeline name has at most {MAX_PIPELINE_NAME} characters (it names the "
            f"default topic and files derived from it), got {len(name)}"
        )
    if not re.fullmatch(PIPELINE_NAME_PATTERN, name):
        raise ValueError(
            "a pipeline name is letters, digits, '.', '_' and '-', starting with a letter "
            f'or a digit, got "{name}"'
        )
    return name


def check_topic_name(name: str) -> str:
    """``name`` if it is a valid topic name (Kafka's rules), else ``ValueError``."""
    if len(name) > MAX_TOPIC_NAME:
        raise ValueError(f"a topic name has at most {MAX_TOPIC_NAME} characters, got {len(name)}")
    if not re.fullmatch(TOPIC_NAME_PATTERN, name):
        raise ValueError(
            "a topic name is letters, digits, '.', '_' and '-', not starting with '.', "
            f'got "{name}"'
        )
    return name


PipelineName = Annotated[
    str,
    AfterValidator(check_pipeline_name),
    Field(json_schema_extra={"pattern": PIPELINE_NAME_PATTERN, "maxLength": MAX_PIPELINE_NAME}),
]
"""Letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit; at most 160."""

TopicName = Annotated[
    str,
    AfterValidator(check_topic_name),
    Field(json_schema_extra={"pattern": TOPIC_NAME_PATTERN, "maxLength": MAX_TOPIC_NAME}),
]
"""Kafka's rules: letters, digits, ``.``, ``_`` and ``-``, not starting with ``.``; at
most 249 characters."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ConnectorBlock(BaseModel):
    """A ``source:`` or ``sink:`` block: the registered connector name plus its own options."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    connector: str
    """A registered connector name (``omconnect connectors list``)."""

    @property
    def options(self) -> dict[str, Any]:
        """The connector's own options: every key but ``connector``."""
        return dict(self.model_extra or {})


class TransformBlock(BaseModel):
    """One ``transforms:`` item: the registered transform name plus its own options."""

    model_config = ConfigDict(extra="allow", frozen=True, use_attribute_docstrings=True)

    type: str
    """A registered transform name (filter, rename, drop, mask, cast...)."""

    @property
    def options(self) -> dict[str, Any]:
        """The transform's own options: every key but ``type``."""
        return dict(self.model_extra or {})


class ErrorsConfig(_Strict):
    """What happens to records that fail (``errors:``)."""

    tolerance: Literal["none", "all"] = "none"
    """``none``: a failing record stops the task. ``all``: it goes to the dead letter topic."""
    incompatible_schema: Literal["fail", "dead_letter"] = "fail"
    """A batch whose schema the registry refuses (its subject's compatibility mode forbids the
    change): ``fail`` stops the pipeline saying why; ``dead_letter`` sends the batch's records
    to the dead letter topic, the reason in their headers, and goes on (needs ``tolerance:
    all``)."""
    dead_letter_topic: TopicName | None = None
    """Where failed records go (default ``<topic>.dlq``)."""
    retry_timeout: Duration = 300.0
    """How long retriable errors are retried before the task fails."""
    retry_max_delay: Duration = 60.0
    """The longest wait between two retries (backoff is exponential up to it)."""
    log: bool = True
    """Log every failed record (with secrets redacted)."""

    @model_validator(mode="after")
    def _dead_letters_tolerated(self) -> ErrorsConfig:
        if self.incompatible_schema == "dead_letter" and self.tolerance != "all":
            raise ValueError(
                "incompatible_schema: dead_letter sends records to the dead letter topic, "
                "which needs tolerance: all"
            )
        return self


class BatchingConfig(_Strict):
    """How records are grouped before they are sent (``batching:``)."""

    max_rows: int = Field(default=50_000, ge=1)
    """Send a batch when it has this many rows."""
    max_bytes: ByteSize = Field(default=16 * 1024**2, ge=1)
    """Send a batch when it has this many bytes."""
    linger: Duration = 0.05
    """Send a partial batch after waiting this long for more rows. Bulk sources fill whole
    batches and never wait; a stream (CDC, devices) waits up to this for each batch, so it is
    the floor of its latency: 0.2 s made a CDC change's p99 378 ms and an MQTT reading's 455 ms
    at a few thousand a second, 0.01 s 88 ms for the readings."""


class ScheduleConfig(_Strict):
    """When a pipeline runs (``schedule:``): a cron expression, alone as a string or with
    options as a mapping. ``serve``, Airflow and Dagster all read it."""

    cron: CronExpression
    """A five-field cron expression (``*/15 * * * *``) or an alias (``@hourly``)."""
    timezone: TimeZoneName = "UTC"
    """The IANA time zone the cron fields are wall-clock times in (daylight saving included:
    a tick in the hour skipped in spring fires just after it)."""
    catchup: bool = False
    """After ticks were missed (``serve`` was down, or the previous run outlasted them):
    ``false`` runs once for all of them; ``true`` runs once per missed tick, oldest first (at
    most the last 100), as Airflow's ``catchup=True`` does."""
    jitter: Duration = 0.0
    """Start each run after a random delay up to this long, so that many pipelines on one
    tick do not all start at once."""

    @property
    def zone(self) -> ZoneInfo:
        """``timezone`` as a ``ZoneInfo``."""
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        """The cron expression, with its time zone when it is not UTC."""
        return self.cron if self.timezone == "UTC" else f"{self.cron} ({self.timezone})"


def _schedule_from_text(value: Any) -> Any:
    """``schedule: "CRON"`` is ``schedule: {cron: CRON}``; the expression is checked here so
    that its problem is reported at ``schedule`` (its line), not ``schedule.cron``."""
    if isinstance(value, str):
        return {"cron": check_cron(value)}
    return value


class FreshnessConfig(_Strict):
    """When ``serve`` calls a running pipeline idle or stalled (``freshness:``); an unset
    threshold is ``serve``'s (``--idle-after``, ``--stalled-after``)."""

    idle_after: Duration | None = Field(default=None, gt=0)
    """Idle: its tasks show life but no record came for this long (serve's default 10 s)."""
    stalled_after: Duration | None = Field(default=None, gt=0)
    """Stalled: a task showed no life (no poll returned, even empty) for this long: stuck in
    a call, or retrying one that fails (serve's default 60 s). An idle task shows life every
    second or two, so keep this well above that."""


class PipelineConfig(_Strict):
    """One pipeline file."""

    name: PipelineName
    """Unique; names the pipeline's offsets and its default topic."""
    description: str | None = None
    """Free text shown by ``omconnect serve`` and the orchestrators."""
    broker: str = DEFAULT_BROKER
    """Broker URL: embedded://path, kafka://host:9092, nats://..., amqp://..., redis://...;
    or ``none``: no topic, the sink takes the source's rows in the same process (a pipeline
    with both; delivery at least once, nothing encoded)."""
    state: str = DEFAULT_STATE
    """Where offsets and the embedded schema registry live: a directory, or a postgresql:// URL."""
    offsets: Literal["state", "broker"] = "state"
    """Where the source's positions are stored: ``state``, in the offset store of ``state``;
    ``broker``, in the broker, where its users look for them: the compacted topic
    ``__omconnect-offsets`` on kafka://, the key-value bucket ``omconnect-offsets`` on nats://
    (other brokers have none). ``state`` still holds the schema registry and the run lock."""
    schema_registry: SchemaRegistryUrl | None = None
    """An external Confluent-compatible schema registry (``http://host:8081``,
    ``https://user:password@host``) to register and read schemas in, instead of the embedded
    one of ``state``."""
    source: ConnectorBlock | None = None
    """Where records come from (optional when the pipeline only sinks a topic)."""
    transforms: list[TransformBlock] = Field(default_factory=list)
    """Applied in order to every batch."""
    topic: TopicName | None = None
    """The broker topic (default: the pipeline name). A source that reads several streams
    (tables) publishes each to ``<topic>.<stream>``; the pipeline's sink reads all of them."""
    topics: list[TopicName] | None = None
    """Sink-only pipelines: the topics the sink reads (instead of ``topic``)."""
    topic_pattern: str | None = None
    """Sink-only pipelines: read every topic whose whole name matches this regular
    expression, topics created later included."""
    partitions: int = Field(default=1, ge=1)
    """Partitions of each topic the pipeline creates (keys keep their partition)."""
    exactly_once: bool = False
    """Publish each batch and store the source positions in one broker transaction, so a
    crash never duplicates a record on the topic (needs a broker with transactions)."""
    format: Literal["avro", "json", "cloudevents", "raw"] = "avro"
    """How records are encoded on the broker."""
    cloudevents_mode: Literal["binary", "structured"] = "binary"
    """With ``format: cloudevents``: the event attributes as message headers named by the
    broker's protocol binding (``binary``), or the whole event as a JSON body with content
    type ``application/cloudevents+json`` (``structured``)."""
    cloudevents_type: str = Field(default="omconnect.record", min_length=1)
    """With ``format: cloudevents``: the ``type`` attribute of every event."""
    sink: ConnectorBlock | None = None
    """Where records go (optional when the pipeline only publishes)."""
    schedule: Annotated[
        ScheduleConfig | None,
        BeforeValidator(
            _schedule_from_text, json_schema_input_type=CronExpression | ScheduleConfig | None
        ),
    ] = None
    """When the pipeline runs under ``serve``, Airflow and Dagster: a cron expression, or
    ``{cron, timezone, catchup, jitter}``."""
    errors: ErrorsConfig = Field(default_factory=ErrorsConfig)
    """Dead letters and retries."""
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    """Batch size and linger."""
    max_in_flight_bytes: ByteSize = Field(default=128 * 1024**2, ge=1)
    """Back-pressure: the most bytes sent but not yet acknowledged."""
    commit_interval: Duration = 5.0
    """How often acknowledged positions are committed."""
    tasks: int = Field(default=1, ge=1)
    """The most tasks the source's work is split into."""
    freshness: FreshnessConfig = Field(default_factory=FreshnessConfig)
    """When ``serve`` shows the running pipeline idle or stalled: ``{idle_after,
    stalled_after}``."""

    @model_validator(mode="after")
    def _cloudevents_options(self) -> PipelineConfig:
        if self.format != "cloudevents":
            for option in ("cloudevents_mode", "cloudevents_type"):
                if option in self.model_fields_set:
                    raise ValueError(
                        f"{option} is for format: cloudevents (this pipeline's format is "
                        f"{self.format})"
                    )
        return self

    @property
    def without_broker(self) -> bool:
        """``broker: none``: the sink takes the source's rows in the same process."""
        return self.broker == NO_BROKER

    @model_validator(mode="after")
    def _without_a_broker(self) -> PipelineConfig:
        if not self.without_broker:
            return self
        if self.source is None or self.sink is None:
            raise ValueError(
                "broker: none hands the source's rows to the sink in one process: it needs "
                "both a source and a sink (a pipeline with only one of them needs a broker)"
            )
        for option, why in (
            ("exactly_once", "it is a broker transaction"),
            ("format", "it says how records are encoded on a broker"),
            ("cloudevents_mode", "it says how records are encoded on a broker"),
            ("cloudevents_type", "it says how records are encoded on a broker"),
            ("partitions", "it is how topics are split on a broker"),
        ):
            default = type(self).model_fields[option].default
            if option in self.model_fields_set and getattr(self, option) != default:
                raise ValueError(f"{option} does not apply with broker: none: {why}")
        if self.offsets == "broker":
            raise ValueError("offsets: broker needs a broker; with broker: none use offsets: state")
        if "://" in self.state:
            raise ValueError(
                "broker: none keeps dead letters in the embedded broker of the state "
                f"directory, and state is {self.state.split('://', 1)[0]}://; set a directory"
            )
        return self

    @model_validator(mode="after")
    def _offsets_in_the_broker(self) -> PipelineConfig:
        if self.offsets == "broker":
            try:
                scheme = parse_broker_url(self.broker).scheme
            except ValueError:
                return self  # opening the broker says what is wrong with its URL
            if scheme not in BROKER_OFFSET_STORES:
                raise ValueError(broker_offsets_refusal(scheme))
        return self

    @model_validator(mode="after")
    def _source_or_sink(self) -> PipelineConfig:
        if self.source is None and self.sink is None:
            raise ValueError("a pipeline needs a source, a sink, or both")
        chosen = [k for k in ("topic", "topics", "topic_pattern") if getattr(self, k) is not None]
        if len(chosen) > 1:
            raise ValueError(
                f"set one of topic, topics and topic_pattern, not {' and '.join(chosen)}"
            )
        if self.source is not None and chosen and chosen[0] != "topic":
            raise ValueError(
                f"{chosen[0]} is for pipelines without a source; a source publishes to topic "
                "(and <topic>.<stream>)"
            )
        if self.errors.dead_letter_topic is None:
            dead = self.effective_topic + DEAD_LETTER_SUFFIX
            if len(dead) > MAX_TOPIC_NAME:
                raise ValueError(
                    f"the dead letter topic <topic>{DEAD_LETTER_SUFFIX} would have {len(dead)} "
                    f"characters, more than {MAX_TOPIC_NAME}: shorten topic or set "
                    "errors.dead_letter_topic"
                )
        if self.topics is not None and not self.topics:
            raise ValueError("topics needs at least one topic")
        if self.topic_pattern is not None:
            try:
                re.compile(self.topic_pattern)
            except re.error as exc:
                raise ValueError(f"topic_pattern is not a regular expression: {exc}") from None
        return self

    @property
    def effective_topic(self) -> str:
        """``topic``, or the pipeline name when it is not set."""
        return self.topic if self.topic is not None else self.name

    @property
    def sink_subscription(self) -> tuple[list[str], str | None]:
        """What the pipeline's sink reads: (topics, pattern). With a source, the base topic
        and every ``<topic>.<stream>`` (never the dead letter topic)."""
        dead = re.escape(self.effective_dead_letter_topic)
        if self.topics is not None:
            return list(self.topics), None
        if self.topic_pattern is not None:
            return [], f"(?!{dead}$)(?:{self.topic_pattern})"
        topic = self.effective_topic
        return [topic], f"(?!{dead}$){re.escape(topic)}\\..+"

    @property
    def effective_dead_letter_topic(self) -> str:
        """``errors.dead_letter_topic``, or ``<topic>.dlq``."""
        if self.errors.dead_letter_topic is not None:
            return self.errors.dead_letter_topic
        return f"{self.effective_topic}{DEAD_LETTER_SUFFIX}"
