"""``_pgoutput`` against PostgreSQL's "Logical Replication Message Formats" (protocol version 1).

Each message is built here byte by byte with ``struct`` from the documented layouts (integers
big-endian, strings NUL-terminated), not from the decoder's code, and its decoding compared with
what the message holds: one by one (``decode``) and a poll at once (``decode_all``), the rows'
values column by column on both paths (numpy for many rows, Python for a few: ``tuple_texts``,
``changes_texts``), and truncated or corrupt messages, which must raise ``ProtocolError``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omconnect.connectors.sql import _pgoutput as pgoutput
from omconnect.connectors.sql._pgoutput import (
    UNCHANGED,
    Begin,
    Change,
    Changes,
    Commit,
    LogicalMessage,
    ProtocolError,
    Relation,
    RelationColumn,
    Truncate,
    TupleData,
    TupleTexts,
    TypeInfo,
    Value,
    changes_texts,
    decode,
    decode_all,
    format_lsn,
    parse_lsn,
    tuple_texts,
)

# PostgreSQL's epoch, 2000-01-01 00:00 UTC, in microseconds after the Unix epoch.
POSTGRES_EPOCH_US = 946_684_800_000_000

# -- the documented layouts ---------------------------------------------------------------


def cstring(text: str) -> bytes:
    return text.encode() + b"\0"


def tuple_data(values: Sequence[Value]) -> bytes:
    """TupleData: Int16 count, then per column ``n`` (null), ``u`` (unchanged TOASTed value)
    or ``t`` with an Int32 length and the value's text."""
    parts = [struct.pack(">h", len(values))]
    for value in values:
        if value is None:
            parts.append(b"n")
        elif value is UNCHANGED:
            parts.append(b"u")
        else:
            assert isinstance(value, bytes)
            parts.append(b"t" + struct.pack(">i", len(value)) + value)
    return b"".join(parts)


def begin(final_lsn: int, commit_time: int, xid: int) -> bytes:
    """Begin: Int64 final LSN, Int64 commit time (µs since 2000-01-01), Int32 xid."""
    return (
        b"B"
        + struct.pack(">Q", final_lsn)
        + struct.pack(">q", commit_time)
        + struct.pack(">I", xid)
    )


def commit(commit_lsn: int, end_lsn: int, commit_time: int) -> bytes:
    """Commit: Int8 flags (unused, 0), Int64 commit LSN, Int64 end LSN, Int64 commit time."""
    return b"C" + bytes([0]) + struct.pack(">QQq", commit_lsn, end_lsn, commit_time)


def origin(lsn: int, name: str) -> bytes:
    """Origin: Int64 the commit's LSN on the origin server, String the origin's name."""
    return b"O" + struct.pack(">Q", lsn) + cstring(name)


def relation(
    oid: int, schema: str, name: str, identity: str, columns: Sequence[tuple[int, str, int, int]]
) -> bytes:
    """Relation: Int32 OID, String namespace, String name, Int8 replica identity, Int16 column
    count, then per column Int8 flags (1: part of the key), String name, Int32 type OID, Int32
    type modifier."""
    head = b"R" + struct.pack(">I", oid) + cstring(schema) + cstring(name)
    head += identity.encode() + struct.pack(">h", len(columns))
    for flags, column, type_oid, modifier in columns:
        head += bytes([flags]) + cstring(column) + struct.pack(">Ii", type_oid, modifier)
    return head


def type_message(oid: int, schema: str, name: str) -> bytes:
    """Type: Int32 OID, String namespace, String name."""
    return b"Y" + struct.pack(">I", oid) + cstring(schema) + cstring(name)


def insert(oid: int, new: Sequence[Value]) -> bytes:
    """Insert: Int32 relation OID, Byte1 ``N``, TupleData."""
    return b"I" + struct.pack(">I", oid) + b"N" + tuple_data(new)


def update(
    oid: int, new: Sequence[Value], old: Sequence[Value] | None = None, mark: bytes = b"K"
) -> bytes:
    """Update: Int32 relation OID, optionally ``K`` (the old key) or ``O`` (the whole old row)
    and its TupleData, then ``N`` and the new row's TupleData."""
    before = b"" if old is None else mark + tuple_data(old)
    return b"U" + struct.pack(">I", oid) + before + b"N" + tuple_data(new)


