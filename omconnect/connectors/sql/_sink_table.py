"""The table the sql sink writes, kept in step with the records: created from the first
record schema (``create: true``; the key becomes the primary key in upsert mode), a new
nullable field added as a nullable column (``evolve: true``), and every change the table
cannot follow refused with one line naming the table, the column, its type in the table and
the records' type.

In upsert mode the table also holds the two position columns (``_sink_rows``), added when
missing, and must have a primary key or unique index on exactly the key columns. DDL runs on
the writer's connection and is committed before the data of a flush (MariaDB commits DDL
implicitly, so it must never share a transaction with data).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from omconnect.connectors.api import ConnectorError
from omconnect.connectors.sql._database import TableName, TableShape, reflect_shape
from omconnect.connectors.sql._sink_rows import OFFSET_COLUMN, PARTITION_COLUMN
from omconnect.connectors.sql._sink_writer import BulkWriter, WriteTarget
from omconnect.schemas.schema import Schema
from omconnect.schemas.sql import NoSqlTypeError, describe, holds, sql_type

POSITION_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    PARTITION_COLUMN: sa.String(255),
    OFFSET_COLUMN: sa.BigInteger(),
}


class TargetTable:
    """One target table: its shape as last reflected, and the ``WriteTarget`` of each record
    schema it has been checked against."""

    def __init__(
        self,
        writer: BulkWriter,
        name: TableName,
        *,
        upsert: bool,
        create: bool,
        evolve: bool,
    ) -> None:
        self.writer = writer
        self.name = name
        self.upsert = upsert
        self.create = create
        self.evolve = evolve
        self.dialect = writer.engine.dialect
        self._shape: TableShape | None = None
        self._targets: dict[tuple[Schema, tuple[str, ...]], WriteTarget] = {}

    def shape(self, refresh: bool = False) -> TableShape | None:
        if self._shape is None or refresh:
            self._shape = reflect_shape(self.writer.engine, self.name)
        return self._shape

    def check_exists(self) -> None:
        """Raises ``ConnectorError`` when the table is missing and ``create`` is off."""
        if self.shape() is None and not self.create:
            raise ConnectorError(
                f"table {self.name} does not exist: create it, or set create: true to let "
                "the sink create it from the records"
            )

    def target(self, schema: Schema, key: tuple[str, ...]) -> WriteTarget:
        """Where rows of ``schema`` go, after creating or evolving the table as needed.

        Raises:
            ConnectorError: the table cannot hold the records (see the module docstring).
        """
        found = self._targets.get((schema, key))
        if found is None:
            found = self._targets[(schema, key)] = self._prepare(schema, key)
        return found

    def _prepare(self, schema: Schema, key: tuple[str, ...]) -> WriteTarget:
        shape = self.shape()
        if shape is None:
            self.check_exists()
            self._create(schema, key)
            shape = self.shape(refresh=True)
            assert shape is not None
        added = False
        for field in schema.fields:
            if field.name in shape.columns:
                self._check_holds(field.name, shape.columns[field.name][0], field.type)
                continue
            if not self.evolve:
                raise ConnectorError(
                    f"table {self.name} has no column {field.name!r} ({field.type} in the "
                    "records): add it, or set evolve: true to let the sink add it"
                )
            if not field.nullable:
                raise ConnectorError(
                    f"table {self.name}: the records have a new not-null column "
                    f"{field.name!r} ({field.type}); rows already in the table have no value "
                    "for it: add it with a default yourself, or make the field nullable"
                )
            self._add_column(field.name, self._sql_type(field.name, field.type, key))
            added = True
        if self.upsert:
            for name, column_type in POSITION_TYPES.items():
                if name not in shape.columns:
                    if not self.evolve:
                        raise ConnectorError(
                            f"table {self.name} has no column {name!r}, which upsert mode "
                            "needs (it keeps each row's source position): add it as "
                            f"{describe(column_type, self.dialect)}, or set evolve: true"
                        )
                    self._add_column(name, column_type)
                    added = True
        if added:
            shape = self.shape(refresh=True)
            assert shape is not None
        if self.upsert and set(key) not in [set(u) for u in shape.unique_keys]:
            raise ConnectorError(
                f"table {self.name} has no primary key or unique index on "
                f"({', '.join(key)}): an upsert needs one: add it, or use mode: append"
            )
        columns = tuple(schema.names) + (tuple(POSITION_TYPES) if self.upsert else ())
        types = {name: self.writer.compile_type(shape.columns[name][0]) for name in columns}
        return WriteTarget(self.name, columns, key if self.upsert else (), types)

    def _sql_type(self, column: str, dtype: Any, key: tuple[str, ...]) -> sa.types.TypeEngine[Any]:
        try:
            return sql_type(dtype, self.writer.dialect, key=column in key)
        except NoSqlTypeError as error:
            raise ConnectorError(f"table {self.name}: column {column!r}: {error}") from None

    def _check_holds(self, column: str, column_type: Any, dtype: Any) -> None:
        if not holds(column_type, dtype, self.writer.dialect):
            raise ConnectorError(
                f"table {self.name}: column {column!r} is {describe(column_type, self.dialect)} "
                f"in the table, and the records now have it as {dtype}, which it cannot hold: "
                "migrate the column, or write these records to another table"
            )

    def _create(self, schema: Schema, key: tuple[str, ...]) -> None:
        primary = set(key) if self.upsert else set()
        columns = [
            sa.Column(
                f.name,
                self._sql_type(f.name, f.type, key),
                primary_key=f.name in primary,
                nullable=f.nullable and f.name not in primary,
                autoincrement=False,
            )
            for f in schema.fields
        ]
        if self.upsert:
            columns += [sa.Column(n, t, nullable=True) for n, t in POSITION_TYPES.items()]
        definition = sa.Table(self.name.name, sa.MetaData(), *columns, schema=self.name.schema)
        ddl = CreateTable(definition, if_not_exists=True).compile(dialect=self.dialect)
        self.writer.execute(str(ddl).strip())
        self.writer.commit()

    def _add_column(self, name: str, column_type: sa.types.TypeEngine[Any]) -> None:
        self.writer.execute(
            f"ALTER TABLE {self.writer.table(self.name)} ADD COLUMN {self.writer.quote(name)} "
            f"{self.writer.compile_type(column_type)} NULL"
        )
        self.writer.commit()
