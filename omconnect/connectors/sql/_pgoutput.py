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
strings NUL-terminated). Each message arrives as one ``bytes``. A change's rows are left in
it, as ``TupleData`` (the payload and where the row starts), because a large transaction is a
million of them and their values are wanted column by column, not row by row:
``tuple_texts`` reads the rows of many changes at once with numpy, one pass per column over
all of them (each row's position moves past the value it reads), and cuts every value out of
the payloads with one Arrow ``take`` into one binary array, no Python per value (a few rows
are parsed in Python: numpy's calls cost more there). ``decode`` reads one message;
``decode_all`` reads a poll's messages, each run of one table's changes as one ``Changes``
(their ops and where their rows start, found with numpy: no Python per change either).
Turning the texts into typed columns is ``_pg_text``'s job.

Measured on a 1,000,000-row UPDATE (``benchmarks/cdc_stream.py``: the decode path alone, the
transaction's messages into envelope batches in polls of 10,000, median of 3 runs on 2
shared CPUs): before, with a Python loop per value building a tuple per row, a frozen
dataclass per message and casts per column, 12.3 s (81,000 changes/s); one message at a
time (``decode``, ``rows_from_texts``), 3.9 s (258,000 changes/s); a poll at once
(``decode_all``, ``rows_of``, what the task calls), 1.3 s (762,000 changes/s). End to end
(``omconnect run --once`` into the topic) the transaction drained in 16.5 s before and 8.9 s
now, as fast as ``pg_recvlogical`` reads it (9.9 s): the server's decoding is the limit.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple, overload

import numpy as np
import pyarrow as pa

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


# Begin, Commit and Change are named tuples: built once per message (three per single-row
# transaction, a million per large one), a tuple costs a third of a frozen dataclass.


class Begin(NamedTuple):
    final_lsn: int
    commit_time_us: int  # microseconds since the Unix epoch
    xid: int


class Commit(NamedTuple):
    commit_lsn: int
    end_lsn: int
    commit_time_us: int


@dataclass(frozen=True)
class TypeInfo:
    oid: int
    schema: str
    name: str


class TupleData(Sequence[Value]):
    """One row of a change message, not parsed: ``payload[at:]`` starts with its column
    count. Indexing parses it (once); ``tuple_texts`` reads many rows without doing so."""

    __slots__ = ("_values", "at", "payload")

    def __init__(self, payload: bytes, at: int) -> None:
        self.payload = payload
        self.at = at
        self._values: tuple[Value, ...] | None = None

    def values(self) -> tuple[Value, ...]:
        if self._values is None:
            self._values, _ = _tuple(memoryview(self.payload), self.at)
        return self._values

    def end(self) -> int:
        """Where the tuple ends in its payload."""
        return _tuple_end(self.payload, self.at)

    def __len__(self) -> int:
        # The parsed values' count, not the header's: a row cut short has no length.
        return len(self.values())

    @overload
    def __getitem__(self, index: int) -> Value: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Value, ...]: ...

    def __getitem__(self, index: int | slice) -> Value | tuple[Value, ...]:
        return self.values()[index]

    def __iter__(self) -> Iterator[Value]:
        return iter(self.values())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TupleData):
            return self.values() == other.values()
        if isinstance(other, tuple):
            return self.values() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a tuple, so not hashable

    def __repr__(self) -> str:
        return f"TupleData({self.values()!r})"


Row = TupleData | tuple[Value, ...]
"""A row of a change: as decoded (``TupleData``) or as plain values."""


class Change(NamedTuple):
    """One row change: ``op`` is ``c`` (insert), ``u`` (update) or ``d`` (delete), as in
    Debezium's events. ``old`` is the replica identity (``old_is_full``: the whole row) or
    None when the server sent no old row; ``new`` is None for a delete."""

    op: str
    relation_oid: int
    old: Row | None
    old_is_full: bool
    new: Row | None


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

# Tuple value kinds.
_TEXT, _NULL, _TOAST = 0x74, 0x6E, 0x75  # t, n, u