def delete(oid: int, old: Sequence[Value], mark: bytes = b"K") -> bytes:
    """Delete: Int32 relation OID, ``K`` or ``O``, TupleData."""
    return b"D" + struct.pack(">I", oid) + mark + tuple_data(old)


def truncate(oids: Sequence[int], options: int) -> bytes:
    """Truncate: Int32 relation count, Int8 options (1: CASCADE, 2: RESTART IDENTITY), Int32
    OID per relation."""
    return (
        b"T" + struct.pack(">iB", len(oids), options) + b"".join(struct.pack(">I", o) for o in oids)
    )


def message(transactional: bool, lsn: int, prefix: str, content: bytes) -> bytes:
    """Message: Int8 flags (1: transactional), Int64 LSN, String prefix, Int32 length,
    the content."""
    return (
        b"M"
        + struct.pack(">BQ", int(transactional), lsn)
        + cstring(prefix)
        + struct.pack(">i", len(content))
        + content
    )


def materialized(decoded: Any) -> Any:
    """``decoded`` with every row read (a change's rows are read when used)."""
    if isinstance(decoded, Change):
        for row in (decoded.old, decoded.new):
            if row is not None:
                len(row)
                tuple(row)
    if isinstance(decoded, Changes):
        for index in range(len(decoded)):
            decoded.row(index, old=True)
            decoded.row(index)
        for change in decoded.changes():
            materialized(change)
    return decoded


# -- one message of each kind -------------------------------------------------------------


def test_begin() -> None:
    payload = begin(0x16_B374D848, 777_000_123, 0xFFFF_FFFE)
    assert decode(payload) == Begin(0x16_B374D848, POSTGRES_EPOCH_US + 777_000_123, 0xFFFF_FFFE)


def test_begin_before_postgres_epoch() -> None:
    assert decode(begin(1, -5, 7)) == Begin(1, POSTGRES_EPOCH_US - 5, 7)


def test_commit() -> None:
    payload = commit(0x10, 0x11, 123)
    assert decode(payload) == Commit(0x10, 0x11, POSTGRES_EPOCH_US + 123)


def test_origin_is_left_out() -> None:
    payload = origin(0x2A, "upstream")
    assert decode(payload) is None
    assert decode_all([payload, payload]) == []


@pytest.mark.parametrize("identity", ["d", "n", "f", "i"])
def test_relation(identity: str) -> None:
    columns = [(1, "id", 23, -1), (0, "prix €", 1700, (10 << 16 | 2) + 4), (1, "at", 1184, -1)]
    payload = relation(16384, "sales", "ördersï", identity, columns)
    assert decode(payload) == Relation(
        16384,
        "sales",
        "ördersï",
        identity,
        (
            RelationColumn("id", 23, -1, True),
            RelationColumn("prix €", 1700, (10 << 16 | 2) + 4, False),
            RelationColumn("at", 1184, -1, True),
        ),
    )


def test_relation_without_columns() -> None:
    assert decode(relation(5, "public", "empty", "d", [])) == Relation(
        5, "public", "empty", "d", ()
    )


def test_type() -> None:
    assert decode(type_message(90210, "public", "mood")) == TypeInfo(90210, "public", "mood")


VALUES: tuple[Value, ...] = (b"42", None, UNCHANGED, b"", "zoë ☃ 𝄞".encode())


def test_insert() -> None:
    decoded = decode(insert(16384, VALUES))
    assert decoded == Change("c", 16384, None, False, VALUES)
    assert isinstance(decoded, Change) and decoded.new is not None
    assert len(decoded.new) == len(VALUES)
    assert decoded.new[4] == "zoë ☃ 𝄞".encode()
    assert decoded.new[1:3] == (None, UNCHANGED)


def test_update_without_old_row() -> None:
    assert decode(update(7, VALUES)) == Change("u", 7, None, False, VALUES)


def test_update_with_old_key() -> None:
    old = (b"41", None, None, None, None)
    assert decode(update(7, VALUES, old, b"K")) == Change("u", 7, old, False, VALUES)


def test_update_with_whole_old_row() -> None:
    old = (b"41", b"x", b"y", None, b"")
    assert decode(update(7, VALUES, old, b"O")) == Change("u", 7, old, True, VALUES)


@pytest.mark.parametrize(("mark", "full"), [(b"K", False), (b"O", True)])
def test_delete(mark: bytes, full: bool) -> None:
    old = (b"41", None, b"text", None, None)
    assert decode(delete(7, old, mark)) == Change("d", 7, old, full, None)


