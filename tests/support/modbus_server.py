"""A Modbus TCP server for the tests: pymodbus's server on a free loopback port, run on an
event loop of its own in a thread, with values the test sets and a log of the requests it
answered.

Each table (``holding``, ``input``, ``coil``, ``discrete``) has addresses
``0..SIZE - 1``; a read past them gets exception 2 (illegal data address). ``set_words``
and ``set_bits`` change what the next reads return (input registers and discrete inputs too,
which no client can write); ``requests`` lists the reads served, oldest first;
``answer_exception`` makes every read answer a Modbus exception code. ``stop`` closes the
listener and every connection; ``start`` listens again on the same port.

Without a device at hand, run one from the repository root (a pipeline's ``MODBUS_URL``)::

    python -m tests.support.modbus_server 5020
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

Area = Literal["holding", "input", "coil", "discrete"]

SIZE = 4_096
"""Addresses per table: 0..4095."""
_TABLE_OF_FUNCTION: dict[int, Area] = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
_BIT_TABLES = ("coil", "discrete")


@dataclass(frozen=True)
class Request:
    """One read the server answered: its area, first address, count and unit."""

    area: Area
    address: int
    count: int
    unit: int


class ModbusTestServer:
    """See the module docstring. Use it as a context manager, or ``start`` and ``close``."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._words: dict[Area, list[int]] = {"holding": [0] * SIZE, "input": [0] * SIZE}
        self._bits: dict[Area, list[bool]] = {"coil": [False] * SIZE, "discrete": [False] * SIZE}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: ModbusTcpServer | None = None
        self._exception: ExcCodes | None = None

    @property
    def url(self) -> str:
        """The ``modbus+tcp://`` URL of the server."""
        return f"modbus+tcp://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen (again, on the same port when it listened before)."""
        self._run(self._start())

    def stop(self) -> None:
        """Close the listener and drop every connection."""
        self._run(self._stop())

    def close(self) -> None:
        """Stop, and end the server's thread."""
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> ModbusTestServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_words(self, table: Area, address: int, words: Sequence[int]) -> None:
        """Registers from ``address`` on answer ``words`` (0..65535 each) from now on."""
        with self._lock:
            self._words[table][address : address + len(words)] = [int(w) for w in words]

    def set_value(self, table: Area, address: int, value: Any, dtype: str) -> None:
        """Registers from ``address`` hold ``value`` as the big-endian numpy type ``dtype``
        (``">i4"``, ``">f8"``): Modbus order, most significant byte and word first."""
        raw = np.array([value], dtype=dtype).tobytes()
        self.set_words(table, address, np.frombuffer(raw, ">u2").tolist())

    def set_bits(self, table: Area, address: int, bits: Sequence[bool]) -> None:
        """Coils or discrete inputs from ``address`` on answer ``bits`` from now on."""
        with self._lock:
            self._bits[table][address : address + len(bits)] = [bool(b) for b in bits]

    def answer_exception(self, code: ExcCodes | None) -> None:
        """Every read answers exception ``code`` from now on (None: values again)."""
        self._exception = code

    def reads(self) -> list[Request]:
        """The reads answered so far."""
        with self._lock:
            return list(self.requests)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _start(self) -> None:
        if self._server is not None:
            return
        blocks = [[_block(table)] for table in ("coil", "discrete", "holding", "input")]
        device = SimDevice(id=0, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]))
        device.action = self._serve
        server = ModbusTcpServer(
            device, address=("127.0.0.1", self.port), trace_pdu=self._log_request
        )
        await server.serve_forever(background=True)
        listener: Any = server.transport
        self.port = listener.sockets[0].getsockname()[1]
        self._server = server

    async def _stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    def _log_request(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        table = _TABLE_OF_FUNCTION.get(pdu.function_code)
        if not sending and table is not None:
            with self._lock:
                self.requests.append(Request(table, pdu.address, pdu.count, pdu.dev_id))
        return pdu

    async def _serve(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Copies the test's values of the table into the block the server answers from."""
        table = _TABLE_OF_FUNCTION.get(function_code)
        if table is None or set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # the tests' device is read-only
        if self._exception is not None:
            return self._exception
        with self._lock:
            if table in _BIT_TABLES:
                # The block keeps bits 16 to a register, the first bit in the lowest one.
                bits = np.array(self._bits[table], np.uint16).reshape(-1, 16)
                packed = (bits << np.arange(16, dtype=np.uint16)).sum(axis=1)
                registers[: len(packed)] = packed.tolist()
            else:
                registers[:SIZE] = self._words[table]
        del start_address, address, count
        return None


def _block(table: Area) -> SimData:
    if table in _BIT_TABLES:
        return SimData(0, count=SIZE, values=False, datatype=DataType.BITS)
    return SimData(0, count=SIZE, values=0, datatype=DataType.REGISTERS)


@contextmanager
def modbus_server() -> Iterator[ModbusTestServer]:
    """A started server, closed after."""
    with ModbusTestServer() as server:
        yield server


def _serve_forever(port: int) -> None:
    with ModbusTestServer(port) as server:
        print(f"serving {server.url} (Ctrl-C stops)", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    _serve_forever(int(sys.argv[1]) if len(sys.argv) > 1 else 5020)
