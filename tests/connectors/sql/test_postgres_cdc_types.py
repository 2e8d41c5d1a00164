"""Arrays and enums through the ``postgres-cdc`` source against the machine's PostgreSQL.

Debezium publishes an array column as an array of its element type and an enum as a string
(``io.debezium.data.Enum``). One-dimensional arrays of the types ``_pg_text`` types arrive as
lists of them, the same in the snapshot's rows (selected as text and parsed as the stream's)
as in streamed inserts and updates: quoted, escaped and NULL elements, empty arrays. Enums,
and arrays of them, are strings. A two-dimensional array, which no list holds, goes to the
dead letter topic under ``errors.tolerance: all`` with its reason, and the other rows go on.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tests.connectors.sql import test_postgres_cdc
from tests.connectors.sql.test_postgres_cdc import Cdc
from tests.support.omconnect_process import omconnect, tail_topic

cdc = test_postgres_cdc.cdc  # the fixture: a schema, a slot name, a pipeline folder

UUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"

# Each column's type, the SQL of a value for it and that value as the event's JSON holds it.
COLUMNS: dict[str, tuple[str, str, Any]] = {
    "ints": ("int4[]", "ARRAY[1, NULL, -2147483648]", [1, None, -2147483648]),
    "bigs": ("int8[]", "'{}'", []),
    "names": (
        "text[]",
        r"""ARRAY['a b', '', NULL, 'x"y', 'NULL', 'back\slash', '{}', ',', 'zoë☃']""",
        ["a b", "", None, 'x"y', "NULL", "back\\slash", "{}", ",", "zoë☃"],
    ),
    "amounts": ("numeric(10,2)[]", "ARRAY[1.5, NULL, -2]", ["1.50", None, "-2.00"]),
    "ratios": ("float8[]", "'{NaN,-Infinity,0.25}'", [math.nan, -math.inf, 0.25]),
    "flags": ("bool[]", "ARRAY[true, NULL, false]", [True, None, False]),
    "ids": ("uuid[]", f"ARRAY['{UUID}'::uuid]", [UUID]),
    "days": ("date[]", "ARRAY['2026-01-31'::date, NULL]", ["2026-01-31", None]),
    "moments": (
        "timestamptz[]",
        "ARRAY['2026-01-31 12:30:00.5+02'::timestamptz]",
        ["2026-01-31T10:30:00.500000+00:00"],
    ),
    "docs": ("jsonb[]", """ARRAY['{"a": [1, "b"]}'::jsonb, 'null']""", ['{"a": [1, "b"]}', "null"]),
    "mood": ("{mood}", "'happy'", "happy"),
    "moods": ("{mood}[]", "'{sad,ok}'", "{sad,ok}"),
}


def create_table(cdc: Cdc) -> None:
    """The table ``typed``: an ``id`` and ``COLUMNS``; ``mood`` is an enum of the schema."""
    mood = f'"{cdc.schema}".mood'
    columns = ", ".join(
        f"{name} {kind.format(mood=mood)}" for name, (kind, _, _) in COLUMNS.items()
    )
    cdc.database.execute(
        f"CREATE TYPE {mood} AS ENUM ('sad', 'ok', 'happy')",
        f'CREATE TABLE "{cdc.schema}".typed (id int PRIMARY KEY, {columns})',
    )


def insert(cdc: Cdc, row_id: int) -> str:
    values = ", ".join(sql for _, sql, _ in COLUMNS.values())
    return f'INSERT INTO "{cdc.schema}".typed VALUES ({row_id}, {values})'


def expected_row(row_id: int, **changed: Any) -> dict[str, Any]:
    return {"id": row_id, **{name: value for name, (_, _, value) in COLUMNS.items()}, **changed}


def same(actual: Any, expected: Any) -> bool:
    """Equal as JSON (NaN as NaN, key order aside)."""
    return json.dumps(actual, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_arrays_are_lists_and_enums_strings_in_snapshot_and_stream(cdc: Cdc) -> None:
    """A row read by the snapshot, and rows streamed after it (an insert, an update), hold
    typed lists and strings alike: the snapshot's ``r`` event equals the stream's ``c``."""
    create_table(cdc)
    cdc.database.execute(insert(cdc, 1))
    cdc.pipeline(["typed"])
    cdc.run_once()
    cdc.database.execute(
        insert(cdc, 2),
        f"UPDATE \"{cdc.schema}\".typed SET ints = '{{7}}', names = ARRAY['c,d', NULL], "
        "mood = 'sad', moods = '{}' WHERE id = 1",
    )
    cdc.run_once()
    events = [e["value"] for e in cdc.events("typed")]
    assert [(e["op"], e["after"]["id"]) for e in events] == [("r", 1), ("c", 2), ("u", 1)]
    assert same(events[0]["after"], expected_row(1))
    assert same(events[1]["after"], expected_row(2))
    changed = {"ints": [7], "names": ["c,d", None], "mood": "sad", "moods": "{}"}
    assert same(events[2]["after"], expected_row(1, **changed))


def test_a_two_dimensional_array_is_dead_lettered_and_the_other_rows_go_on(cdc: Cdc) -> None:
    """Under ``errors.tolerance: all`` an array that is no list (two dimensions, bounds
    other than 1) goes to the dead letter topic as the server sent it, with the table,
    column and why; the other rows are published."""
    create_table(cdc)
    cdc.pipeline(["typed"], snapshot="never")
    with (cdc.folder / "cdc.yaml").open("a") as pipeline:
        pipeline.write("errors: {tolerance: all}\n")
    cdc.run_once()
    table = f'"{cdc.schema}".typed'
    cdc.database.execute(
        insert(cdc, 1),
        insert(cdc, 2),
        f"UPDATE {table} SET ints = '{{{{1,2}},{{3,4}}}}' WHERE id = 2",
        insert(cdc, 3),
        f"UPDATE {table} SET names = '[0:1]={{a,b}}', bigs = '{{5}}' WHERE id = 3",
        f"UPDATE {table} SET bigs = '{{6}}' WHERE id = 1",
    )
    ran = omconnect("run", "cdc.yaml", "--once", cwd=cdc.folder, timeout=180)
    assert ran.returncode == 0, ran.stderr
    events = [e["value"] for e in cdc.events("typed")]
    assert [(e["op"], e["after"]["id"]) for e in events] == [
        ("c", 1),
        ("c", 2),
        ("c", 3),
        ("u", 1),
    ]
    assert same(events[3]["after"], expected_row(1, bigs=[6]))
    dead = tail_topic("cdc.dlq", cdc.folder)
    assert [d["value"]["after"]["id"] for d in dead] == ["2", "3"]
    reasons = [d["headers"]["omconnect.error.reason"] for d in dead]
    assert (
        f'table {cdc.schema}.typed, column ints: "{{{{1,2}},{{3,4}}}}" does not fit '
        "array<int32>: it is a multi-dimensional array of 2 dimensions, where a list has one"
    ) in reasons[0]
    assert (
        f'table {cdc.schema}.typed, column names: "[0:1]={{a,b}}" does not fit '
        "array<string>: its first index is 0, where a list's is 1"
    ) in reasons[1]
    assert dead[0]["value"]["after"]["ints"] == "{{1,2},{3,4}}"
    assert dead[1]["value"]["after"]["bigs"] == "{5}"