@pytest.mark.parametrize(
    ("options", "cascade", "restart"),
    [(0, False, False), (1, True, False), (2, False, True), (3, True, True)],
)
def test_truncate(options: int, cascade: bool, restart: bool) -> None:
    payload = truncate([16384, 0xFFFF_FFF0], options)
    assert decode(payload) == Truncate((16384, 0xFFFF_FFF0), cascade, restart)


@pytest.mark.parametrize("transactional", [True, False])
def test_logical_message(transactional: bool) -> None:
    content = b"\x00binary\xffcontent"
    payload = message(transactional, 0x1234, "omconnect", content)
    assert decode(payload) == LogicalMessage(transactional, 0x1234, "omconnect", content)


def test_empty_logical_message() -> None:
    assert decode(message(False, 1, "", b"")) == LogicalMessage(False, 1, "", b"")


def test_a_transaction_at_once() -> None:
    """A poll's runs of one table's changes become one ``Changes`` each, other messages stay."""
    payloads = [
        begin(100, 5, 9),
        relation(1, "public", "a", "d", [(1, "id", 23, -1)]),
        insert(1, [b"1"]),
        insert(1, [b"2"]),
        update(2, [b"3"]),
        message(True, 90, "p", b"c"),
        delete(2, [b"3"]),
        delete(2, [b"4"], b"O"),
        origin(3, "o"),
        truncate([1, 2], 1),
        commit(100, 120, 5),
    ]
    decoded = decode_all(payloads)
    kinds = [type(m).__name__ for m in decoded]
    assert kinds == [
        "Begin",
        "Relation",
        "Changes",
        "Changes",
        "LogicalMessage",
        "Changes",
        "Truncate",
        "Commit",
    ]
    first, second, third = (m for m in decoded if isinstance(m, Changes))
    assert (first.relation_oid, first.ops.tolist()) == (1, ["c", "c"])
    assert (second.relation_oid, second.ops.tolist()) == (2, ["u"])
    assert (third.relation_oid, third.ops.tolist()) == (2, ["d", "d"])
    assert third.old_is_full.tolist() == [False, True]
    assert third.row(1, old=True) == (b"4",)
    assert third.row(1) is None


def test_lsn_text() -> None:
    assert format_lsn(0x16_B374D848) == "16/B374D848"
    assert parse_lsn("16/B374D848") == 0x16_B374D848
    assert parse_lsn(format_lsn(0)) == 0


# -- random polls: one by one and at once -------------------------------------------------

TABLES = (16384, 16390, 0xFFFF_FFFE)

texts = st.one_of(
    st.binary(max_size=10),
    st.text(max_size=6).map(str.encode),  # multi-byte UTF-8 too
    st.just(b""),
)
values: st.SearchStrategy[Value] = st.one_of(st.none(), st.just(UNCHANGED), texts)
rows = st.lists(values, max_size=6).map(tuple)
lsns = st.integers(0, 2**64 - 1)
times = st.integers(-(2**62), 2**62)


@st.composite
def changes(
    draw: st.DrawFn, oids: st.SearchStrategy[int] = st.sampled_from(TABLES)
) -> tuple[bytes, Any]:
    """A change message of a table of ``oids`` and the change it says."""
    oid = draw(oids)
    kind = draw(
        st.sampled_from(["insert", "update", "update K", "update O", "delete K", "delete O"])
    )
    new, old = draw(rows), draw(rows)
    if kind == "insert":
        return insert(oid, new), Change("c", oid, None, False, new)
    if kind == "update":
        return update(oid, new), Change("u", oid, None, False, new)
    mark = kind[-1].encode()
    if kind.startswith("update"):
        return update(oid, new, old, mark), Change("u", oid, old, mark == b"O", new)
    return delete(oid, old, mark), Change("d", oid, old, mark == b"O", None)


names = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=8)
others = st.one_of(
    st.builds(
        lambda lsn, t, x: (begin(lsn, t, x), Begin(lsn, t + POSTGRES_EPOCH_US, x)),
        lsns,
        times,
        st.integers(0, 2**32 - 1),
    ),
    st.builds(
        lambda a, b, t: (commit(a, b, t), Commit(a, b, t + POSTGRES_EPOCH_US)), lsns, lsns, times
    ),
    st.builds(
        lambda oid, name: (
            relation(oid, "public", name, "d", [(1, "id", 23, -1), (0, name, 25, -1)]),
            Relation(
                oid,
                "public",
                name,
                "d",
                (RelationColumn("id", 23, -1, True), RelationColumn(name, 25, -1, False)),
            ),
        ),
        st.sampled_from(TABLES),
        names,
    ),
    st.builds(
        lambda oid, n: (type_message(oid, "s", n), TypeInfo(oid, "s", n)),
        st.integers(0, 2**32 - 1),
        names,
    ),
    st.builds(
        lambda oids, o: (truncate(oids, o), Truncate(tuple(oids), bool(o & 1), bool(o & 2))),
        st.lists(st.sampled_from(TABLES), max_size=3),
        st.integers(0, 3),
    ),
    st.builds(
        lambda tr, lsn, p, c: (message(tr, lsn, p, c), LogicalMessage(tr, lsn, p, c)),
        st.booleans(),
        lsns,
        names,
        st.binary(max_size=8),
    ),
    st.builds(lambda lsn, n: (origin(lsn, n), None), lsns, names),
)
# Mostly changes, so that runs of one table's changes are long.
polls = st.lists(st.one_of(changes(), changes(), changes(), others), max_size=60)


def at_once(payloads: Sequence[bytes]) -> list[Any]:
    """``decode_all``'s messages, each ``Changes`` as its changes."""
    out: list[Any] = []
    for decoded in decode_all(payloads):
        out.extend(decoded.changes() if isinstance(decoded, Changes) else [decoded])
    return out


@settings(max_examples=300, deadline=None)
@given(polls)
def test_one_by_one_and_at_once_agree(poll: list[tuple[bytes, Any]]) -> None:
    payloads = [payload for payload, _ in poll]
    expected = [said for _, said in poll if said is not None]
    one_by_one = [m for m in map(decode, payloads) if m is not None]
    assert one_by_one == expected
    assert at_once(payloads) == expected
    runs = [m for m in decode_all(payloads) if isinstance(m, Changes)]
    for run in runs:  # Changes.row reads the same rows as the changes it holds
        for index, change in enumerate(run.changes()):
            assert run.row(index, old=True) == (None if change.old is None else tuple(change.old))
            assert run.row(index) == (None if change.new is None else tuple(change.new))


# -- rows column by column: the numpy path and the Python path ----------------------------

VECTOR_ROWS = pgoutput._VECTOR_ROWS  # at this many rows present, tuple_texts uses numpy


def expected_texts(
    rows: Sequence[Sequence[Value] | None], columns: int, order: Sequence[int]
) -> tuple[Any, ...]:
    """What ``TupleTexts`` of ``rows`` holds, worked out from the values themselves."""
    texts = []
    for column in order:
        for row in rows:
            value = None if row is None or column >= len(row) else row[column]
            texts.append(None if value is UNCHANGED else value)
    unchanged = [
        [row is not None and column < len(row) and row[column] is UNCHANGED for row in rows]
        for column in range(columns)
    ]
    missing = [row is None for row in rows]
    return (
        texts,
        unchanged if any(map(any, unchanged)) else None,
        missing if any(missing) else None,
    )


def as_lists(texts: TupleTexts) -> tuple[Any, ...]:
    return (
        texts.values.to_pylist(),
        None if texts.unchanged is None else texts.unchanged.tolist(),
        None if texts.missing is None else texts.missing.tolist(),
    )


def in_messages(
    rows: Sequence[Sequence[Value] | None], prefixes: Sequence[Sequence[Value]]
) -> list[TupleData | None]:
    """Each row as the new row of an update message whose old row is the prefix (so that rows
    start at different places of their messages)."""
    out: list[TupleData | None] = []
    for row, prefix in zip(rows, prefixes, strict=True):
        if row is None:
            out.append(None)
            continue
        decoded = decode(update(1, row, prefix or None, b"O"))
        assert isinstance(decoded, Change) and isinstance(decoded.new, TupleData)
        out.append(decoded.new)
    return out


row_counts = st.sampled_from(
    [0, 1, 2, VECTOR_ROWS - 1, VECTOR_ROWS, VECTOR_ROWS + 1, 2 * VECTOR_ROWS + 5]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), row_counts, st.integers(1, 6))
