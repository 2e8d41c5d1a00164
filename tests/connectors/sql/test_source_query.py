"""The sql source's ``query:`` on every dialect: a join read as a snapshot (chunked by ``key``,
or streamed in one statement without it), an incremental query correct at the boundary, and
the refusals: ``query`` with ``tables``, a cursor outside the result, invalid SQL (one line,
through the real CLI)."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from omconnect.connectors.api import ConfigError
from omconnect.runtime.testing import MemoryOffsetReader, SourceDriver
from omconnect.schemas import types as t
from tests.connectors.sql.test_database import assert_one_line
from tests.support.omconnect_process import omconnect
from tests.support.sql_databases import SqlDatabase


def shop(database: SqlDatabase) -> tuple[sa.Table, sa.Table]:
    """customers(id, name) and orders(id, customer_id, amount numeric(10,2), seq)."""
    metadata = database.metadata()
    customers = sa.Table(
        "customers",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(32), nullable=False),
    )
    orders = sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("customer_id", sa.Integer, nullable=False),
        sa.Column("amount", sa.Numeric(10, 2), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
    )
    metadata.create_all(database.engine)
    with database.engine.begin() as connection:
        connection.execute(customers.insert(), [{"id": c, "name": f"c{c}"} for c in range(1, 6)])
    return customers, orders


def add_orders(database: SqlDatabase, orders: sa.Table, rows: list[dict[str, Any]]) -> None:
    with database.engine.begin() as connection:
        connection.execute(orders.insert(), rows)


def join_query(database: SqlDatabase) -> str:
    """Orders of the customers 1 to 4 (not 5) with the customer's name; the text has a
    ``%`` and a ``:`` that are the user's, not parameters."""
    schema = "" if database.dialect == "sqlite" else f"{database.schema}."
    return (
        f"SELECT o.id AS order_id, c.name AS customer, o.amount, o.seq "
        f"FROM {schema}orders o JOIN {schema}customers c ON c.id = o.customer_id "
        "WHERE c.name LIKE 'c%' AND c.name <> 'x:y' AND c.id < 5;"
    )


def read_all(
    database: SqlDatabase, offsets: MemoryOffsetReader | None = None, **options: Any
) -> list[dict[str, Any]]:
    config = {"url": database.url, "query": join_query(database), **options}
    source = SourceDriver("sql", config, offsets or MemoryOffsetReader())
    rows: list[dict[str, Any]] = []
    for batch in source.read_to_end():
        assert batch.stream == "query"
        rows.extend(batch.values.to_pylist())
        source.commit(batch.positions)
    source.stop()
    return rows


def expected_rows(ids: range) -> list[dict[str, Any]]:
    return [
        {"order_id": i, "customer": f"c{1 + i % 5}", "amount": Decimal(i) / 4, "seq": i // 10}
        for i in ids
        if 1 + i % 5 < 5
    ]


@pytest.mark.parametrize("key", [["order_id"], []], ids=["chunked-by-key", "streamed"])
def test_a_join_query_is_read_as_a_snapshot(sql_database: SqlDatabase, key: list[str]) -> None:
    _, orders = shop(sql_database)
    rows = [
        {"id": i, "customer_id": 1 + i % 5, "amount": Decimal(i) / 4, "seq": i // 10}
        for i in range(100)
    ]
    add_orders(sql_database, orders, rows)
    config = {"url": sql_database.url, "query": join_query(sql_database), "key": key}
    source = SourceDriver("sql", {**config, "chunk_size": 7})
    batches = source.read_to_end()
    schema = batches[0].schema
    assert list(schema.names) == ["order_id", "customer", "amount", "seq"]
    assert schema.type_of("amount") == t.decimal(10, 2)
    # As the tables' own columns map (SQLite's INTEGER is 64-bit).
    assert schema.type_of("order_id") == (
        t.int64() if sql_database.dialect == "sqlite" else t.int32()
    )
    read = sorted(
        (row for b in batches for row in b.values.to_pylist()), key=lambda r: r["order_id"]
    )
    assert read == expected_rows(range(100))
    if key:
        assert max(b.values.num_rows for b in batches) == 7, "chunks of chunk_size rows"


def test_an_incremental_query_reads_new_rows_once(sql_database: SqlDatabase) -> None:
    _, orders = shop(sql_database)
    add_orders(
        sql_database,
        orders,
        [
            {"id": i, "customer_id": 1 + i % 5, "amount": Decimal(i) / 4, "seq": i // 10}
            for i in range(60)
        ],
    )
    offsets = MemoryOffsetReader()
    options = {"mode": "incremental", "cursor": "seq", "key": "order_id", "chunk_size": 6}
    first = read_all(sql_database, offsets, **options)
    assert sorted(r["order_id"] for r in first) == [r["order_id"] for r in expected_rows(range(60))]
    # Rows at the last cursor value (5) that commit later, and a newer one.
    late = [{"id": 100 + i, "customer_id": 1, "amount": Decimal(1), "seq": 5} for i in range(4)]
    add_orders(sql_database, orders, [*late, {"id": 200, "customer_id": 2, "amount": 2, "seq": 6}])
    add_orders(sql_database, orders, [{"id": 300, "customer_id": 5, "amount": 3, "seq": 7}])
    second = read_all(sql_database, offsets, **options)
    assert sorted(r["order_id"] for r in second) == [100, 101, 102, 103, 200]
    assert read_all(sql_database, offsets, **options) == []


def test_query_with_tables_or_neither_is_refused(sql_database: SqlDatabase) -> None:
    shop(sql_database)
    both = {
        "url": sql_database.url,
        "query": join_query(sql_database),
        "tables": [sql_database.table("orders")],
    }
    with pytest.raises(ValidationError, match="`tables` or `query`, not both"):
        SourceDriver("sql", both)
    with pytest.raises(ValidationError, match="give `tables`"):
        SourceDriver("sql", {"url": sql_database.url})


def test_a_cursor_or_key_outside_the_result_is_refused(sql_database: SqlDatabase) -> None:
    shop(sql_database)
    config = {"url": sql_database.url, "query": join_query(sql_database), "mode": "incremental"}
    with pytest.raises(ConfigError, match="query's result has no column 'customer_id'") as bad:
        SourceDriver("sql", {**config, "cursor": "customer_id", "key": "order_id"})
    assert bad.value.key == "cursor[0]"
    with pytest.raises(ConfigError, match="incremental query needs `key`") as keyless:
        SourceDriver("sql", {**config, "cursor": "seq"})
    assert keyless.value.key == "key"


def test_invalid_sql_in_the_query_is_one_line(sql_database: SqlDatabase, tmp_path: Path) -> None:
    shop(sql_database)
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: sql-query-errors
            source:
              connector: sql
              url: {sql_database.url}
              query: "SELEC id FROM orders WHERE"
            topic: errors
            """
        )
    )
    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path, timeout=120)
    assert ran.returncode != 0
    assert_one_line(ran.stderr + ran.stdout, "source.query", "cannot run the query", "syntax")
