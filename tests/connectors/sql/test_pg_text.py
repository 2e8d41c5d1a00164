"""``_pg_text`` and the stream's rows (``_cdc_events``) against what PostgreSQL writes.

``CASES`` holds values at the edges of each type with the text PostgreSQL 15 writes for them
under the stream's session settings (checked against the server): some do not fit their
column's type (a numeric ``NaN``, ``Infinity`` or one with too many digits, an infinite, BC or
far-future date or timestamp, the time ``24:00:00``), the others do (floats take ``NaN``,
infinities and ``-0``; ``interval`` is carried as its text), and one-dimensional arrays of
them, lists (quoted, escaped and NULL elements, ``{}``; a multi-dimensional array, one with
explicit bounds or with an element that does not fit do not fit). Each is parsed alone, in
columns of many values (``parse_masked``: the misfits null and masked, the others intact),
and through the rows of a real pgoutput stream (``rows_of``, ``rows_from_texts``: raising by
default, with ``tolerant`` the bad rows and one-line reasons). Random arrays of text and
floats go through the server and back; 100k arrays must parse well inside a second.
"""

from __future__ import annotations

import json
import math
import random
import time as clock
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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omconnect.connectors.sql import _pg_arrays, _pg_text
from omconnect.connectors.sql._cdc_events import (
    BadValues,
    TableEvents,
    rows_from_texts,
    rows_of,
)
from omconnect.connectors.sql._pg_text import (
    SESSION_SETTINGS,
    carried_as_text,
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
    "int4[]": (1007, -1),
    "int8[]": (1016, -1),
    "text[]": (1009, -1),
    "varchar[]": (1015, -1),
    "float8[]": (1022, -1),
    "float4[]": (1021, -1),
    "numeric(10,2)[]": (1231, (10 << 16 | 2) + 4),
    "bool[]": (1000, -1),
    "uuid[]": (2951, -1),
    "date[]": (1182, -1),
    "timestamptz[]": (1185, -1),
    "timestamp[]": (1115, -1),
    "time[]": (1183, -1),
    "jsonb[]": (3807, -1),
    "bytea[]": (1001, -1),
    "interval[]": (1187, -1),
}


@dataclass(frozen=True)
class Case:
    column: str  # the column's type, a key of TYPES
    literal: str  # the value in SQL
    text: str  # what PostgreSQL writes for it
    value: Any  # what the column holds, or MISFIT
    why: str = ""  # a misfit's reason, after "... does not fit <type>"

    @property
    def dtype(self) -> t.DataType:
        return type_of(*TYPES[self.column])


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


UUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
# Why a multi-dimensional array is no list.
DIMENSIONS = ": it is a multi-dimensional array of {} dimensions, where a list has one"
# Why an array whose first index is not 1 is no list.
FIRST_INDEX = ": its first index is {}, where a list's is 1"
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
    # Arrays: quoted when empty, spelling NULL (any case), holding braces, commas, quotes,
    # backslashes or white space; backslash-escaped inside the quotes.
    Case(
        "text[]",
        r"""ARRAY['a b', '', NULL, 'x"y', 'NULL', 'null', 'back\slash', '{}', ','"""
        r""", 'zoë☃𝄞', 'é è']""",
        r'{"a b","",NULL,"x\"y","NULL","null","back\\slash","{}",",",zoë☃𝄞,"é è"}',
        ["a b", "", None, 'x"y', "NULL", "null", r"back\slash", "{}", ",", "zoë☃𝄞", "é è"],
    ),
    Case(
        "text[]",
        "ARRAY['\\', '\"', '\\\"', ' lead', E'tab\\t', E'line\\n', 'trail\\']",
        '{"\\\\","\\"","\\\\\\""," lead","tab\t","line\n","trail\\\\"}',
        ["\\", '"', '\\"', " lead", "tab\t", "line\n", "trail\\"],
    ),
    Case("text[]", "ARRAY[]::text[]", "{}", []),
    Case("text[]", "ARRAY[NULL]::text[]", "{NULL}", [None]),
    Case("text[]", "ARRAY['']", '{""}', [""]),
    Case(
        "text[]",
        "ARRAY[ARRAY['a,b', 'c'], ARRAY['d', 'e}']]",
        '{{"a,b",c},{d,"e}"}}',
        MISFIT,
        DIMENSIONS.format(2),
    ),
    Case(
        "text[]",
        "'[0:1]={x,y}'::text[]",
        "[0:1]={x,y}",
        MISFIT,
        FIRST_INDEX.format(0),
    ),
    Case("varchar[]", "ARRAY['a'::varchar, 'b c']", '{a,"b c"}', ["a", "b c"]),
    Case("int4[]", "ARRAY[1, NULL, -2147483648]", "{1,NULL,-2147483648}", [1, None, -2147483648]),
    Case("int4[]", "'{}'", "{}", []),
    Case("int4[]", "'{{1,2},{3,4}}'", "{{1,2},{3,4}}", MISFIT, DIMENSIONS.format(2)),
    Case("int4[]", "'{{{1}}}'", "{{{1}}}", MISFIT, DIMENSIONS.format(3)),
    Case(
        "int4[]",
        "'[2:3]={1,2}'",
        "[2:3]={1,2}",
        MISFIT,
        FIRST_INDEX.format(2),
    ),
    Case(
        "int4[]",
        "'[1:1][1:2]={{1,2}}'",
        "{{1,2}}",  # the default bounds are not written
        MISFIT,
        DIMENSIONS.format(2),
    ),
    Case("int4[]", "'[-1:0]={1,2}'", "[-1:0]={1,2}", MISFIT, FIRST_INDEX.format(-1)),
    Case(
        "int4[]",
        "'{{NULL,NULL},{NULL,NULL}}'",
        "{{NULL,NULL},{NULL,NULL}}",
        MISFIT,
        DIMENSIONS.format(2),
    ),
    Case("int4[]", "'[0:1][1:1]={{1},{2}}'", "[0:1][1:1]={{1},{2}}", MISFIT, DIMENSIONS.format(2)),
    Case("int4[]", "'{NULL,NULL}'", "{NULL,NULL}", [None, None]),
    Case("text[]", """'[0:0]={"a\\"b"}'""", '[0:0]={"a\\"b"}', MISFIT, FIRST_INDEX.format(0)),
    Case(
        "text[]",
        r"""ARRAY[ARRAY['x"y', 'back\slash'], ARRAY[NULL, '']]""",
        r'{{"x\"y","back\\slash"},{NULL,""}}',
        MISFIT,
        DIMENSIONS.format(2),
    ),
    Case(  # elements that look like arrays
        "text[]",
        "ARRAY['{1,2}', '[0:1]={a}', '{{}}']",
        '{"{1,2}","[0:1]={a}","{{}}"}',
        ["{1,2}", "[0:1]={a}", "{{}}"],
    ),
    Case(
        "timestamptz[]",
        "ARRAY[ARRAY['2020-01-01 00:00:00+00'::timestamptz]]",
        '{{"2020-01-01 00:00:00+00"}}',
        MISFIT,
        DIMENSIONS.format(2),
    ),
    Case("numeric(10,2)[]", "'{NULL,NULL}'", "{NULL,NULL}", [None, None]),
    Case("numeric(10,2)[]", "'{{1.5},{NaN}}'", "{{1.50},{NaN}}", MISFIT, DIMENSIONS.format(2)),
    Case("date[]", "'[2:2]={2020-01-01}'", "[2:2]={2020-01-01}", MISFIT, FIRST_INDEX.format(2)),
    Case("int8[]", "ARRAY[9223372036854775807]", "{9223372036854775807}", [2**63 - 1]),
    Case(
        "float8[]",
        "'{NaN,Infinity,-Infinity,-0,0.1,NULL}'",
        "{NaN,Infinity,-Infinity,-0,0.1,NULL}",
        [math.nan, math.inf, -math.inf, -0.0, 0.1, None],
    ),
    Case("float4[]", "'{NaN,0.1}'", "{NaN,0.1}", [math.nan, float(np.float32(0.1))]),
    Case(
        "numeric(10,2)[]",
        "ARRAY[1.5, NULL, -2]",
        "{1.50,NULL,-2.00}",
        [Decimal("1.5"), None, Decimal(-2)],
    ),
    Case(
        "numeric(10,2)[]",
        "ARRAY[1.5, 'NaN']",
        "{1.50,NaN}",
        MISFIT,
        ': its element "NaN" does not fit decimal(10,2)',
    ),
    Case("bool[]", "ARRAY[true, false, NULL]", "{t,f,NULL}", [True, False, None]),
    Case(
        "uuid[]", f"ARRAY['{UUID}'::uuid, NULL]", f"{{{UUID},NULL}}", [uuid.UUID(UUID).bytes, None]
    ),
    Case("date[]", "'{2020-01-01,NULL}'", "{2020-01-01,NULL}", [date(2020, 1, 1), None]),
    Case(
        "date[]",
        "'{2020-01-01,infinity}'",
        "{2020-01-01,infinity}",
        MISFIT,
        ': its element "infinity" does not fit date',
    ),
    Case(
        "date[]",
        "'{4713-01-01 BC}'",
        '{"4713-01-01 BC"}',
        MISFIT,
        ': its element "4713-01-01 BC" does not fit date',
    ),
    Case(
        "timestamptz[]",
        "ARRAY['2020-01-01 00:00:00.5+05:30'::timestamptz, NULL]",
        '{"2019-12-31 18:30:00.5+00",NULL}',
        [utc(2019, 12, 31, 18, 30, 0, 500000), None],
    ),
    Case(
        "timestamp[]",
        "'{\"1900-01-01 12:00:00\",infinity}'",
        '{"1900-01-01 12:00:00",infinity}',
        MISFIT,
        ': its element "infinity" does not fit timestamp',
    ),
    Case(
        "time[]",
        "'{00:00,23:59:59.5}'",
        "{00:00:00,23:59:59.5}",
        [time(0), time(23, 59, 59, 500000)],
    ),
    Case("time[]", "'{24:00}'", "{24:00:00}", MISFIT, ': its element "24:00:00" does not fit time'),
    Case(
        "jsonb[]",
        r"""ARRAY['{"a": [1, "x\"y"]}'::jsonb, 'null', NULL]""",
        r'{"{\"a\": [1, \"x\\\"y\"]}","null",NULL}',
        [r'{"a": [1, "x\"y"]}', "null", None],
    ),
    Case("bytea[]", "ARRAY['\\x00ff'::bytea, '']", '{"\\\\x00ff","\\\\x"}', [b"\x00\xff", b""]),
    Case(  # arrays of a type carried as text are that text
        "interval[]",
        "ARRAY['1 day'::interval, NULL]",
        '{"1 day",NULL}',
        '{"1 day",NULL}',
    ),
]
IDS = [f"{c.column}:{c.text[:30]}" for c in CASES]


