"""The named fields a ``modbus`` source reads: their options, and what each one occupies on the
device (area, first address, how many registers or bits) and becomes in a record (type,
scaling, byte and word order), checked once so that a config that can never work is refused
before anything polls."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from omconnect.connectors.api import ConfigError, ConnectorSpec

Area = Literal["holding", "input", "coil", "discrete"]
Order = Literal["big", "little"]

BIT_AREAS = ("coil", "discrete")
LAST_ADDRESS = 65_535
MAX_REGISTERS = 125
"""The most registers one read request may ask for (Modbus application protocol, 6.3)."""
MAX_BITS = 2_000
"""The most coils or discrete inputs one read request may ask for."""

# type name -> (registers, the numpy type of those registers read big-endian, the record type)
_NUMBERS: dict[str, tuple[int, str, pa.DataType]] = {
    "int16": (1, ">i2", pa.int16()),
    "uint16": (1, ">u2", pa.uint16()),
    "int32": (2, ">i4", pa.int32()),
    "uint32": (2, ">u4", pa.uint32()),
    "int64": (4, ">i8", pa.int64()),
    "uint64": (4, ">u8", pa.uint64()),
    "float32": (2, ">f4", pa.float32()),
    "float64": (4, ">f8", pa.float64()),
}
_STRING = re.compile(r"string\((?P<length>\d+)\)")
TYPE_NAMES = (*_NUMBERS, "bool", "string(N)")


class RegisterSpec(ConnectorSpec):
    """One named value read from the device on every poll."""

    name: str = Field(min_length=1, description="The field of the record that holds the value.")
    area: Area = Field(
        default="holding",
        description=(
            "The Modbus table the value lives in: `holding` registers (read with function "
            "3), `input` registers (function 4), `coil` (function 1) or `discrete` inputs "
            "(function 2)."
        ),
    )
    address: int = Field(
        ge=0,
        le=LAST_ADDRESS,
        description=(
            "The first register or bit, 0-based as on the wire (the register a manual calls "
            "40001 is holding address 0)."
        ),
    )
    type: str | None = Field(
        default=None,
        description=(
            "How the registers are read: `int16`, `uint16`, `int32`, `uint32`, `int64`, "
            "`uint64` (1, 1, 2, 2, 4 and 4 registers), `float32`, `float64` (IEEE 754, 2 and "
            "4 registers), `string(N)` (N bytes of text, two per register, trailing NULs "
            "dropped) or `bool` (a coil or discrete input). Default: `bool` for coils and "
            "discrete inputs, `uint16` for registers."
        ),
    )
    scale: float | None = Field(
        default=None,
        description=(
            "Multiplies a number as read (`0.1` for a register holding tenths); with `scale` "
            "or `offset` set the field is a float64."
        ),
    )
    offset: float | None = Field(
        default=None, description="Added to a number after `scale`: `value * scale + offset`."
    )
    byte_order: Order = Field(
        default="big",
        description="The order of the two bytes within each register (Modbus sends big).",
    )
    word_order: Order = Field(
        default="big",
        description=(
            "The order of the registers of a 32- or 64-bit value: `big` when the first "
            "register holds the most significant word, `little` when it holds the least."
        ),
    )


@dataclass(frozen=True)
class FieldLayout:
    """One register field as read: where it is and how it is decoded.

    Attributes:
        size: registers for numbers and strings, bits for ``bool``.
        dtype: the big-endian numpy type of a number's registers; None for bools and strings.
        length: a string's bytes; 0 for other types.
        arrow_type: the type of the field in records.
        key: the option that declares it, ``registers[3]``, for errors.
    """

    name: str
    area: Area
    address: int
    size: int
    dtype: np.dtype | None
    length: int
    arrow_type: pa.DataType
    scale: float | None
    offset: float | None
    byte_order: Order
    word_order: Order
    key: str

    @property
    def end(self) -> int:
        """The address after the field's last register or bit."""
        return self.address + self.size

    @property
    def scaled(self) -> bool:
        return self.scale is not None or self.offset is not None


def field_layouts(registers: Sequence[RegisterSpec]) -> list[FieldLayout]:
    """The layout of every field, in the order of ``registers``.

    Raises:
        ConfigError: a field that can never be read (an unknown type, a string without its
            length, a type its area cannot hold, a value past the last address), with
            ``key`` naming its option (``registers[2].type``).
    """
    return [_layout(register, f"registers[{index}]") for index, register in enumerate(registers)]


def _layout(register: RegisterSpec, key: str) -> FieldLayout:
    bits = register.area in BIT_AREAS
    type_name = register.type or ("bool" if bits else "uint16")
    dtype: np.dtype | None = None
    length = 0
    if type_name == "bool":
        if not bits:
            raise ConfigError(
                f"{key}.type: bool reads a coil or discrete input, not a {register.area} "
                "register (read it as uint16)",
                key=f"{key}.type",
            )
        size, arrow_type = 1, pa.bool_()
    elif bits:
        raise ConfigError(
            f"{key}.type: a {register.area} value is one bit: its type is bool, not {type_name}",
            key=f"{key}.type",
        )
    elif type_name in _NUMBERS:
        size, numpy_type, arrow_type = _NUMBERS[type_name]
        dtype = np.dtype(numpy_type)
    elif (string := _STRING.fullmatch(type_name)) is not None:
        length = int(string["length"])
        size, arrow_type = (length + 1) // 2, pa.string()
        if not 1 <= size <= MAX_REGISTERS:
            raise ConfigError(
                f"{key}.type: {type_name} must be 1 to {2 * MAX_REGISTERS} bytes long (one "
                f"request reads at most {MAX_REGISTERS} registers)",
                key=f"{key}.type",
            )
    else:
        hint = " (give its length in bytes: string(N))" if type_name == "string" else ""
        raise ConfigError(
            f"{key}.type: unknown type {type_name!r}{hint}; expected one of "
            f"{', '.join(TYPE_NAMES)}",
            key=f"{key}.type",
        )
    if register.address + size - 1 > LAST_ADDRESS:
        raise ConfigError(
            f"{key}.address: {type_name} at {register.address} needs addresses "
            f"{register.address}..{register.address + size - 1}, past the last one, "
            f"{LAST_ADDRESS}",
            key=f"{key}.address",
        )
    scaled = register.scale is not None or register.offset is not None
    if scaled and dtype is None:
        raise ConfigError(
            f"{key}: scale and offset apply to numbers, not to {type_name}", key=f"{key}.scale"
        )
    return FieldLayout(
        name=register.name,
        area=register.area,
        address=register.address,
        size=size,
        dtype=dtype,
        length=length,
        arrow_type=pa.float64() if scaled else arrow_type,
        scale=register.scale,
        offset=register.offset,
        byte_order=register.byte_order,
        word_order=register.word_order,
        key=key,
    )
