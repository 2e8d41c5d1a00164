"""``_pg_text`` and the stream's rows (``_cdc_events``) against what PostgreSQL writes.

``CASES`` holds values at the edges of each type with the text PostgreSQL 15 writes for them
under the stream's session settings (checked against the server): some do not fit their
column's type (a numeric ``NaN``, ``Infinity`` or one with too many digits, an infinite, BC or
far-future date or timestamp, the time ``24:00:00``), the others do (floats take ``NaN``,
infinities and ``-0``; ``interval`` is carried as its text). Each is parsed alone, in columns
of many values (``parse_masked``: the misfits null and masked, the others intact), and through
the rows of a real pgoutput stream (``rows_of``, ``rows_from_texts``: raising by default, with
``tolerant`` the bad rows and one-line reasons).
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from unittest import mock

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.connectors.sql import _pg_text
from omconnect.connectors.sql._cdc_events import (
    BadValues,
    TableEvents,
    rows_from_texts,
    rows_of,
)
from omconnect.connectors.sql._pg_text import (
    SESSION_SETTINGS,
    misfit_reason,
    parse,
    parse_masked,
    type_of,
    utf8_masked,
)
from omconnect.connectors.sql._pgoutput import Changes, Relation, decode_all
from omconnect.schemas import types as t
from tests.support.sql_databases import POSTGRES_URL, SqlDatabase, sqlalchemy_url

MISFIT = object()
"""The value of a case that does not fit its column's type."""

# Each column type: its OID and type modifier, as the relation message gives them.
TYPES = {
    "numeric": (1700, -1),
    "numeric(10,4)": (1700, (10 << 16 | 4) + 4),
    "date": (1082, -1),
    "timestamptz": (1184, -1),
    "timestamp": (1114, -1),
    "time": (1083, -1),
    "float8": (701, -1),
    "float4": (700, -1),
    "interval": (1186, -1),
    "int2": (21, -1),
    "int8": (20, -1),
    "boolean": (16, -1),
    "uuid": (2950, -1),
    "bytea": (17, -1),
    "text": (25, -1),
}


@dataclass(frozen=True)
class Case:
    column: str  # the column's type, a key of TYPES
    literal: str  # the value in SQL
    text: str  # what PostgreSQL writes for it
    value: Any  # what the column holds, or MISFIT

    @property
    def dtype(self) -> t.DataType:
        return type_of(*TYPES[self.column])


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


UUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
CASES = [
    Case("numeric", "'NaN'", "NaN", MISFIT),
    Case("numeric", "'Infinity'", "Infinity", MISFIT),
    Case("numeric", "'-Infinity'", "-Infinity", MISFIT),
    Case("numeric", "1 / 3::numeric", "0.33333333333333333333", MISFIT),  # 20 decimals
    Case(
        "numeric",
        "10::numeric ^ 40",
        "10000000000000000000000000000000000000000.0000000000000000",
        MISFIT,
    ),
    Case("numeric", "'-0'", "0", Decimal(0)),
    Case("numeric", "'-1e-9'", "-0.000000001", Decimal("-1e-9")),
    Case("numeric", "'123.4500'", "123.4500", Decimal("123.45")),
    Case("numeric", "'1.' || repeat('0', 40)", "1." + "0" * 40, Decimal(1)),  # zeros fit
    Case(
        "numeric",
        "'99999999999999999999999999999.999999999'",
        "99999999999999999999999999999.999999999",
        Decimal("99999999999999999999999999999.999999999"),
    ),
    Case("numeric(10,4)", "'NaN'", "NaN", MISFIT),
    Case("numeric(10,4)", "'123.45'", "123.4500", Decimal("123.45")),
    Case("date", "'infinity'", "infinity", MISFIT),
    Case("date", "'-infinity'", "-infinity", MISFIT),
    Case("date", "'4713-01-01 BC'", "4713-01-01 BC", MISFIT),  # the first date
    Case("date", "'0001-01-01 BC'", "0001-01-01 BC", MISFIT),
    Case("date", "'5874897-12-31'", "5874897-12-31", MISFIT),  # the last date
    Case("date", "'10000-01-01'", "10000-01-01", MISFIT),
    Case("date", "'0001-01-01'", "0001-01-01", date(1, 1, 1)),
    Case("date", "'9999-12-31'", "9999-12-31", date(9999, 12, 31)),
    Case("timestamptz", "'infinity'", "infinity", MISFIT),
    Case("timestamptz", "'-infinity'", "-infinity", MISFIT),
    Case(
        "timestamptz",
        "'294276-12-31 23:59:59.999999+00'",
        "294276-12-31 23:59:59.999999+00",
        MISFIT,
    ),
    Case("timestamptz", "'4713-01-01 00:00:00+00 BC'", "4713-01-01 00:00:00+00 BC", MISFIT),
    Case(
        "timestamptz",
        "'2020-01-01 00:00:00.123456+05:30'",
        "2019-12-31 18:30:00.123456+00",
        utc(2019, 12, 31, 18, 30, 0, 123456),
    ),
    Case("timestamptz", "'0001-01-01 00:00:00+00'", "0001-01-01 00:00:00+00", utc(1, 1, 1)),
    Case(
        "timestamptz",
        "'9999-12-31 23:59:59.999999+00'",
        "9999-12-31 23:59:59.999999+00",
        utc(9999, 12, 31, 23, 59, 59, 999999),
    ),
    Case("timestamp", "'infinity'", "infinity", MISFIT),
    Case("timestamp", "'-infinity'", "-infinity", MISFIT),
    Case("timestamp", "'294276-12-31 23:59:59.999999'", "294276-12-31 23:59:59.999999", MISFIT),
    Case("timestamp", "'4713-01-01 00:00:00 BC'", "4713-01-01 00:00:00 BC", MISFIT),
    Case(
        "timestamp",
        "'1900-01-01 12:00:00.5'",
        "1900-01-01 12:00:00.5",
        datetime(1900, 1, 1, 12, 0, 0, 500000),
    ),
    Case("time", "'24:00:00'", "24:00:00", MISFIT),
    Case("time", "'23:59:59.999999'", "23:59:59.999999", time(23, 59, 59, 999999)),
    Case("time", "'00:00'", "00:00:00", time(0)),
    Case("float8", "'-0'", "-0", -0.0),
    Case("float8", "'NaN'", "NaN", math.nan),
    Case("float8", "'Infinity'", "Infinity", math.inf),
    Case("float8", "'-Infinity'", "-Infinity", -math.inf),
    Case("float8", "'1e308'", "1e+308", 1e308),
    Case("float8", "'4.9e-324'", "5e-324", 5e-324),
    Case("float8", "'0.1'", "0.1", 0.1),
    Case("float4", "'-0'", "-0", -0.0),
    Case("float4", "'NaN'", "NaN", math.nan),
    Case("float4", "'-Infinity'", "-Infinity", -math.inf),
    Case("float4", "'3.4028235e38'", "3.4028235e+38", float(np.float32(3.4028235e38))),
    Case("float4", "'0.1'", "0.1", float(np.float32(0.1))),
    Case(
        "interval",
        "'178000000 years 2147483647 days 2562047788:00:54.775807'",
        "178000000 years 2147483647 days 2562047788:00:54.775807",
        "178000000 years 2147483647 days 2562047788:00:54.775807",
    ),
    Case(
        "interval",
        "'-178956970 years -8 mons -2147483648 days'",
        "-178956970 years -8 mons -2147483648 days",
        "-178956970 years -8 mons -2147483648 days",
    ),
    Case(
        "interval",
        "'-2562047788:00:54.775807'::interval - '00:00:00.000001'",
        "-2562047788:00:54.775808",
        "-2562047788:00:54.775808",
    ),
    Case("int2", "-32768", "-32768", -32768),
    Case("int8", "9223372036854775807", "9223372036854775807", 2**63 - 1),
    Case("boolean", "true", "t", True),
    Case("boolean", "false", "f", False),
    Case("uuid", f"'{UUID}'", UUID, uuid.UUID(UUID).bytes),
    Case("bytea", "'\\x00ff'::bytea", "\\x00ff", b"\x00\xff"),
    Case("text", "'zoë ☃ 𝄞'", "zoë ☃ 𝄞", "zoë ☃ 𝄞"),
]
IDS = [f"{c.column}:{c.text[:30]}" for c in CASES]


def same(actual: Any, expected: Any) -> bool:
    """Equal, NaN equal to NaN and -0.0 not to 0.0."""
    if isinstance(expected, float):
        if math.isnan(expected):
            return isinstance(actual, float) and math.isnan(actual)
        return actual == expected and math.copysign(1, actual) == math.copysign(1, expected)
    if isinstance(actual, uuid.UUID):
        return actual.bytes == expected
    return bool(actual == expected)