def same(actual: Any, expected: Any) -> bool:
    """Equal, NaN equal to NaN and -0.0 not to 0.0 (lists item by item)."""
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same(a, e) for a, e in zip(actual, expected, strict=True))
        )
    if isinstance(expected, float):
        if math.isnan(expected):
            return isinstance(actual, float) and math.isnan(actual)
        return actual == expected and math.copysign(1, actual) == math.copysign(1, expected)
    if isinstance(actual, uuid.UUID):
        return actual.bytes == expected
    return bool(actual == expected)


def reason(case: Case) -> str:
    """The line a misfit's value gives: its text (as JSON), its type, and why."""
    return f"{json.dumps(case.text, ensure_ascii=False)} does not fit {case.dtype}{case.why}"


def value_of(column: pa.Array, index: int) -> Any:
    if isinstance(column.type, pa.BaseExtensionType) and column.type.extension_name == "arrow.uuid":
        return column.storage[index].as_py()
    value = column[index].as_py()
    if isinstance(value, list):  # uuids as their bytes, as above
        return [v.bytes if isinstance(v, uuid.UUID) else v for v in value]
    return value


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
        assert str(raised.value) == reason(case)
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


def test_zone_offsets_of_another_session(settled_engine: sa.Engine) -> None:
    """The ``sql`` source's session keeps its time zone (``ARRAY_TEXT_STATEMENTS``): its
    ``timestamptz`` texts hold that zone's offsets, in seconds before the zone kept standard
    time (Paris until 1911: local mean time, +00:09:21), all parsed as the same instants."""
    instants = [
        "1850-01-01 00:00:00+00",
        "1911-03-11 00:00:00+00",
        "2024-06-30 12:00:00.5+00",
        "0500-01-01 00:00:00+00",
        "2024-01-01 00:00:00-03:30",
    ]
    with settled_engine.connect() as connection:
        connection.execute(sa.text("SET timezone = 'Europe/Paris'"))
        texts = [
            connection.execute(
                sa.text("SELECT format('%s', CAST(:v AS timestamptz))"), {"v": v}
            ).scalar_one()
            for v in instants
        ]
    assert texts[0] == "1850-01-01 00:09:21+00:09:21"
    assert texts[2] == "2024-06-30 14:00:00.5+02"
    values = parse(pa.array(texts, pa.string()), t.timestamp("UTC"))
    assert values.to_pylist() == [
        utc(1850, 1, 1),
        utc(1911, 3, 11),
        utc(2024, 6, 30, 12, 0, 0, 500000),
        utc(500, 1, 1),
        utc(2024, 1, 1, 3, 30),
    ]
    # In an array, and among values that do not fit (a BC one, with seconds too).
    arrays = pa.array(
        ['{"' + '","'.join(texts) + '",NULL}', '{"0001-01-01 00:09:21+00:09:21 BC"}'] * 20
    )
    lists, misfits = parse_masked(arrays, t.array(t.timestamp("UTC")))
    assert misfits is not None and misfits.tolist() == [False, True] * 20
    assert lists[0].as_py() == [*values.to_pylist(), None]
    assert misfit_reason(arrays[1].as_py(), t.array(t.timestamp("UTC"))).endswith(
        ': its element "0001-01-01 00:09:21+00:09:21 BC" does not fit timestamp(UTC)'
    )