def decode(payload: bytes) -> Message:
    """One pgoutput message; None for the kinds omconnect does not act on (``Origin``).

    A change's rows are read when used (``TupleData``); a row cut short raises then.

    Raises:
        ProtocolError: a message that is cut short or not valid pgoutput.
    """
    try:
        kind = payload[0]
        if kind == 0x55:  # U, the most frequent
            oid = _UINT32.unpack_from(payload, 1)[0]
            mark = payload[5]
            if mark == 0x4E:  # N: no old row
                return Change("u", oid, None, False, TupleData(payload, 6))
            if mark not in (0x4B, 0x4F):  # K, O
                raise ProtocolError("an update without a new tuple")
            old = TupleData(payload, 6)
            at = old.end()
            if payload[at] != 0x4E:
                raise ProtocolError("an update without a new tuple")
            return Change("u", oid, old, mark == 0x4F, TupleData(payload, at + 1))
        if kind == 0x49:  # I
            oid = _UINT32.unpack_from(payload, 1)[0]
            if payload[5] != 0x4E:  # N
                raise ProtocolError("an insert without a new tuple")
            return Change("c", oid, None, False, TupleData(payload, 6))
        if kind == 0x44:  # D
            oid = _UINT32.unpack_from(payload, 1)[0]
            if payload[5] not in (0x4B, 0x4F):  # K, O
                raise ProtocolError("a delete without an old tuple")
            old = TupleData(payload, 6)
            old.end()  # a truncated message fails here, not later
            return Change("d", oid, old, payload[5] == 0x4F, None)
        if kind == 0x42:  # B
            final_lsn, time_us, xid = _BEGIN.unpack_from(payload, 1)
            return Begin(final_lsn, time_us + _POSTGRES_EPOCH_US, xid)
        if kind == 0x43:  # C
            _flags, commit_lsn, end_lsn, time_us = _COMMIT.unpack_from(payload, 1)
            return Commit(commit_lsn, end_lsn, time_us + _POSTGRES_EPOCH_US)
        return _decode_other(memoryview(payload))
    except (struct.error, IndexError, UnicodeDecodeError) as error:
        kind_name = chr(payload[0]) if payload else "(empty)"
        raise ProtocolError(
            f"a pgoutput {kind_name!r} message cannot be decoded: {error}"
        ) from None


def _decode_other(data: memoryview) -> Message:
    kind = data[0]
    if kind == 0x52:  # R
        return _relation(data)
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
        if length < 0 or at + 4 + length > len(data):
            raise ProtocolError("a logical decoding message longer than its pgoutput message")
        content = bytes(data[at + 4 : at + 4 + length])
        return LogicalMessage(bool(flags & 1), lsn, prefix, content)
    if kind == 0x4F:  # O: the origin of a replicated transaction (LSN, name), not acted on
        if len(data) < 10 or data[-1] != 0:
            raise ProtocolError("an origin message cut short")
        return None
    raise ProtocolError(f"unknown pgoutput message kind {chr(kind)!r}")


def _relation(data: memoryview) -> Relation:
    oid = _UINT32.unpack_from(data, 1)[0]
    schema, at = _string(data, 5)
    name, at = _string(data, at)
    identity = chr(data[at])
    count = _INT16.unpack_from(data, at + 1)[0]
    if count < 0:
        raise ProtocolError(f"a relation of {count} columns")
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


_PAST_THE_END = "a tuple value runs past the end of its message"


def _tuple(data: memoryview, at: int) -> tuple[tuple[Value, ...], int]:
    """The values of the tuple at ``at`` in ``data`` (which ends where its message ends), and
    where the tuple ends.

    Raises:
        ProtocolError: a tuple that is cut short or not valid pgoutput.
    """
    try:
        count = _INT16.unpack_from(data, at)[0]
        if count < 0:
            raise ProtocolError(f"a tuple of {count} columns")
        at += 2
        values: list[Value] = []
        for _ in range(count):
            kind = data[at]
            if kind == _TEXT:
                length = _INT32.unpack_from(data, at + 1)[0]
                if length < 0 or at + 5 + length > len(data):
                    raise ProtocolError(_PAST_THE_END)
                values.append(bytes(data[at + 5 : at + 5 + length]))
                at += 5 + length
            elif kind == _NULL:
                values.append(None)
                at += 1
            elif kind == _TOAST:
                values.append(UNCHANGED)
                at += 1
            else:
                raise ProtocolError(f"a tuple value of kind {chr(kind)!r} (binary mode is off)")
    except (IndexError, struct.error):
        raise ProtocolError(_PAST_THE_END) from None
    return tuple(values), at


