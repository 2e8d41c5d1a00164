"""pgoutput, PostgreSQL's built-in logical decoding output plugin: its messages, decoded.

With protocol version 1 and no streaming, a transaction arrives whole, after its commit:
``Begin``, then for each table a ``Relation`` message before its first change (and again
after the table's DDL), ``Type`` messages for non-built-in types, the changes (``Insert``,
``Update``, ``Delete``, ``Truncate``) and ``Commit``. Row values come in the text output form
of their type, one of: a text value, SQL NULL, or ``UNCHANGED``, a TOASTed value the update
did not touch and the server did not send. An ``Update`` or ``Delete`` carries the old row's
replica identity columns (``K``) or, under ``REPLICA IDENTITY FULL``, the whole old row
(``O``).

The layouts are PostgreSQL's "Logical Replication Message Formats" (integers big-endian,
strings NUL-terminated). Decoding is per message (each arrives as one ``bytes``); turning the
values of many rows into typed columns is ``_pg_text``'s job, column by column.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

# An unchanged TOASTed value: the server did not send it.
UNCHANGED: Final = object()

# Replica identity of a relation: default (primary key), nothing, full row, an index.
IDENTITY_FULL = "f"

Value = bytes | None | object
"""One column's value as sent: its text (bytes), None for SQL NULL, or ``UNCHANGED``."""


@dataclass(frozen=True)
class RelationColumn:
    name: str
    type_oid: int
    type_modifier: int
    in_key: bool