# -- arrays --------------------------------------------------------------------------------


def test_array_types_are_lists_of_their_elements(settled_engine: sa.Engine) -> None:
    """Each array type of a type given here (``pg_type.typarray``) is a list of it, selected
    as text by a snapshot; arrays of the others (``interval[]``, ``int4range[]``, an enum's
    array) and enums are text, as Debezium's enums are strings."""
    with settled_engine.connect() as connection:
        pairs = connection.execute(
            sa.text(
                "SELECT e.oid::int, e.typarray::int, e.typname FROM pg_type e "
                "WHERE e.oid IN (16, 17, 20, 21, 23, 25, 114, 700, 701, 1042, 1043, 1082, "
                "1083, 1114, 1184, 1186, 1700, 2950, 3802, 3904)"
            )
        ).all()
    assert len(pairs) == 20
    for element, array, name in pairs:
        assert carried_as_text(array), name
        if name in ("interval", "int4range"):
            assert type_of(array, -1) == t.string()
        else:
            assert type_of(array, -1) == t.array(type_of(element, -1)), name
            assert not carried_as_text(element), name
    numeric_10_2 = (10 << 16 | 2) + 4
    assert type_of(1231, numeric_10_2) == t.array(t.decimal(10, 2))
    assert type_of(22, -1) == t.string()  # int2vector: "1 2 3", not an array's text
    assert type_of(70_000, -1) == t.string()  # a user type: an enum, its array, a domain