def _tuple_end(payload: bytes, at: int) -> int:
    """Where the tuple at ``at`` ends, its values skipped, not copied.

    Raises:
        ProtocolError: as ``_tuple``.
    """
    try:
        count = _INT16.unpack_from(payload, at)[0]
        if count < 0:
            raise ProtocolError(f"a tuple of {count} columns")
        at += 2
        for _ in range(count):
            kind = payload[at]
            if kind == _TEXT:
                length = _INT32.unpack_from(payload, at + 1)[0]
                if length < 0:
                    raise ProtocolError(_PAST_THE_END)
                at += 5 + length
            elif kind in (_NULL, _TOAST):
                at += 1
            else:
                raise ProtocolError(f"a tuple value of kind {chr(kind)!r} (binary mode is off)")
    except (IndexError, struct.error):
        raise ProtocolError(_PAST_THE_END) from None
    if at > len(payload):
        raise ProtocolError(_PAST_THE_END)
    return at


# -- many messages at once ----------------------------------------------------------------

# A change's op as Debezium names it, by message kind.
_OPS = np.full(256, "", "<U1")
_OPS[[0x49, 0x55, 0x44]] = ["c", "u", "d"]
_NEW, _KEY, _OLD = 0x4E, 0x4B, 0x4F  # N, K, O


@dataclass(frozen=True)
class Changes:
    """Consecutive change messages (inserts, updates, deletes) of one table, read at once by
    ``decode_all``: per change its op and where its rows start in ``buffer``, the messages of a
    poll end to end. ``rows_of`` in ``_cdc_events`` turns their rows into columns.

    Attributes:
        relation_oid: The table's relation OID.
        buffer: The poll's messages end to end (and some padding).
        ops: ``c``, ``u`` or ``d`` per change (a numpy array of one-letter strings).
        old_at: Where the old row (replica identity, or the whole row) starts; -1: none.
        old_is_full: Whether the old row is the whole row (``REPLICA IDENTITY FULL``).
        new_at: Where the new row starts; -1 for a delete.
        starts: Where each change's message starts.
        ends: Where it ends.
    """

    relation_oid: int
    buffer: bytes
    ops: np.ndarray
    old_at: np.ndarray
    old_is_full: np.ndarray
    new_at: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.ops)

    def slice(self, start: int, stop: int | None = None) -> Changes:
        part = slice(start, stop)
        return Changes(
            self.relation_oid,
            self.buffer,
            self.ops[part],
            self.old_at[part],
            self.old_is_full[part],
            self.new_at[part],
            self.starts[part],
            self.ends[part],
        )

    def take(
        self, indices: np.ndarray, ops: np.ndarray, old: np.ndarray, new: np.ndarray
    ) -> Changes:
        """The changes at ``indices`` (repeats allowed) with ``ops``, keeping their old rows
        where ``old`` and their new rows where ``new`` (masks over ``indices``)."""
        return Changes(
            self.relation_oid,
            self.buffer,
            ops,
            np.where(old, self.old_at[indices], -1),
            self.old_is_full[indices] & old,
            np.where(new, self.new_at[indices], -1),
            self.starts[indices],
            self.ends[indices],
        )

    @staticmethod
    def concat(parts: Sequence[Changes]) -> Changes:
        """Changes of one table read from one poll (one ``buffer``), in order."""
        first = parts[0]
        if any(p.buffer is not first.buffer or p.relation_oid != first.relation_oid for p in parts):
            raise ValueError("only changes of one table and one poll are concatenated")
        if len(parts) == 1:
            return first
        return Changes(
            first.relation_oid,
            first.buffer,
            np.concatenate([p.ops for p in parts]),
            np.concatenate([p.old_at for p in parts]),
            np.concatenate([p.old_is_full for p in parts]),
            np.concatenate([p.new_at for p in parts]),
            np.concatenate([p.starts for p in parts]),
            np.concatenate([p.ends for p in parts]),
        )

    def row(self, index: int, old: bool = False) -> tuple[Value, ...] | None:
        """The values of one change's old (or new) row, parsed here (None: no such row)."""
        at = int((self.old_at if old else self.new_at)[index])
        if at < 0:
            return None
        values, _ = _tuple(memoryview(self.buffer)[: int(self.ends[index])], at)
        return values

    def changes(self) -> list[Change]:
        """As ``decode`` would have returned them, one by one."""
        out = []
        for index, op in enumerate(self.ops.tolist()):
            start, end = int(self.starts[index]), int(self.ends[index])
            payload = self.buffer[start:end]
            old, new = int(self.old_at[index]) - start, int(self.new_at[index]) - start
            out.append(
                Change(
                    op,
                    self.relation_oid,
                    TupleData(payload, old) if old >= 0 else None,
                    bool(self.old_is_full[index]),
                    TupleData(payload, new) if new >= 0 else None,
                )
            )
        return out