def test_tuple_texts_paths_agree(data: st.DataObject, count: int, columns: int) -> None:
    """Rows of any column counts (fewer or more than ``columns``), nulls, unchanged values, empty
    and multi-byte texts, some rows None: the numpy path and the Python path give the values."""
    some_missing = data.draw(st.booleans())
    row = st.one_of(st.none(), rows) if some_missing else rows
    given_rows = data.draw(st.lists(row, min_size=count, max_size=count))
    prefixes = data.draw(st.lists(rows, min_size=count, max_size=count))
    order = data.draw(st.permutations(range(columns)))
    expected = expected_texts(given_rows, columns, order)
    decoded = in_messages(given_rows, prefixes)
    present = sum(r is not None for r in given_rows)
    with mock.patch.object(pgoutput, "_texts_at_once", wraps=pgoutput._texts_at_once) as numpy_path:
        from_messages = tuple_texts(decoded, columns, order)
    assert numpy_path.called == (present >= VECTOR_ROWS)
    plain = [None if r is None else tuple(r) for r in decoded]  # plain values: the Python path
    with mock.patch.object(pgoutput, "_texts_at_once", wraps=pgoutput._texts_at_once) as numpy_path:
        from_values = tuple_texts(plain, columns, order)
    assert not numpy_path.called
    assert as_lists(from_messages) == expected
    assert as_lists(from_values) == expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), row_counts, st.integers(1, 6))
def test_changes_texts_paths_agree(data: st.DataObject, count: int, columns: int) -> None:
    """``changes_texts`` of a poll's run of changes, old rows and new rows, either path."""
    poll = data.draw(st.lists(changes(st.just(TABLES[0])), min_size=count, max_size=count))
    if not poll:
        return
    order = data.draw(st.permutations(range(columns)))
    (run,) = decode_all([payload for payload, _ in poll])
    assert isinstance(run, Changes)
    for old in (False, True):
        said_rows = [said.old if old else said.new for _, said in poll]
        expected = expected_texts(said_rows, columns, order)
        present = sum(r is not None for r in said_rows)
        with mock.patch.object(
            pgoutput, "_texts_at_once", wraps=pgoutput._texts_at_once
        ) as numpy_path:
            texts = changes_texts(run, old, columns, order)
        assert numpy_path.called == (present >= VECTOR_ROWS)
        assert as_lists(texts) == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.integers(1, 3 * VECTOR_ROWS), st.integers(1, 5))
def test_changes_taken_with_repeats(data: st.DataObject, count: int, columns: int) -> None:
    """``Changes.take`` (as ``key_changes`` splits an update) may repeat a change and keep both
    its rows; either path reads them."""
    rows_given = data.draw(st.lists(rows, min_size=count, max_size=count))
    olds = data.draw(st.lists(rows, min_size=count, max_size=count))
    payloads = [update(5, new, old, b"O") for new, old in zip(rows_given, olds, strict=True)]
    (run,) = decode_all(payloads)
    assert isinstance(run, Changes)
    indices = sorted(data.draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=2 * count)))
    keep_old = data.draw(st.lists(st.booleans(), min_size=len(indices), max_size=len(indices)))
    keep_new = data.draw(st.lists(st.booleans(), min_size=len(indices), max_size=len(indices)))
    taken = run.take(np.array(indices), run.ops[indices], np.array(keep_old), np.array(keep_new))
    order = list(range(columns))
    for old, kept, source in ((True, keep_old, olds), (False, keep_new, rows_given)):
        said = [source[i] if keep else None for i, keep in zip(indices, kept, strict=True)]
        assert as_lists(changes_texts(taken, old, columns, order)) == expected_texts(
            said, columns, order
        )


# -- truncated and corrupt messages -------------------------------------------------------

WHOLE = [
    begin(0x10, 1, 2),
    commit(0x10, 0x20, 3),
    origin(0x10, "upstream"),
    relation(1, "public", "t", "d", [(1, "id", 23, -1), (0, "name", 25, -1)]),
    type_message(90210, "public", "mood"),
    insert(1, VALUES),
    update(1, VALUES),
    update(1, VALUES, (b"1", None), b"K"),
    update(1, VALUES, VALUES, b"O"),
    delete(1, (b"1", None, UNCHANGED), b"K"),
    delete(1, VALUES, b"O"),
    truncate([1, 2], 3),
    message(True, 5, "omconnect", b"content"),
    message(False, 5, "omconnect", b""),
]


