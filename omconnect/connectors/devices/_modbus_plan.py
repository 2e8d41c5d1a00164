"""How a poll reads its fields: as few read requests as the protocol allows (adjacent and
overlapping fields of one table share a request of up to 125 registers or 2000 bits), and
the answers decoded into one value per field with numpy, field types at a time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from omconnect.connectors.devices._modbus_fields import (
    BIT_AREAS,
    MAX_BITS,
    MAX_REGISTERS,
    Area,
    FieldLayout,
)

_AREA_NAMES: dict[Area, str] = {
    "holding": "holding registers",
    "input": "input registers",
    "coil": "coils",
    "discrete": "discrete inputs",
}

# How many of a request's fields an error names.
_NAMED = 5


@dataclass(frozen=True)
class ReadRequest:
    """One read: ``count`` registers or bits of ``area`` from ``start``, covering ``fields``."""

    area: Area
    start: int
    count: int
    fields: tuple[str, ...]

    @property
    def bits(self) -> bool:
        return self.area in BIT_AREAS

    def describe(self) -> str:
        """``holding registers 10..13 (fields "a", "b")``, for errors."""
        names = ", ".join(f'"{name}"' for name in self.fields[:_NAMED])
        if len(self.fields) > _NAMED:
            names += f" and {len(self.fields) - _NAMED} more"
        last = self.start + self.count - 1
        return f"{_AREA_NAMES[self.area]} {self.start}..{last} (fields {names})"


def plan_requests(fields: Sequence[FieldLayout]) -> list[ReadRequest]:
    """The requests that read every field: per area, runs of fields whose addresses touch or
    overlap, each cut where it would pass the protocol's limit. A gap between two fields
    always starts a new request: the addresses in it may not exist on the device."""
    requests: list[ReadRequest] = []
    for area in _AREA_NAMES:
        limit = MAX_BITS if area in BIT_AREAS else MAX_REGISTERS
        start = end = -1
        names: list[str] = []
        for field in sorted((f for f in fields if f.area == area), key=lambda f: f.address):
            if names and field.address <= end and max(end, field.end) - start <= limit:
                end = max(end, field.end)
                names.append(field.name)
                continue
            if names:
                requests.append(ReadRequest(area, start, end - start, tuple(names)))
            start, end, names = field.address, field.end, [field.name]
        if names:
            requests.append(ReadRequest(area, start, end - start, tuple(names)))
    return requests


@dataclass(frozen=True)
class _NumberGroup:
    """Number fields decoded together: one type, byte and word order, scaled or not."""

    names: list[str]
    dtype: np.dtype
    arrow_type: pa.DataType
    byte_order: str
    word_order: str
    index: npt.NDArray[np.intp]  # (fields, registers) into the poll's registers
    scale: npt.NDArray[np.float64] | None
    offset: npt.NDArray[np.float64] | None


class ReadingDecoder:
    """Turns the answers to ``requests`` (registers as ints, bits as bools, in request order)
    into one single-row Arrow array per field."""

    def __init__(self, fields: Sequence[FieldLayout], requests: Sequence[ReadRequest]) -> None:
        self._requests = list(requests)
        # Where each field starts among the poll's registers (or bits), requests concatenated.
        base: dict[int, int] = {}
        words = bits = 0
        for number, request in enumerate(self._requests):
            base[number] = bits if request.bits else words
            if request.bits:
                bits += request.count
            else:
                words += request.count
        starts = {f.name: self._start_of(f, base) for f in fields}
        self._bools = [f.name for f in fields if f.area in BIT_AREAS]
        self._bool_index = np.array([starts[name] for name in self._bools], np.intp)
        self._strings = [(f, starts[f.name]) for f in fields if f.length]
        grouped: dict[tuple[object, ...], list[FieldLayout]] = defaultdict(list)
        for f in fields:
            if f.dtype is not None:
                grouped[(f.dtype, f.byte_order, f.word_order, f.scaled)].append(f)
        self._numbers = [self._group(members, starts) for members in grouped.values()]

    def _start_of(self, field: FieldLayout, base: dict[int, int]) -> int:
        for number, request in enumerate(self._requests):
            end = request.start + request.count
            if request.area == field.area and request.start <= field.address < end:
                return base[number] + field.address - request.start
        raise AssertionError(f"no request reads {field.name}")

    @staticmethod
    def _group(members: list[FieldLayout], starts: dict[str, int]) -> _NumberGroup:
        first = members[0]
        assert first.dtype is not None
        index = np.array([starts[f.name] for f in members], np.intp)[:, None] + np.arange(
            first.size
        )
        scaled = first.scaled
        return _NumberGroup(
            names=[f.name for f in members],
            dtype=first.dtype,
            arrow_type=first.arrow_type,
            byte_order=first.byte_order,
            word_order=first.word_order,
            index=index,
            scale=np.array([1.0 if f.scale is None else f.scale for f in members])
            if scaled
            else None,
            offset=np.array([0.0 if f.offset is None else f.offset for f in members])
            if scaled
            else None,
        )

    def decode(self, answers: Sequence[Sequence[int] | Sequence[bool]]) -> dict[str, pa.Array]:
        """One single-row array per field name, from the answers to the requests."""
        register_parts = [np.zeros(0, np.uint16)]
        bit_parts = [np.zeros(0, np.bool_)]
        for request, answer in zip(self._requests, answers, strict=True):
            if request.bits:
                # A bit read answers whole bytes: the bits past ``count`` are padding.
                bit_parts.append(np.asarray(answer[: request.count], np.bool_))
            else:
                register_parts.append(np.asarray(answer, np.uint16))
        registers = np.concatenate(register_parts)
        columns: dict[str, pa.Array] = {}
        for group in self._numbers:
            values = pa.array(_numbers(registers, group), group.arrow_type)
            for row, name in enumerate(group.names):
                columns[name] = values.slice(row, 1)
        if self._bools:
            flags = pa.array(np.concatenate(bit_parts)[self._bool_index], pa.bool_())
            for row, name in enumerate(self._bools):
                columns[name] = flags.slice(row, 1)
        for field, start in self._strings:
            words = _in_byte_order(registers[start : start + field.size], field.byte_order)
            text = words.astype(">u2").tobytes()[: field.length].rstrip(b"\0")
            columns[field.name] = pa.array([text.decode("utf-8", "replace")], pa.string())
        return columns


def _in_byte_order(words: npt.NDArray[np.uint16], byte_order: str) -> npt.NDArray[np.uint16]:
    """Registers as Modbus orders bytes (high byte first), from ``byte_order``."""
    if byte_order == "little":
        return words.byteswap()
    return words


def _numbers(registers: npt.NDArray[np.uint16], group: _NumberGroup) -> npt.NDArray[np.generic]:
    """The values of a group's fields: their registers put most significant first, read as
    one big-endian number each, then scaled."""
    words = registers[group.index]
    if group.word_order == "little":
        words = words[:, ::-1]
    words = _in_byte_order(words, group.byte_order)
    raw = np.ascontiguousarray(words, ">u2").view(group.dtype)[:, 0]
    values = raw.astype(group.dtype.newbyteorder("="))
    if group.scale is not None and group.offset is not None:
        return values.astype(np.float64) * group.scale + group.offset
    return values
