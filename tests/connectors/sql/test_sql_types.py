"""Every mapped column type of each dialect: its omconnect type, and values that come back
from the sql source exactly as they were written (through each dialect's Arrow fast path).
MariaDB's JSON columns (``LONGTEXT`` with a ``json_valid`` check) are json both ways: read by
the source and created by the sink."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from omconnect.connectors.api import ConfigError
from omconnect.connectors.sql._database import Database, TableName
from omconnect.runtime.testing import SinkDriver, SourceDriver, sink_batches
from omconnect.schemas import types as t
from omconnect.schemas.sql import json_checked_columns
from tests.support.sql_databases import SqlDatabase, open_database

from .sink_fixtures import TABLE, sink_config

UTC = dt.UTC
AT = dt.datetime(2024, 2, 29, 23, 59, 58, 123456)
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")

# column -> (SQL type, omconnect type, SQL literal, value read back), per dialect
Case = tuple[str, t.DataType, str, Any]
CASES: dict[str, dict[str, Case]] = {
    "postgresql": {
        "i2": ("int2", t.int16(), "-32768", -32768),
        "i4": ("int4", t.int32(), "2147483647", 2147483647),
        "i8": ("int8", t.int64(), "-9223372036854775808", -9223372036854775808),
        "f4": ("float4", t.float32(), "1.5", 1.5),
        "f8": ("float8", t.float64(), "0.1", 0.1),
        "num": (
            "numeric(20,6)",
            t.decimal(20, 6),
            "12345678901234.123456",
            Decimal("12345678901234.123456"),
        ),
        "num_free": ("numeric", t.decimal(38, 9), "1.000000001", Decimal("1.000000001")),
        "flag": ("bool", t.boolean(), "true", True),
        "txt": ("text", t.string(), "'héllo ''q'''", "héllo 'q'"),
        "vc": ("varchar(10)", t.string(), "'abc'", "abc"),
        "ch": ("char(3)", t.string(), "'ab'", "ab "),
        "raw": ("bytea", t.binary(), "'\\x00ff10'::bytea", b"\x00\xff\x10"),
        "day": ("date", t.date(), "'2024-02-29'", dt.date(2024, 2, 29)),
        "tod": ("time", t.time(), "'23:59:58.123456'", dt.time(23, 59, 58, 123456)),
        "ts": ("timestamp", t.timestamp(None), f"'{AT}'", AT),
        "tstz": (
            "timestamptz",
            t.timestamp("UTC"),
            f"'{AT}+02'",
            (AT - dt.timedelta(hours=2)).replace(tzinfo=UTC),
        ),
        "uid": ("uuid", t.uuid(), f"'{UID}'", UID),
        "doc": ("json", t.json(), """'{"a": [1, 2]}'""", '{"a": [1, 2]}'),
        "docb": ("jsonb", t.json(), """'{"a": [1, 2]}'""", '{"a": [1, 2]}'),
        "ints": ("int4[]", t.array(t.int32()), "'{1,NULL,3}'", [1, None, 3]),
        "texts": ("text[]", t.array(t.string()), "'{a,b}'", ["a", "b"]),
        "mood": ("mood", t.enum("sad", "ok", name="mood"), "'ok'", "ok"),
        # Arrays are read as their text (``_arrow_reads``): one of each element type.
        "i2s": ("int2[]", t.array(t.int16()), "'{-32768,NULL}'", [-32768, None]),
        "i8s": ("int8[]", t.array(t.int64()), "'{9223372036854775807}'", [2**63 - 1]),
        "f4s": ("float4[]", t.array(t.float32()), "'{1.5,-0}'", [1.5, -0.0]),
        "f8s": ("float8[]", t.array(t.float64()), "'{0.1,1e308,5e-324}'", [0.1, 1e308, 5e-324]),
        "nums": (
            "numeric[]",
            t.array(t.decimal(38, 9)),
            "'{1.000000001,-0}'",
            [Decimal("1.000000001"), Decimal(0)],
        ),
        "flags": ("bool[]", t.array(t.boolean()), "'{t,f,NULL}'", [True, False, None]),
        "chars": ("char(2)[]", t.array(t.string()), "'{a,bc}'", ["a ", "bc"]),
        "raws": ("bytea[]", t.array(t.binary()), "ARRAY['\\x00ff'::bytea]", [b"\x00\xff"]),
        "days": ("date[]", t.array(t.date()), "'{2024-02-29}'", [dt.date(2024, 2, 29)]),
        "tods": ("time[]", t.array(t.time()), "'{23:59:58.123456}'", [dt.time(23, 59, 58, 123456)]),
        "tss": ("timestamp[]", t.array(t.timestamp(None)), f"ARRAY['{AT}'::timestamp]", [AT]),
        "tstzs": (
            "timestamptz[]",
            t.array(t.timestamp("UTC")),
            f"ARRAY['{AT}+02'::timestamptz]",
            [(AT - dt.timedelta(hours=2)).replace(tzinfo=UTC)],
        ),
        "uids": ("uuid[]", t.array(t.uuid()), f"ARRAY['{UID}'::uuid]", [UID]),
        "docs": (
            "jsonb[]",
            t.array(t.json()),
            """ARRAY['{"a": [1, 2]}'::jsonb]""",
            ['{"a": [1, 2]}'],
        ),
        "moods": (
            "mood[]",
            t.array(t.enum("sad", "ok", name="mood")),
            "'{ok,sad,NULL}'",
            ["ok", "sad", None],
        ),
    },
    "mysql": {
        "i1": ("tinyint", t.int8(), "-128", -128),
        "u1": ("tinyint unsigned", t.uint8(), "255", 255),
        "b1": ("tinyint(1)", t.boolean(), "1", True),
        "i2": ("smallint", t.int16(), "-32768", -32768),
        "u2": ("smallint unsigned", t.uint16(), "65535", 65535),
        "i3": ("mediumint", t.int32(), "-8388608", -8388608),
        "i4": ("int", t.int32(), "2147483647", 2147483647),
        "u4": ("int unsigned", t.uint32(), "4294967295", 4294967295),
        "i8": ("bigint", t.int64(), "-9223372036854775808", -9223372036854775808),
        "u8": ("bigint unsigned", t.uint64(), "18446744073709551615", 18446744073709551615),
        "f4": ("float", t.float32(), "1.5", 1.5),
        "f8": ("double", t.float64(), "0.1", 0.1),
        "num": (
            "decimal(30,12)",
            t.decimal(30, 12),
            "123456789012345678.123456789012",
            Decimal("123456789012345678.123456789012"),
        ),
        "txt": ("text", t.string(), "'héllo ''q'''", "héllo 'q'"),
        "vc": ("varchar(10)", t.string(), "'abc'", "abc"),
        "ch": ("char(3)", t.string(), "'ab'", "ab"),
        "raw": ("blob", t.binary(), "x'00ff10'", b"\x00\xff\x10"),
        "vb": ("varbinary(4)", t.binary(), "x'0102'", b"\x01\x02"),
        "day": ("date", t.date(), "'2024-02-29'", dt.date(2024, 2, 29)),
        "tod": ("time(6)", t.time(), "'23:59:58.123456'", dt.time(23, 59, 58, 123456)),
        "dtm": ("datetime(6)", t.timestamp(None), f"'{AT}'", AT),
        "tsz": (
            "timestamp(6) null",
            t.timestamp("UTC"),
            "FROM_UNIXTIME(1709251198.123456)",
            dt.datetime.fromtimestamp(1709251198.123456, UTC),
        ),
        "yr": ("year", t.int16(), "2024", 2024),
        "bit1": ("bit(1)", t.boolean(), "b'1'", True),
        "bits": ("bit(12)", t.binary(), "b'101000000001'", b"\x0a\x01"),
        "mood": ("enum('sad','ok')", t.enum("sad", "ok"), "'ok'", "ok"),
        "doc": ("json", t.json(), """'{"a": [1, 2]}'""", '{"a": [1, 2]}'),
        "ltxt": ("longtext", t.string(), """'{"a": [1, 2]}'""", '{"a": [1, 2]}'),
    },
    "sqlite": {
        "i": ("integer", t.int64(), "-9223372036854775808", -9223372036854775808),
        "big": ("bigint", t.int64(), "9223372036854775807", 9223372036854775807),
        "r": ("real", t.float64(), "0.1", 0.1),
        "num": ("numeric(10,2)", t.decimal(10, 2), "12345678.25", Decimal("12345678.25")),
        "flag": ("boolean", t.boolean(), "1", True),
        "txt": ("text", t.string(), "'héllo ''q'''", "héllo 'q'"),
        "vc": ("varchar(10)", t.string(), "'abc'", "abc"),
        "raw": ("blob", t.binary(), "x'00ff10'", b"\x00\xff\x10"),
        "day": ("date", t.date(), "'2024-02-29'", dt.date(2024, 2, 29)),
        "ts": ("datetime", t.timestamp(None), f"'{AT}'", AT),
    },
}


def test_every_type_maps_and_round_trips(sql_database: SqlDatabase) -> None:
    dialect = sql_database.dialect
    cases = CASES[dialect]
    table = "types"
    if dialect == "postgresql":  # the enum type lives in the test's schema, found by path
        sql_database.execute(f"CREATE TYPE \"{sql_database.schema}\".mood AS ENUM ('sad', 'ok')")
    columns = ", ".join(f"{name} {sql}" for name, (sql, _, _, _) in cases.items())
    literals = ", ".join(literal for _, _, literal, _ in cases.values())
    names = ", ".join(cases)
    nulls = ", ".join("NULL" for _ in cases)
    statements = [
        f"CREATE TABLE {table} (k int PRIMARY KEY, {columns})",
        f"INSERT INTO {table} (k, {names}) VALUES (1, {literals})",
        f"INSERT INTO {table} (k, {names}) VALUES (2, {nulls})",
    ]
    if dialect == "postgresql":
        statements.insert(0, f'SET search_path TO "{sql_database.schema}"')
    sql_database.execute(*statements)

    config = {"url": sql_database.url, "tables": [sql_database.table("types")]}
    batches = SourceDriver("sql", config).read_to_end()
    rows = [row for b in batches for row in b.values.to_pylist()]
    schema = batches[0].schema
    for name, (sql, expected_type, _, value) in cases.items():
        assert schema.type_of(name) == expected_type, f"{dialect} {sql}"
        assert rows[0][name] == value, f"{dialect} {sql}: {rows[0][name]!r} != {value!r}"
        assert rows[1][name] is None, f"{dialect} {sql}: NULL read as {rows[1][name]!r}"


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [("postgresql", "interval"), ("postgresql", "point"), ("mysql", "set('a','b')")],
)
def test_a_type_without_mapping_names_table_column_and_type(
    tmp_path: Path, dialect: str, sql: str
) -> None:
    for database in open_database(dialect, tmp_path):
        table = f'"{database.schema}".odd' if dialect == "postgresql" else "odd"
        database.execute(f"CREATE TABLE {table} (k int PRIMARY KEY, strange {sql})")
        config = {"url": database.url, "tables": [database.table("odd")]}
        with pytest.raises(ConfigError, match=rf"{database.schema}\.odd\.strange has type"):
            SourceDriver("sql", config)


# JSON documents of every kind, as MariaDB keeps them: the text as it was written.
JSON_DOCUMENTS = [
    '{"a": [1, 2.5, {"b": null}], "é": "✓"}',
    '[1, "two", [3], {}]',
    '"text with \\"quotes\\""',
    "-12.5e3",
    "42",
    "true",
    "null",
    '  { "spaced" :  1 }  ',
]


def test_mariadb_json_columns_are_json_holding_their_text(tmp_path: Path) -> None:
    for database in open_database("mysql", tmp_path):
        database.execute(
            "CREATE TABLE docs (k int PRIMARY KEY, doc json, plain longtext, "
            "other longtext CHECK (char_length(other) < 100))"
        )
        rows = [
            {"k": k, "doc": document, "plain": document, "other": document}
            for k, document in enumerate(JSON_DOCUMENTS)
        ]
        rows.append({"k": len(rows), "doc": None, "plain": None, "other": None})
        with database.engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO docs VALUES (:k, :doc, :plain, :other)"), rows)

        config = {"url": database.url, "tables": [database.table("docs")]}
        batches = SourceDriver("sql", config).read_to_end()
        schema = batches[0].schema
        assert schema.type_of("doc") == t.json()
        assert schema.type_of("plain") == t.string()  # LONGTEXT without json_valid
        assert schema.type_of("other") == t.string()  # a check, but not json_valid
        values = pa.Table.from_batches([b.values for b in batches]).sort_by("k")
        assert values.schema.field("doc").type == pa.json_()
        assert values.column("doc").to_pylist() == [*JSON_DOCUMENTS, None]
        assert values.column("plain").to_pylist() == [*JSON_DOCUMENTS, None]


def test_mariadb_json_columns_are_found_by_their_quoted_names(tmp_path: Path) -> None:
    for database in open_database("mysql", tmp_path):
        database.execute(
            'CREATE TABLE docs (k int PRIMARY KEY, `say "hi"` json, `Mixed Case` json, '
            "`json_valid` longtext, `d2` json CHECK (json_length(`d2`) > 0))"
        )
        db = Database.open(database.url)
        try:
            info = db.reflect(TableName(database.schema, "docs"))
        finally:
            db.close()
        types = {field.name: field.type for field in info.fields}
        # MariaDB drops its own json_valid check from a JSON column declared with another.
        assert types == {
            "k": t.int32(),
            'say "hi"': t.json(),
            "Mixed Case": t.json(),
            "json_valid": t.string(),
            "d2": t.string(),
        }


@pytest.mark.parametrize("sql_mode", ["DEFAULT", "'ANSI_QUOTES'"])
def test_mariadb_check_clauses_name_json_columns_in_either_quoting(
    tmp_path: Path, sql_mode: str
) -> None:
    for database in open_database("mysql", tmp_path):
        database.execute(
            'CREATE TABLE docs (k int PRIMARY KEY, `say "hi"` json, plain longtext, '
            "CONSTRAINT either CHECK (json_valid(plain) OR plain = ''))"
        )
        with database.engine.connect() as connection:
            connection.execute(sa.text(f"SET SESSION sql_mode = {sql_mode}"))
            clauses = connection.execute(
                sa.text(
                    "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                    "WHERE CONSTRAINT_SCHEMA = :schema"
                ),
                {"schema": database.schema},
            ).scalars()
            assert json_checked_columns(clauses) == {'say "hi"'}


def test_a_json_field_is_written_to_a_mariadb_json_column(tmp_path: Path) -> None:
    documents = [*JSON_DOCUMENTS, None]
    rows = pa.table(
        {
            "id": pa.array(range(len(documents)), pa.int64()),
            "doc": pa.array(documents, pa.json_()),
        }
    )
    for database in open_database("mysql", tmp_path):
        sink = SinkDriver("sql", sink_config(database))
        batches = sink_batches(rows, topic="events", partition=0, first_offset=0, batch_rows=100)
        sink.put_all(batches)
        sink.flush(batches)
        sink.stop()

        with database.engine.connect() as connection:
            checks = connection.execute(
                sa.text(
                    "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                    "WHERE CONSTRAINT_SCHEMA = :schema AND TABLE_NAME = :table"
                ),
                {"schema": database.schema, "table": TABLE},
            ).scalars()
            assert list(checks) == ["json_valid(`doc`)"]  # what MariaDB's JSON type is
            with pytest.raises(sa.exc.OperationalError, match="CONSTRAINT"):
                connection.execute(sa.text(f"INSERT INTO {TABLE} (id, doc) VALUES (99, '{{')"))

        config = {"url": database.url, "tables": [database.table(TABLE)]}
        batches = SourceDriver("sql", config).read_to_end()
        assert batches[0].schema.type_of("doc") == t.json()
        values = pa.Table.from_batches([b.values for b in batches]).sort_by("id")
        assert values.column("doc").to_pylist() == documents