def decode_all(payloads: Sequence[bytes]) -> list[Message | Changes]:
    """The messages of a poll, in order: each run of consecutive changes of one table as one
    ``Changes`` (read with numpy, no Python per change), any other message as ``decode``
    gives it (those it gives as None are left out).

    Raises:
        ProtocolError: a message that is not valid pgoutput.
    """
    count = len(payloads)
    sizes = np.fromiter(map(len, payloads), np.int64, count)
    if count == 0 or not sizes.all():
        return [m for m in map(decode, payloads) if m is not None]
    ends = np.cumsum(sizes)
    starts = ends - sizes
    buffer = b"".join(payloads) + bytes(16)  # room to read a header past the last message
    data = np.frombuffer(buffer, np.uint8)
    kinds = data[starts]
    change = _OPS[kinds] != ""
    if not change.any():
        return [m for m in map(decode, payloads) if m is not None]
    if (change & (sizes < 8)).any():
        raise ProtocolError("a change message shorter than its header")
    oids = data[starts[:, None] + _LENGTH_BYTES].view(">u4")[:, 0]
    marks = data[starts + 5]
    # Where each change's rows start, for every message of the poll at once (the runs below
    # are slices of these: a single-row transaction is a run of one).
    delete = kinds == 0x44
    update = kinds == 0x55
    keyed = (marks == _KEY) | (marks == _OLD)
    if ((kinds == 0x49) & (marks != _NEW)).any():
        raise ProtocolError("an insert without a new tuple")
    if (update & ~keyed & (marks != _NEW)).any():
        raise ProtocolError("an update without a new tuple")
    if (delete & ~keyed).any():
        raise ProtocolError("a delete without an old tuple")
    has_old = delete | (update & keyed)
    old_at = np.where(has_old, starts + 6, -1)
    new_at = np.where(delete | ~change, -1, starts + 6)
    for index in np.flatnonzero(update & keyed).tolist():  # the new row follows the old
        at = _tuple_end(buffer, int(old_at[index]))
        if at >= ends[index] or buffer[at] != _NEW:
            raise ProtocolError("an update without a new tuple")
        new_at[index] = at + 1
    full = has_old & (marks == _OLD)
    ops = _OPS[kinds]
    # A run of changes starts at a change after anything but a change of the same table.
    first = change.copy()
    first[1:] &= ~change[:-1] | (oids[1:] != oids[:-1])
    points = np.flatnonzero(first | ~change).tolist()
    is_change = change.tolist()
    out: list[Message | Changes] = []
    for number, at in enumerate(points):
        if not is_change[at]:
            message = decode(payloads[at])
            if message is not None:
                out.append(message)
            continue
        run = slice(at, points[number + 1] if number + 1 < len(points) else count)
        out.append(
            Changes(
                int(oids[at]),
                buffer,
                ops[run],
                old_at[run],
                full[run],
                new_at[run],
                starts[run],
                ends[run],
            )
        )
    return out


# -- rows, column by column ---------------------------------------------------------------


