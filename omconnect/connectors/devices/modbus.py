"""The ``modbus`` source: polls named registers and bits of a Modbus TCP device, one record per
poll.

Every ``poll_interval`` seconds the task reads every field of ``registers`` (adjacent fields
of one table in one request) and emits one record: each field under its name, decoded as its
``type`` says, then ``time_field``, when the poll was taken (UTC, also the record's
timestamp).

Positions: a device has no history to resume from. A task starts polling at once whatever
its committed positions say, so a restart loses the polls that would have been taken while
the pipeline was down (``SourceConnector.resumable`` is False). Each record still carries a
position, the device and the time of its poll, so that the runtime's message ids differ from
one poll to the next and across restarts, and ``omconnect offsets list`` shows the last poll
delivered.

Failures: a device that cannot be reached, drops the connection or does not answer within
``timeout`` is retried with backoff (``errors.retry_timeout``) and polling goes on when it
answers again; the polls missed meanwhile are not taken later. A read the device refuses for
good (an address it does not have) fails the task naming the fields of that request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from omconnect.connectors.api import (
    AsyncSourceTask,
    ConnectorSpec,
    PollResult,
    Position,
    PositionMark,
    RecordBatch,
    SourceConnector,
    TaskContext,
    register,
)
from omconnect.connectors.devices._modbus_client import ModbusConnection
from omconnect.connectors.devices._modbus_fields import FieldLayout, RegisterSpec, field_layouts
from omconnect.connectors.devices._modbus_plan import ReadingDecoder, plan_requests
from omconnect.connectors.devices._readings import check_names, readings_batch

URL_SCHEME = "modbus+tcp"
DEFAULT_PORT = 502
MAX_POLL_WAIT = 1.0
"""The longest ``poll`` waits for the next poll time before it returns None."""


class ModbusSourceSpec(ConnectorSpec):
    """Options of the ``modbus`` source."""

    url: str = Field(
        examples=["modbus+tcp://127.0.0.1:502"],
        description=(
            "The device (or gateway): `modbus+tcp://HOST[:PORT]`, port 502 when not given."
        ),
    )
    unit: int = Field(
        default=1,
        ge=0,
        le=255,
        description=(
            "The unit (slave, device) id the requests address; a gateway passes it on to "
            "the device behind it."
        ),
    )
    poll_interval: float = Field(
        default=1.0,
        gt=0,
        description=(
            "The seconds between the starts of two polls. A poll that takes longer delays "
            "the next one; polls missed while the device did not answer are not made up."
        ),
    )
    timeout: float = Field(
        default=1.0,
        gt=0,
        description=(
            "The seconds to wait for a connection or an answer before the read is retried "
            "(with backoff, on a new connection)."
        ),
    )
    time_field: str | None = Field(
        default="time",
        min_length=1,
        description=(
            "The field that holds when the poll was taken (`timestamp(UTC)`; null: no such "
            "field). It is also the record's timestamp."
        ),
    )
    registers: list[RegisterSpec] = Field(
        min_length=1,
        examples=[
            [
                {"name": "temperature", "address": 0, "type": "int16", "scale": 0.1},
                {"name": "running", "area": "coil", "address": 0},
            ]
        ],
        description="The fields of each record: one per value read from the device.",
    )

    @field_validator("url")
    @classmethod
    def _modbus_tcp_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != URL_SCHEME or not parts.hostname:
            raise ValueError(f"expected {URL_SCHEME}://HOST[:PORT], got {value!r}")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as error:
            raise ValueError(f"{value!r}: {error}") from None
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"expected {URL_SCHEME}://HOST[:PORT] and nothing after it")
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or DEFAULT_PORT


class ModbusSourceTask(AsyncSourceTask):
    """Polls the device on the worker's event loop (see the module docstring)."""

    async def start(self, config: ConnectorSpec, context: TaskContext) -> None:
        assert isinstance(config, ModbusSourceSpec)
        self.config = config
        self.once = context.once
        self.fields = record_fields(config)
        self.requests = plan_requests(self.fields)
        self.decoder = ReadingDecoder(self.fields, self.requests)
        self.values = pa.schema([pa.field(f.name, f.arrow_type, False) for f in self.fields])
        self.connection = ModbusConnection(config.host, config.port, config.unit, config.timeout)
        self.partition: dict[str, Any] = {
            "device": f"{URL_SCHEME}://{config.host}:{config.port}",
            "unit": config.unit,
        }
        # Committed positions are not read: polling starts now (see the module docstring).
        self.next_poll = asyncio.get_running_loop().time()
        self.done = False

    async def poll(self) -> PollResult:
        """The next poll's record when it is due within about a second, else None."""
        if self.done:
            return None
        loop = asyncio.get_running_loop()
        wait = self.next_poll - loop.time()
        if wait > MAX_POLL_WAIT:
            await asyncio.sleep(MAX_POLL_WAIT)
            return None
        if wait > 0:
            await asyncio.sleep(wait)
        self.next_poll = max(self.next_poll + self.config.poll_interval, loop.time())
        batch = await self._read()
        self.done = self.once
        return batch

    async def _read(self) -> RecordBatch:
        taken = dt.datetime.now(dt.UTC)
        answers = [await self.connection.read(request) for request in self.requests]
        columns = self.decoder.decode(answers)
        values = pa.Table.from_arrays([columns[f.name] for f in self.fields], schema=self.values)
        mark = PositionMark(1, Position(self.partition, {"time": taken}))
        return readings_batch(
            values,
            np.array([taken.timestamp() * 1000], np.int64),
            schema_name="modbus",
            time_field=self.config.time_field,
            marks=(mark,),
        )

    async def stop(self) -> None:
        connection = getattr(self, "connection", None)
        if connection is not None:
            connection.close()


def record_fields(config: ModbusSourceSpec) -> list[FieldLayout]:
    """The layouts of the fields ``config`` reads.

    Raises:
        ConfigError: a register that can never be read, or a field name used twice.
    """
    names = [(r.name, f"registers[{i}].name") for i, r in enumerate(config.registers)]
    if config.time_field is not None:
        names.insert(0, (config.time_field, "time_field"))
    check_names(names)
    return field_layouts(config.registers)


class ModbusSource(SourceConnector):
    """Polls registers and bits of a Modbus TCP device into one record per poll."""

    name = "modbus"
    spec: ClassVar[type[ConnectorSpec]] = ModbusSourceSpec
    task_class = ModbusSourceTask
    description = (
        "Poll named registers and bits of a Modbus TCP device, one record per poll. A device "
        "keeps no history: a restart polls from now on, and the polls that would have been "
        "taken while the pipeline was stopped are lost."
    )
    resumable = False

    def validate(self) -> None:
        """Refuse registers that can never be read (``ConfigError`` naming the register)."""
        assert isinstance(self.config, ModbusSourceSpec)
        record_fields(self.config)


register(ModbusSource)
