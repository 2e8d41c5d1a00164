"""What the sql sink tests share besides the databases of ``tests.support.sql_databases``:
reading a table back as Arrow, and driving the sink over one test database.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from omconnect.runtime.testing import standard_rows
from tests.support.sql_databases import SqlDatabase

TABLE = "orders"


def sink_config(database: SqlDatabase, **options: Any) -> dict[str, Any]:
    """The sql sink's options writing ``TABLE`` of ``database`` (created, upserted by key,
    deletes applied), with ``options`` on top."""
    return {
        "url": database.url,
        "table": database.table(TABLE),
        "mode": "upsert",
        "delete": True,
        "create": True,
        **options,
    }


def quoted_table(database: SqlDatabase, name: str = TABLE) -> str:
    quote = database.engine.dialect.identifier_preparer.quote
    return f"{quote(database.schema)}.{quote(name)}"


def read_table(database: SqlDatabase, name: str = TABLE) -> pa.Table:
    """Every row of table ``name`` (the standard empty rows when it does not exist yet)."""
    if not sa.inspect(database.engine).has_table(name, schema=database.schema):
        return standard_rows(0, 0)
    with database.engine.connect() as connection:
        result = connection.execute(sa.text(f"SELECT * FROM {quoted_table(database, name)}"))
        names = list(result.keys())
        rows = result.all()
    columns = {n: pa.array([row[i] for row in rows]) for i, n in enumerate(names)}
    table = pa.table(columns) if names else standard_rows(0, 0)
    return _floats_as_floats(table)


def _floats_as_floats(table: pa.Table) -> pa.Table:
    """Decimal columns (how MariaDB gives DOUBLE through some paths) as float64."""
    for i, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.float64()))
    return table


def scalar(database: SqlDatabase, sql: str) -> Any:
    with database.engine.connect() as connection:
        return connection.execute(sa.text(sql)).scalar()