@dataclass(frozen=True)
class Relation:
    """A table as the stream describes it (sent before its first change)."""

    oid: int
    schema: str
    name: str
    replica_identity: str
    columns: tuple[RelationColumn, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time_us: int  # microseconds since the Unix epoch
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time_us: int


@dataclass(frozen=True)
class TypeInfo:
    oid: int
    schema: str
    name: str


@dataclass(frozen=True)
class Change:
    """One row change: ``op`` is ``c`` (insert), ``u`` (update) or ``d`` (delete), as in
    Debezium's events. ``old`` is the replica identity (``old_is_full``: the whole row) or
    None when the server sent no old row; ``new`` is None for a delete."""

    op: str
    relation_oid: int
    old: tuple[Value, ...] | None
    old_is_full: bool
    new: tuple[Value, ...] | None


@dataclass(frozen=True)
class Truncate:
    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class LogicalMessage:
    """A ``pg_logical_emit_message`` (transactional or not)."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Message = Begin | Commit | Relation | TypeInfo | Change | Truncate | LogicalMessage | None


class ProtocolError(ValueError):
    """A message that is not valid pgoutput (a bug or a foreign plugin on the slot)."""


# PostgreSQL's epoch (2000-01-01) in microseconds after the Unix epoch.
_POSTGRES_EPOCH_US: Final = 946_684_800_000_000

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_BEGIN = struct.Struct(">QqI")
_COMMIT = struct.Struct(">bQQq")
_MESSAGE_HEAD = struct.Struct(">bQ")


def decode(payload: bytes) -> Message:
    """One pgoutput message; None for the kinds omconnect does not act on (``Origin``)."""
    try:
        return _decode(memoryview(payload))
    except (struct.error, IndexError, UnicodeDecodeError) as error:
        kind = chr(payload[0]) if payload else "(empty)"
        raise ProtocolError(f"a pgoutput {kind!r} message cannot be decoded: {error}") from None


def _decode(data: memoryview) -> Message:
    kind = data[0]
    if kind == 0x42:  # B
        final_lsn, time_us, xid = _BEGIN.unpack_from(data, 1)
        return Begin(final_lsn, time_us + _POSTGRES_EPOCH_US, xid)
    if kind == 0x43:  # C
        _flags, commit_lsn, end_lsn, time_us = _COMMIT.unpack_from(data, 1)
        return Commit(commit_lsn, end_lsn, time_us + _POSTGRES_EPOCH_US)
    if kind == 0x52:  # R
        return _relation(data)
    if kind == 0x49:  # I
        oid = _UINT32.unpack_from(data, 1)[0]
        if data[5] != 0x4E:  # N
            raise ProtocolError("an insert without a new tuple")
        new, _ = _tuple(data, 6)
        return Change("c", oid, None, False, new)
    if kind == 0x55:  # U
        oid = _UINT32.unpack_from(data, 1)[0]
        at = 5
        old: tuple[Value, ...] | None = None
        full = False
        if data[at] in (0x4B, 0x4F):  # K, O
            full = data[at] == 0x4F
            old, at = _tuple(data, at + 1)
        if data[at] != 0x4E:
            raise ProtocolError("an update without a new tuple")
        new, _ = _tuple(data, at + 1)
        return Change("u", oid, old, full, new)
    if kind == 0x44:  # D
        oid = _UINT32.unpack_from(data, 1)[0]
        full = data[5] == 0x4F
        old, _ = _tuple(data, 6)
        return Change("d", oid, old, full, None)
    if kind == 0x54:  # T
        count = _INT32.unpack_from(data, 1)[0]
        options = data[5]
        oids = struct.unpack_from(f">{count}I", data, 6)
        return Truncate(tuple(oids), bool(options & 1), bool(options & 2))
    if kind == 0x59:  # Y
        oid = _UINT32.unpack_from(data, 1)[0]
        schema, at = _string(data, 5)
        name, _ = _string(data, at)
        return TypeInfo(oid, schema, name)
    if kind == 0x4D:  # M
        flags, lsn = _MESSAGE_HEAD.unpack_from(data, 1)
        prefix, at = _string(data, 1 + _MESSAGE_HEAD.size)
        length = _INT32.unpack_from(data, at)[0]
        content = bytes(data[at + 4 : at + 4 + length])
        return LogicalMessage(bool(flags & 1), lsn, prefix, content)
    if kind == 0x4F:  # O: the origin of a replicated transaction
        return None
    raise ProtocolError(f"unknown pgoutput message kind {chr(kind)!r}")


def _relation(data: memoryview) -> Relation:
    oid = _UINT32.unpack_from(data, 1)[0]
    schema, at = _string(data, 5)
    name, at = _string(data, at)
    identity = chr(data[at])
    count = _INT16.unpack_from(data, at + 1)[0]
    at += 3
    columns = []
    for _ in range(count):
        flags = data[at]
        column, at = _string(data, at + 1)
        type_oid, modifier = struct.unpack_from(">Ii", data, at)
        at += 8
        columns.append(RelationColumn(column, type_oid, modifier, bool(flags & 1)))
    return Relation(oid, schema, name, identity, tuple(columns))


def _string(data: memoryview, at: int) -> tuple[str, int]:
    end = at
    while data[end]:
        end += 1
    return bytes(data[at:end]).decode("utf-8"), end + 1


def _tuple(data: memoryview, at: int) -> tuple[tuple[Value, ...], int]:
    count = _INT16.unpack_from(data, at)[0]
    at += 2
    values: list[Value] = []
    for _ in range(count):
        kind = data[at]
        if kind == 0x74:  # t: text
            length = _INT32.unpack_from(data, at + 1)[0]
            values.append(bytes(data[at + 5 : at + 5 + length]))
            at += 5 + length
        elif kind == 0x6E:  # n: null
            values.append(None)
            at += 1
        elif kind == 0x75:  # u: unchanged TOASTed value
            values.append(UNCHANGED)
            at += 1
        else:
            raise ProtocolError(f"a tuple value of kind {chr(kind)!r} (binary mode is off)")
    return tuple(values), at


def format_lsn(lsn: int) -> str:
    """An LSN as PostgreSQL writes it: ``16/B374D848``."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


__all__ = [
    "IDENTITY_FULL",
    "UNCHANGED",
    "Begin",
    "Change",
    "Commit",
    "LogicalMessage",
    "Message",
    "ProtocolError",
    "Relation",
    "RelationColumn",
    "Truncate",
    "TypeInfo",
    "Value",
    "decode",
    "format_lsn",
    "parse_lsn",
]