def value_of(column: pa.Array, index: int) -> Any:
    if isinstance(column.type, pa.BaseExtensionType) and column.type.extension_name == "arrow.uuid":
        return column.storage[index].as_py()
    return column[index].as_py()


# -- PostgreSQL's texts --------------------------------------------------------------------


@pytest.fixture
def settled_engine() -> Iterator[sa.Engine]:
    """An engine whose sessions have the stream's settings (the values' text forms)."""
    engine = sa.create_engine(
        sqlalchemy_url(POSTGRES_URL),
        poolclass=sa.pool.NullPool,
        connect_args={"options": SESSION_SETTINGS},
    )
    yield engine
    engine.dispose()


def test_postgresql_writes_these_texts(settled_engine: sa.Engine) -> None:
    # format's %s is the type's output function, as pgoutput's (a cast to text may differ).
    columns = ", ".join(f"format('%s', ({c.literal})::{c.column})" for c in CASES)
    with settled_engine.connect() as connection:
        written = connection.execute(sa.text(f"SELECT {columns}")).one()
    assert list(written) == [c.text for c in CASES]


# -- one value, a column of many ----------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_each_value_parses_or_is_masked(case: Case) -> None:
    raw = pa.array([None, case.text, None], pa.string())
    values, misfits = parse_masked(raw, case.dtype)
    assert values[0].as_py() is None and values[2].as_py() is None
    if case.value is MISFIT:
        assert misfits is not None and misfits.tolist() == [False, True, False]
        assert values.null_count == 3
        with pytest.raises(ValueError) as raised:
            parse(raw, case.dtype)
        assert str(raised.value) == f'"{case.text}" does not fit {case.dtype}'
    else:
        assert misfits is None
        assert same(value_of(values, 1), case.value)
        assert same(value_of(parse(raw, case.dtype), 1), case.value)


@pytest.mark.parametrize("column", sorted({c.column for c in CASES}))
def test_a_column_of_many_values(column: str) -> None:
    """Every case of a type in one column, many times over in a random order: exactly the
    misfits are masked (and null), every other value is as alone."""
    cases = [c for c in CASES if c.column == column] * 40
    random.Random(column).shuffle(cases)
    dtype = cases[0].dtype
    raw = pa.array([c.text for c in cases], pa.string())
    values, misfits = parse_masked(raw, dtype)
    expected = [c.value is MISFIT for c in cases]
    assert (misfits.tolist() if misfits is not None else [False] * len(cases)) == expected
    for index, case in enumerate(cases):
        if case.value is MISFIT:
            assert values[index].as_py() is None
        else:
            assert same(value_of(values, index), case.value)


def test_when_every_value_fits_one_parse_is_all() -> None:
    """The misfit search runs only when the plain parse fails."""
    raw = pa.array(["2020-01-01", None, "0001-01-01"] * 1000, pa.string())
    with (
        mock.patch.object(_pg_text, "_never_fitting") as checks,
        mock.patch.object(_pg_text, "_by_halves") as halves,
    ):
        values, misfits = parse_masked(raw, t.date())
        parse(raw, t.date())
    assert misfits is None and values.null_count == 1000
    assert not checks.called and not halves.called


# Texts PostgreSQL does not write but that do not parse either: the halving finds them.
ODD_DATES = ["2020-13-01", "2020-02-30", "", "yesterday", "2020-01-01 BC!"]
ODD_DECIMALS = ["1e400", "-", "1..2", "abc", "12345678.12345"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.dates().map(lambda d: (d.isoformat(), False)),
            st.none().map(lambda _: (None, False)),
            st.sampled_from(["infinity", "-infinity", "4713-01-01 BC", "10000-01-01"]).map(
                lambda text: (text, True)
            ),
            st.sampled_from(ODD_DATES).map(lambda text: (text, True)),
        ),
        max_size=300,
    )
)
def test_dates_masked_exactly(items: list[tuple[str | None, bool]]) -> None:
    assert_masked_exactly(items, t.date())


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.decimals(-999_999, 999_999, places=4, allow_nan=False).map(
                lambda d: (str(d), False)
            ),
            st.sampled_from(["NaN", "Infinity", "-Infinity", "0.00001", "1234567.5"]).map(
                lambda text: (text, True)
            ),
            st.sampled_from(ODD_DECIMALS).map(lambda text: (text, True)),
        ),
        max_size=300,
    )
)
def test_decimals_masked_exactly(items: list[tuple[str | None, bool]]) -> None:
    assert_masked_exactly(items, t.decimal(10, 4))