def assert_protocol_error_one_by_one(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        materialized(decode(payload))


def assert_protocol_error_at_once(payload: bytes, many: bool) -> None:
    """``decode_all`` of a poll holding ``payload`` among valid inserts (enough of them for the
    numpy path with ``many``) raises, or reading its rows does."""
    valid = insert(1, VALUES)
    poll = [valid] * (VECTOR_ROWS if many else 1) + [payload] + [valid]
    with pytest.raises(ProtocolError):
        for decoded in decode_all(poll):
            materialized(decoded)
            if isinstance(decoded, Changes):
                for old in (False, True):
                    changes_texts(decoded, old, len(VALUES), range(len(VALUES)))


@pytest.mark.parametrize("payload", WHOLE, ids=lambda p: chr(p[0]))
def test_truncated_messages(payload: bytes) -> None:
    for cut in range(len(payload)):
        assert_protocol_error_one_by_one(payload[:cut])
        assert_protocol_error_at_once(payload[:cut], many=False)
        assert_protocol_error_at_once(payload[:cut], many=True)


def with_value_kind(kind: bytes) -> bytes:
    return b"I" + struct.pack(">I", 1) + b"N" + struct.pack(">h", 2) + b"n" + kind + b"\0\0\0\1x"


CORRUPT = {
    "unknown kind": b"Z" + bytes(20),
    "stream start (protocol 2)": b"S" + bytes(20),
    "insert without N": b"I" + struct.pack(">I", 1) + b"K" + tuple_data([b"1"]),
    "update with an unknown mark": b"U" + struct.pack(">I", 1) + b"X" + tuple_data([b"1"]),
    "update K without N": b"U"
    + struct.pack(">I", 1)
    + b"K"
    + tuple_data([b"1"])
    + b"X"
    + tuple_data([b"1"]),
    "update O without a new row": b"U" + struct.pack(">I", 1) + b"O" + tuple_data([b"1"]),
    "delete with N": b"D" + struct.pack(">I", 1) + b"N" + tuple_data([b"1"]),
    "binary value": with_value_kind(b"b"),
    "unknown value kind": with_value_kind(b"x"),
    "negative value length": b"I"
    + struct.pack(">I", 1)
    + b"N"
    + struct.pack(">h", 1)
    + b"t"
    + struct.pack(">i", -1)
    + b"x",
    "negative column count": b"I"
    + struct.pack(">I", 1)
    + b"N"
    + struct.pack(">h", -1)
    + tuple_data([b"1"])[2:] * 8,
    "negative column count, deleted": b"D"
    + struct.pack(">I", 1)
    + b"K"
    + struct.pack(">h", -2)
    + b"n" * 8,
    "relation name not UTF-8": b"R"
    + struct.pack(">I", 1)
    + b"public\0\xff\xfe\0d"
    + struct.pack(">h", 0),
    "relation with a negative column count": b"R"
    + struct.pack(">I", 1)
    + b"public\0t\0d"
    + struct.pack(">h", -1),
    "message longer than said": message(True, 1, "p", b"abc")[:-1],
    "message with a negative length": b"M"
    + struct.pack(">BQ", 1, 1)
    + b"p\0"
    + struct.pack(">i", -3)
    + b"abc",
    "truncate of more relations than sent": b"T" + struct.pack(">iB", 3, 0) + struct.pack(">I", 1),
    "truncate of a negative count": b"T" + struct.pack(">iB", -1, 0),
}


@pytest.mark.parametrize("payload", CORRUPT.values(), ids=list(CORRUPT))
def test_corrupt_messages(payload: bytes) -> None:
    assert_protocol_error_one_by_one(payload)
    assert_protocol_error_at_once(payload, many=False)
    assert_protocol_error_at_once(payload, many=True)


def test_empty_message() -> None:
    assert_protocol_error_one_by_one(b"")
    with pytest.raises(ProtocolError):
        decode_all([insert(1, VALUES), b""])


def test_tuple_texts_of_truncated_rows() -> None:
    """Rows cut short in their messages raise on both paths."""
    whole = insert(1, VALUES)
    for cut in range(6, len(whole)):
        row = TupleData(whole[:cut], 6)
        for count in (1, VECTOR_ROWS):
            with pytest.raises(ProtocolError):
                tuple_texts(
                    [TupleData(whole, 6)] * (count - 1) + [row], len(VALUES), range(len(VALUES))
                )