def test_elements_are_parsed_at_once() -> None:
    """A column of arrays is split once and its elements parsed in one call, when they
    all fit (no search for misfits); its nulls stay null."""
    raw = pa.array(["{1,2,NULL}", None, "{}", '{"3"}'] * 1000, pa.string())
    with (
        mock.patch.object(_pg_arrays, "_split_many", wraps=_pg_arrays._split_many) as split,
        mock.patch.object(_pg_text, "_by_halves") as halves,
    ):
        values, misfits = parse_masked(raw, t.array(t.int64()))
    assert misfits is None and split.call_count == 1 and not halves.called
    assert values.type == pa.list_(pa.field("item", pa.int64()))
    assert values.to_pylist()[:4] == [[1, 2, None], None, [], [3]]
    assert values.null_count == 1000


# Texts PostgreSQL does not write for an array: masked, whatever is around them (an open
# quote does not run into the next value).
ODD_ARRAYS = [
    "",
    "{",
    "1,2",
    '{"open}',
    '{a"b"}',
    '{"a"b}',
    "{,}",
    "{1,}",
    "{a\\,b}",
    "{{1},2}",
    "{1}}",
    "[1:2]",
    '"{1}"',
]


@pytest.mark.parametrize("copies", [1, 10], ids=["few", "many"])
@pytest.mark.parametrize("odd", ODD_ARRAYS)
def test_texts_that_are_not_arrays_are_masked(odd: str, copies: int) -> None:
    """A few texts are split in Python, more with numpy (``_FEW_ARRAYS``): the same."""
    raw = pa.array(['{"a b",c}', odd, '{"d\\"",NULL}', None, odd, "{}"] * copies, pa.string())
    values, misfits = parse_masked(raw, t.array(t.string()))
    assert misfits is not None
    assert misfits.tolist() == [False, True, False, False, True, False] * copies
    assert values.to_pylist() == [["a b", "c"], None, ['d"', None], None, None, []] * copies
    assert misfit_reason(odd, t.array(t.string())).startswith(
        f"{json.dumps(odd)} does not fit array<string>"
    )


@pytest.mark.parametrize("copies", [1, 10], ids=["few", "many"])
def test_array_misfits_among_good_values_and_in_slices(copies: int) -> None:
    """A column's misfits (a 2-D array, explicit bounds, an element that does not fit) are
    masked wherever they are, in a slice of a column too (as ``_cdc_events`` parses its
    columns of one type); the other rows are whole."""
    texts = ["{1,2}", "{{1,2},{3,4}}", "{NULL}", "[0:0]={5}", "{x}", "{2147483648}", "{}"]
    texts *= copies
    whole = pa.array(["{9}", *texts, "{9}"], pa.string())
    values, misfits = parse_masked(whole.slice(1, len(texts)), t.array(t.int32()))
    assert misfits is not None
    assert misfits.tolist() == [False, True, False, True, True, True, False] * copies
    assert values.to_pylist() == [[1, 2], None, [None], None, None, None, []] * copies
    with pytest.raises(ValueError) as raised:
        parse(whole, t.array(t.int32()))
    assert str(raised.value) == ('"{{1,2},{3,4}}" does not fit array<int32>' + DIMENSIONS.format(2))
    assert misfit_reason("{x}", t.array(t.int32())) == (
        '"{x}" does not fit array<int32>: its element "x" does not fit int32'
    )