@dataclass(frozen=True)
class TupleTexts:
    """The values of many rows, column by column.

    Attributes:
        values: ``len(order) * rows`` texts, column-major: the value of column ``order[k]``
            of row ``r`` at ``k * rows + r``; null for SQL NULL, ``UNCHANGED``, a row that is
            None and a column a row does not have.
        unchanged: ``(columns, rows)``, true where the value was ``UNCHANGED``; None when
            none was.
        missing: true for the rows that are None; None when none is.
    """

    values: pa.BinaryArray | pa.LargeBinaryArray
    unchanged: np.ndarray | None
    missing: np.ndarray | None


# Below this many rows, parsing each in Python costs less than numpy's per-call overhead.
_VECTOR_ROWS = 48
_LENGTH_BYTES = np.arange(1, 5)


def tuple_texts(rows: Sequence[Row | None], columns: int, order: Sequence[int]) -> TupleTexts:
    """The first ``columns`` values of each row (see ``TupleTexts``), ``order`` a permutation
    of ``range(columns)``.

    Raises:
        ProtocolError: a tuple that is not valid pgoutput.
    """
    missing = np.fromiter((row is None for row in rows), np.bool_, len(rows))
    present = [row for row in rows if row is not None] if missing.any() else rows
    try:
        if len(present) >= _VECTOR_ROWS:
            try:
                payloads = [row.payload for row in present]  # type: ignore[union-attr]
                at = np.array([row.at for row in present], np.int64)  # type: ignore[union-attr]
            except AttributeError:  # plain tuples of values
                pass
            else:
                sizes = np.fromiter(map(len, payloads), np.int64, len(payloads))
                ends = np.cumsum(sizes)
                buffer = b"".join(payloads) + bytes(8)
                texts = _texts_at_once(buffer, ends - sizes + at, ends, columns, order)
                return _spread(texts, missing, columns) if len(present) < len(rows) else texts
        parsed = [
            None if row is None else row.values() if isinstance(row, TupleData) else row
            for row in rows
        ]
        return _texts_of_values(parsed, columns, order, missing)
    except (IndexError, struct.error):
        raise ProtocolError(_PAST_THE_END) from None


def changes_texts(changes: Changes, old: bool, columns: int, order: Sequence[int]) -> TupleTexts:
    """``tuple_texts`` of the old (or new) rows of ``changes`` (None where a change has none)."""
    at = changes.old_at if old else changes.new_at
    missing = at < 0
    present = np.flatnonzero(~missing)
    try:
        if len(present) < _VECTOR_ROWS:
            view = memoryview(changes.buffer)
            parsed: list[tuple[Value, ...] | None] = [None] * len(at)
            for index in present.tolist():
                parsed[index], _ = _tuple(view[: int(changes.ends[index])], int(at[index]))
            return _texts_of_values(parsed, columns, order, missing)
        texts = _texts_at_once(changes.buffer, at[present], changes.ends[present], columns, order)
    except (IndexError, struct.error):
        raise ProtocolError(_PAST_THE_END) from None
    return _spread(texts, missing, columns) if len(present) < len(at) else texts


def _texts_of_values(
    rows: Sequence[tuple[Value, ...] | TupleData | None],
    columns: int,
    order: Sequence[int],
    missing: np.ndarray,
) -> TupleTexts:
    """``TupleTexts`` of rows parsed already (a few rows: Python costs less than numpy)."""
    count = len(rows)
    unchanged: np.ndarray | None = None
    texts: list[Value] = []
    for index in order:
        for number, values in enumerate(rows):
            value = None if values is None or index >= len(values) else values[index]
            if value is UNCHANGED:
                if unchanged is None:
                    unchanged = np.zeros((columns, count), np.bool_)
                unchanged[index, number] = True
                value = None
            texts.append(value)
    return TupleTexts(pa.array(texts, pa.binary()), unchanged, missing if missing.any() else None)