def assert_masked_exactly(items: Sequence[tuple[str | None, bool]], dtype: t.DataType) -> None:
    """``parse_masked`` masks the values marked, and parses the others as they parse alone."""
    raw = pa.array([text for text, _ in items], pa.string())
    values, misfits = parse_masked(raw, dtype)
    expected = [bad for _, bad in items]
    assert (misfits.tolist() if misfits is not None else [False] * len(items)) == expected
    fitting = pa.array([None if bad else text for text, bad in items], pa.string())
    assert values.equals(parse(fitting, dtype))


def test_texts_that_are_not_utf8() -> None:
    raw = pa.array([b"ok", None, b"\xff\xfe", "zoë".encode(), b"\xc3"], pa.binary())
    strings, misfits = utf8_masked(raw)
    assert misfits is not None and misfits.tolist() == [False, False, True, False, True]
    assert strings.to_pylist() == ["ok", None, None, "zoë", None]
    assert utf8_masked(pa.array([b"a", None], pa.binary()))[1] is None


def test_misfit_reasons_are_one_line() -> None:
    assert misfit_reason("NaN", t.decimal(38, 9)) == '"NaN" does not fit decimal(38,9)'
    assert misfit_reason(b"infinity", t.date()) == '"infinity" does not fit date'
    assert misfit_reason(b"a\n\xff", t.string()) == "b'a\\n\\xff' is not UTF-8 text"
    long = misfit_reason("9" * 500 + "\n\u2028\x85", t.decimal(10, 2))
    assert len(long.splitlines()) == 1 and len(long) < 120
    assert len(misfit_reason("x\n\u2028\x85y", t.date()).splitlines()) == 1


# -- through the stream's rows -------------------------------------------------------------

REPEATS = 3  # each case's row this many times: enough rows for the numpy path

COLUMNS = {name: f"c_{index}" for index, name in enumerate(TYPES)}


def stream_of(database: SqlDatabase, engine: sa.Engine) -> list[bytes]:
    """The pgoutput messages (protocol version 1) of inserting one row per case (``REPEATS``
    times; the case's column holds its value, the others null) into a table of a column per
    type, then updating every row (``REPLICA IDENTITY FULL``: the old rows are sent too)."""
    table = f'"{database.schema}".misfits'
    publication = f"p_{uuid.uuid4().hex[:12]}"
    slot = f"s_{uuid.uuid4().hex[:12]}"
    columns = ", ".join(f"{COLUMNS[name]} {name}" for name in TYPES)
    database.execute(
        f"CREATE TABLE {table} (id int PRIMARY KEY, {columns})",
        f"ALTER TABLE {table} REPLICA IDENTITY FULL",
        f"CREATE PUBLICATION {publication} FOR TABLE {table}",
    )
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as session:
            # Temporary: dropped with the session, whatever happens.
            session.execute(
                sa.text("SELECT pg_create_logical_replication_slot(:slot, 'pgoutput', true)"),
                {"slot": slot},
            )
            database.execute(
                *(
                    f"INSERT INTO {table} (id, {COLUMNS[case.column]}) "
                    f"VALUES ({row}, ({case.literal})::{case.column})"
                    for row, case in enumerate(CASES * REPEATS)
                )
            )
            database.execute(f"UPDATE {table} SET id = id")
            found = session.execute(
                sa.text(
                    "SELECT data FROM pg_logical_slot_get_binary_changes(:slot, NULL, NULL, "
                    "'proto_version', '1', 'publication_names', :publication)"
                ),
                {"slot": slot, "publication": publication},
            )
            return [bytes(row[0]) for row in found]
    finally:
        database.execute(f"DROP PUBLICATION {publication}")


def reason_of(database: SqlDatabase, case: Case) -> str:
    return (
        f"table {database.schema}.misfits, column {COLUMNS[case.column]}: "
        f'"{case.text}" does not fit {case.dtype}'
    )


def assert_rows(rows: pa.StructArray, cases: Sequence[Case], first_id: int = 0) -> None:
    """Each row holds its case's value (null for a misfit) and its id: the rest intact."""
    for index, case in enumerate(cases):
        row = rows.field(COLUMNS[case.column])
        assert rows.field("id")[index].as_py() == first_id + index
        if case.value is MISFIT:
            assert row[index].as_py() is None
        else:
            assert same(value_of(row, index), case.value)