@pytest.fixture(scope="module")
def round_trip() -> Iterator[sa.Connection]:
    """A connection with the stream's settings, to ask the server for arrays' texts."""
    engine = sa.create_engine(
        sqlalchemy_url(POSTGRES_URL),
        poolclass=sa.pool.NullPool,
        connect_args={"options": SESSION_SETTINGS},
    )
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def texts_of(connection: sa.Connection, arrays: Sequence[list[Any] | None], kind: str) -> list[str]:
    """What PostgreSQL writes for ``arrays`` as ``kind[]`` values (one query; a snapshot
    reads the same text, the cast to text, as the stream does)."""
    if not arrays:
        return []
    rows = ", ".join(f"({i}, CAST(:a{i} AS {kind}[]))" for i in range(len(arrays)))
    found = connection.execute(
        sa.text(f"SELECT CAST(a AS text) FROM (VALUES {rows}) AS v(i, a) ORDER BY i"),
        {f"a{i}": array for i, array in enumerate(arrays)},
    )
    return [row[0] for row in found]


TEXT_ELEMENTS = st.one_of(
    st.none(),
    st.sampled_from(
        ["", "NULL", "null", "Null", " ", "a b", "{}", "{", "}", ",", '"', "\\", "\\\\"]
    ),
    st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12),
    st.text(alphabet='ab{},"\\ \t\nNUL', max_size=8),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), st.lists(TEXT_ELEMENTS, max_size=6)), max_size=40))
def test_text_arrays_as_the_server_writes_them(
    round_trip: sa.Connection, arrays: list[list[str | None] | None]
) -> None:
    texts = texts_of(round_trip, arrays, "text")
    raw = pa.array(["{}", *texts, "{}"], pa.string()).slice(1, len(texts))
    values, misfits = parse_masked(raw, t.array(t.string()))
    assert misfits is None, texts
    assert values.to_pylist() == arrays, texts


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(st.none(), st.lists(st.one_of(st.none(), st.floats()), max_size=6)),
        max_size=40,
    )
)
def test_float_arrays_as_the_server_writes_them(
    round_trip: sa.Connection, arrays: list[list[float | None] | None]
) -> None:
    values = parse(
        pa.array(texts_of(round_trip, arrays, "float8"), pa.string()), t.array(t.float64())
    )
    assert all(same(a, e) for a, e in zip(values.to_pylist(), arrays, strict=True))


def best_seconds(call: Any, times: int = 3) -> float:
    best = math.inf
    for _ in range(times):
        start = clock.perf_counter()
        call()
        best = min(best, clock.perf_counter() - start)
    return best


def test_100k_arrays_parse_well_inside_a_second() -> None:
    """No Python per value, quoted or not: 100k ``int4[]`` of 5 elements, and 100k ``text[]``
    of quoted and escaped elements, each parse in a fraction of a second (about 60 and 100
    ms where this was written)."""
    numbers = random.Random(5)
    ints = pa.array(
        [
            "{" + ",".join(str(numbers.randint(-(10**6), 10**6)) for _ in range(5)) + "}"
            for _ in range(100_000)
        ],
        pa.string(),
    )
    quoted = pa.array(['{"a b","x\\"y",NULL,plain,"back\\\\slash"}'] * 100_000, pa.string())
    for raw, dtype in ((ints, t.array(t.int32())), (quoted, t.array(t.string()))):
        values, misfits = parse_masked(raw, dtype)
        assert misfits is None and len(values.values) == 500_000
        assert best_seconds(lambda raw=raw, dtype=dtype: parse_masked(raw, dtype)) < 0.5
    assert parse(quoted.slice(0, 1), t.array(t.string()))[0].as_py() == [
        "a b",
        'x"y',
        None,
        "plain",
        "back\\slash",
    ]


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
    return f"table {database.schema}.misfits, column {COLUMNS[case.column]}: {reason(case)}"


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
    relations = [m for m in messages if isinstance(m, Relation)]
    # The server sends the table's relation message again after a cache invalidation (DDL
    # of other sessions can cause one): the same table each time.
    assert relations and {r.oid for r in relations} == {relations[0].oid}
    relation = relations[-1]
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