def _texts_at_once(
    buffer: bytes, position: np.ndarray, ends: np.ndarray, columns: int, order: Sequence[int]
) -> TupleTexts:
    """``TupleTexts`` of the tuples starting at ``position`` in ``buffer`` (each within its
    message, which ends at ``ends``), read with numpy: a pass per column over every row."""
    count = len(position)
    data = np.frombuffer(buffer, np.uint8)
    widths = data[position].astype(np.int64) << 8 | data[position + 1]
    if (widths >= 0x8000).any():  # an Int16 below zero
        raise ProtocolError("a tuple of a negative number of columns")
    position = position + 2
    starts = np.empty((columns, count), np.int64)
    lengths = np.empty((columns, count), np.int64)
    kinds = np.empty((columns, count), np.uint8)
    short = bool((widths < columns).any())
    for index in range(columns):
        kind = data[position]
        if short:  # a row with fewer columns: null in the others
            kind = np.where(widths > index, kind, _NULL).astype(np.uint8)
        text = kind == _TEXT
        length = data[position[:, None] + _LENGTH_BYTES].view(">i4")[:, 0]
        length = np.where(text, length, 0)
        kinds[index] = kind
        lengths[index] = length
        # A null or unchanged value: an empty text just after its kind byte.
        starts[index] = position + np.where(text, 5, 1)
        step = np.where(text, 5 + length, 1)
        position = position + (np.where(widths > index, step, 0) if short else step)
    # Checked once at the end: a position only grows (a read past the buffer is IndexError).
    known = (kinds == _TEXT) | (kinds == _NULL) | (kinds == _TOAST)
    if not known.all():
        bad = int(kinds[~known][0])
        raise ProtocolError(f"a tuple value of kind {chr(bad)!r} (binary mode is off)")
    if (lengths < 0).any() or (position > ends).any():
        raise ProtocolError(_PAST_THE_END)
    # The buffer as one binary array whose elements are, in turn, the bytes between two
    # values and a value; ``take`` of the values' elements copies them, column by column.
    flat_starts = starts.T.ravel()  # row by row, as they lie in the buffer
    flat_ends = flat_starts + lengths.T.ravel()
    flat_text = kinds.T.ravel() == _TEXT
    rank: np.ndarray | None = None
    if count > 1 and (np.diff(flat_starts) < 0).any():  # rows not in buffer order
        by_place = np.argsort(flat_starts, kind="stable")
        flat_starts, flat_ends, flat_text = (
            flat_starts[by_place],
            flat_ends[by_place],
            flat_text[by_place],
        )
        rank = np.empty_like(by_place)
        rank[by_place] = np.arange(len(by_place))
    values = len(flat_starts)
    bounds = np.empty(2 * values + 2, np.int64)
    bounds[0], bounds[-1] = 0, len(buffer)
    bounds[1:-1:2] = flat_starts
    bounds[2:-1:2] = flat_ends
    valid = np.ones(2 * values + 1, np.bool_)
    valid[1::2] = flat_text
    large = len(buffer) > np.iinfo(np.int32).max
    whole = pa.Array.from_buffers(
        pa.large_binary() if large else pa.binary(),
        len(valid),
        [
            pa.py_buffer(np.packbits(valid, bitorder="little")),
            pa.py_buffer(bounds if large else bounds.astype(np.int32)),
            pa.py_buffer(buffer),
        ],
    )
    element = np.arange(count)[None, :] * columns + np.asarray(order)[:, None]
    if rank is not None:
        element = rank[element]
    texts = whole.take(pa.array((2 * element + 1).ravel()))
    toasted = kinds == _TOAST
    return TupleTexts(texts, toasted if toasted.any() else None, None)


def _spread(texts: TupleTexts, missing: np.ndarray, columns: int) -> TupleTexts:
    """``texts`` of the rows present, spread over all rows (null where ``missing``)."""
    count = len(missing)
    rank = np.maximum(np.cumsum(~missing) - 1, 0)  # each row's place among those present
    picks = np.arange(columns)[:, None] * int(count - missing.sum()) + rank
    values = texts.values.take(pa.array(picks.ravel(), mask=np.tile(missing, columns)))
    unchanged = None
    if texts.unchanged is not None:
        unchanged = np.zeros((columns, count), np.bool_)
        unchanged[:, ~missing] = texts.unchanged
    return TupleTexts(values, unchanged, missing)


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
    "Changes",
    "Commit",
    "LogicalMessage",
    "Message",
    "ProtocolError",
    "Relation",
    "RelationColumn",
    "Row",
    "Truncate",
    "TupleData",
    "TupleTexts",
    "TypeInfo",
    "Value",
    "changes_texts",
    "decode",
    "decode_all",
    "format_lsn",
    "parse_lsn",
    "tuple_texts",
]
