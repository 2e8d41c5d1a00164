"""One Modbus TCP connection of a ``modbus`` task: connected when a read needs it, dropped when
it fails, and each failure turned into an error a person can act on.

A connection that cannot be made, is lost, or does not answer within ``timeout`` is a
``RetriableError``: the runtime calls ``poll`` again with backoff and the next read connects
anew. An exception response is an error of its own per exception code: busy devices and
gateways that cannot reach them are retried, anything else (an address the device does not
have, an area it does not serve) fails the task naming the fields of the request.

pymodbus is the ``modbus`` extra and is imported only when a connection is made: every
connector module is imported when plugins load, so a module-level import would make every
command pay for it, and fail without the extra.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from omconnect.connectors.api import ConfigError, ConnectorError, RetriableError
from omconnect.connectors.devices._modbus_plan import ReadRequest

if TYPE_CHECKING:
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.pdu import ModbusPDU

log = logging.getLogger("omconnect.modbus")

# Exception code -> its name in the Modbus application protocol, and what it means here.
_EXCEPTIONS: dict[int, str] = {
    1: "ILLEGAL FUNCTION: the device does not serve this area",
    2: (
        "ILLEGAL DATA ADDRESS: the device has no such address in this range; check the "
        "addresses (0-based) and the area"
    ),
    3: "ILLEGAL DATA VALUE: the device refused the request",
    4: "SERVER DEVICE FAILURE",
    5: "ACKNOWLEDGE: the device is busy with a long command",
    6: "SERVER DEVICE BUSY",
    8: "MEMORY PARITY ERROR",
    10: "GATEWAY PATH UNAVAILABLE",
    11: "GATEWAY TARGET DEVICE FAILED TO RESPOND: is the unit right and the device on?",
}
# Exceptions a device or gateway answers while it is busy or cannot reach the device now.
_TRANSIENT = frozenset({5, 6, 10, 11})


class ModbusConnection:
    """Reads of one unit of one Modbus TCP server (see the module docstring)."""

    def __init__(self, host: str, port: int, unit: int, timeout: float) -> None:
        self.host = host
        self.port = port
        self.unit = unit
        self.timeout = timeout
        self.where = f"modbus {host}:{port} unit {unit}"
        self._client: AsyncModbusTcpClient | None = None
        self._failed = False

    async def read(self, request: ReadRequest) -> Sequence[int] | Sequence[bool]:
        """The registers or bits ``request`` asks for.

        Raises:
            RetriableError: no connection, a lost one, no answer in time, a busy device.
            ConnectorError: the device refused the request for good.
        """
        from pymodbus.exceptions import ModbusException

        client = await self._connected()
        read = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }[request.area]
        try:
            answer: ModbusPDU = await read(request.start, count=request.count, device_id=self.unit)
        except (TimeoutError, ModbusException, OSError) as error:
            self.close()
            raise self._lost(f"reading {request.describe()} got no answer ({error})") from error
        if answer.isError():
            raise _refused(self.where, request, answer.exception_code)
        values: Sequence[int] | Sequence[bool] = answer.bits if request.bits else answer.registers
        if len(values) < request.count:
            self.close()
            raise self._lost(
                f"reading {request.describe()} got {len(values)} values for {request.count}"
            )
        return values

    def close(self) -> None:
        """Drop the connection; the next read connects again."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        try:
            from pymodbus.client import AsyncModbusTcpClient
        except ImportError as error:
            raise ConfigError(
                "the modbus source needs pymodbus: pip install 'omconnect[modbus]'", key="url"
            ) from error
        # The client's own reconnecting is off (reconnect_delay=0): the runtime's backoff
        # paces the attempts, and a failure reaches the pipeline's log and metrics.
        client = AsyncModbusTcpClient(
            self.host, port=self.port, timeout=self.timeout, retries=0, reconnect_delay=0
        )
        if not await client.connect():
            client.close()
            raise self._lost(f"cannot connect within {self.timeout:g}s")
        self._client = client
        if self._failed:
            log.info("%s: connected again", self.where)
            self._failed = False
        return client

    def _lost(self, what: str) -> RetriableError:
        self._failed = True
        return RetriableError(f"{self.where}: {what}; connecting again")


def _refused(where: str, request: ReadRequest, code: int) -> ConnectorError:
    meaning = _EXCEPTIONS.get(code, "an exception code the protocol does not define")
    message = f"{where}: reading {request.describe()} failed with exception {code}, {meaning}"
    if code in _TRANSIENT:
        return RetriableError(message)
    return ConnectorError(message)