def test_rows_of_a_real_stream(postgres_database: SqlDatabase, settled_engine: sa.Engine) -> None:
    messages = decode_all(stream_of(postgres_database, settled_engine))
    (relation,) = (m for m in messages if isinstance(m, Relation))
    inserts, updates = (m for m in messages if isinstance(m, Changes))
    assert inserts.ops.tolist() == ["c"] * len(CASES) * REPEATS
    assert updates.ops.tolist() == ["u"] * len(CASES) * REPEATS
    table = TableEvents(
        relation.schema,
        relation.name,
        tuple((c.name, c.type_oid, c.type_modifier) for c in relation.columns),
        ("id",),
    )
    assert [table.row_fields[1:][i].type for i in range(len(TYPES))] == [
        type_of(*TYPES[name]) for name in TYPES
    ]
    cases = CASES * REPEATS
    bad_rows = [index for index, case in enumerate(cases) if case.value is MISFIT]
    reasons = [reason_of(postgres_database, cases[index]) for index in bad_rows]

    # A poll at once (the numpy path: more rows than _pgoutput._VECTOR_ROWS).
    after, unchanged, bad = rows_of(table, inserts, tolerant=True)
    assert bad is not None
    assert bad.rows.tolist() == bad_rows
    assert bad.reasons == reasons
    assert bad.columns == [(COLUMNS[cases[index].column],) for index in bad_rows]
    assert_rows(after, cases)
    assert list(unchanged) == [[]] * len(cases)
    before, _, bad_before = rows_of(table, updates, old=True, tolerant=True)
    assert bad_before is not None and bad_before.rows.tolist() == bad_rows
    assert_rows(before, cases)
    both = bad_before.union(rows_of(table, updates, tolerant=True)[2])
    assert both.rows.tolist() == bad_rows
    assert both.reasons == [f"{reason}; {reason}" for reason in reasons]
    assert both.good(len(cases)).tolist() == [c.value is not MISFIT for c in cases]

    # By default the first bad value fails the batch, naming it.
    with pytest.raises(ValueError) as raised:
        rows_of(table, inserts)
    assert str(raised.value) == reasons[0]

    # One change at a time (the Python path), as decode gives them.
    one_by_one = inserts.changes()
    for index, case in enumerate(CASES):
        new = [one_by_one[index].new]
        rows, _, found = rows_from_texts(table, new, tolerant=True)
        assert_rows(rows, [case], first_id=index)
        if case.value is MISFIT:
            assert found is not None and found.reasons == [reason_of(postgres_database, case)]
            with pytest.raises(ValueError, match="does not fit"):
                rows_from_texts(table, new)
        else:
            assert found is None
            assert_rows(rows_from_texts(table, new)[0], [case], first_id=index)


def test_bad_values_with_several_columns_and_bad_text() -> None:
    table = TableEvents(
        "public",
        "t",
        (("id", 23, -1), ("n", 1700, -1), ("d", 1082, -1), ("s", 25, -1), ("f", 701, -1)),
        ("id",),
    )
    rows = [
        (b"1", b"NaN", b"infinity", b"a", b"NaN"),
        (b"2", b"2.5", b"2020-01-01", b"\xff", b"-0"),
        None,
        (b"4", b"4", b"2020-01-04", b"d", b"Infinity"),
    ]
    struct, _, bad = rows_from_texts(table, rows, tolerant=True)
    assert bad == BadValues(
        bad.rows if bad is not None else np.zeros(0),
        [("n", "d"), ("s",)],
        [
            'table public.t, column n: "NaN" does not fit decimal(38,9); '
            'column d: "infinity" does not fit date',
            "table public.t, column s: b'\\xff' is not UTF-8 text",
        ],
    )
    assert bad is not None and bad.rows.tolist() == [0, 1]
    assert struct.to_pylist()[:2] == [
        {"id": 1, "n": None, "d": None, "s": "a", "f": pytest.approx(math.nan, nan_ok=True)},
        {"id": 2, "n": Decimal("2.5"), "d": date(2020, 1, 1), "s": None, "f": -0.0},
    ]
    assert struct[2].as_py() is None
    with pytest.raises(ValueError) as raised:
        rows_from_texts(table, rows)
    assert str(raised.value) == bad.reasons[0]
    assert rows_from_texts(table, [None, None], tolerant=True)[2] is None
