"""The table the sql sink writes, kept in step with the records: created from the first
record schema (``create: true``; the key becomes the primary key in upsert mode), a new
nullable field added as a nullable column (``evolve: true``), and every change the table
cannot follow refused with one line naming the table, the column, its type in the table and
the records' type.

In upsert mode the table also holds the two position columns (``_sink_rows``), added when
missing, and must have a primary key or unique index on exactly the key columns. DDL runs on
the writer's connection and is committed before the data of a flush (MariaDB commits DDL
implicitly, so it must never share a transaction with data).

Several tasks (of one pipeline or several, in one process or several) may write one table and
meet a new field at the same moment: DDL runs under the writer's DDL lock of the table
(``BulkWriter.ddl_lock``), which reflects the table again and adds only what is still missing;
a table or column found already there when created or added counts as done.
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

DDL_ATTEMPTS = 5
"""How many times a change whose DDL found its table or column already there starts over."""

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
            raise self._missing_error()

    def _missing_error(self) -> ConnectorError:
        return ConnectorError(
            f"table {self.name} does not exist: create it, or set create: true to let the "
            "sink create it from the records"
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
        if shape is None or self._lacking(shape, schema):
            shape = self._change(schema, key)
            lacking = self._lacking(shape, schema)
            if lacking:
                raise ConnectorError(
                    f"table {self.name} lost column(s) {', '.join(map(repr, lacking))} while "
                    "the sink added them: is something else changing the table?"
                )
        for field in schema.fields:
            self._check_holds(field.name, shape.columns[field.name][0], field.type)
        if self.upsert and set(key) not in [set(u) for u in shape.unique_keys]:
            raise ConnectorError(
                f"table {self.name} has no primary key or unique index on "
                f"({', '.join(key)}): an upsert needs one: add it, or use mode: append"
            )
        columns = tuple(schema.names) + (tuple(POSITION_TYPES) if self.upsert else ())
        types = {name: self.writer.compile_type(shape.columns[name][0]) for name in columns}
        return WriteTarget(self.name, columns, key if self.upsert else (), types)

    def _lacking(self, shape: TableShape, schema: Schema) -> list[str]:
        """The columns rows of ``schema`` need that a table of ``shape`` lacks (in upsert
        mode the position columns too)."""
        needed = [*schema.names, *(POSITION_TYPES if self.upsert else ())]
        return [name for name in needed if name not in shape.columns]

    def _change(self, schema: Schema, key: tuple[str, ...]) -> TableShape:
        """Create the table, or add the columns it lacks for ``schema``, under the writer's
        DDL lock; returns the table's shape after.

        Under the lock the table is reflected again and only what is still missing is
        created or added: another task may have done it meanwhile. A CREATE TABLE or ADD
        COLUMN that fails because exactly its table or column is already there (made by a
        sink that takes no lock, as on SQLite) counts as done once a reflection shows it, and
        the change starts over.

        Raises:
            ConnectorError: the table is missing and ``create`` is off, or lacks a column the
                sink may not add.
            Exception: the driver's error of a DDL statement that failed otherwise.
        """
        for attempt in range(1, DDL_ATTEMPTS + 1):
            try:
                with self.writer.ddl_lock(self.name):
                    shape = self.shape(refresh=True)
                    if shape is None:
                        if not self.create:
                            raise self._missing_error()
                        self._create(schema, key)
                        changed = True
                    else:
                        additions = self._additions(shape, schema, key)
                        for name, column_type in additions:
                            self._add_column(name, column_type)
                        changed = bool(additions)
            except _AlreadyThere as there:
                shape = self.shape(refresh=True)
                made = shape is not None and (there.column is None or there.column in shape.columns)
                if not made or attempt == DDL_ATTEMPTS:
                    raise there.error from None
                continue
            if changed:
                shape = self.shape(refresh=True)
            if shape is None:
                raise ConnectorError(f"table {self.name} was dropped while the sink created it")
            return shape
        raise AssertionError("unreachable: every attempt returns, raises or starts over")

    def _additions(
        self, shape: TableShape, schema: Schema, key: tuple[str, ...]
    ) -> list[tuple[str, sa.types.TypeEngine[Any]]]:
        """The columns to add to a table of ``shape`` for rows of ``schema``, with their
        types.

        Raises:
            ConnectorError: a missing column the sink may not add (``evolve`` off, or a
                not-null field).
        """
        additions: list[tuple[str, sa.types.TypeEngine[Any]]] = []
        for field in schema.fields:
            if field.name in shape.columns:
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
            additions.append((field.name, self._sql_type(field.name, field.type, key)))
        if self.upsert:
            for name, column_type in POSITION_TYPES.items():
                if name in shape.columns:
                    continue
                if not self.evolve:
                    raise ConnectorError(
                        f"table {self.name} has no column {name!r}, which upsert mode "
                        "needs (it keeps each row's source position): add it as "
                        f"{describe(column_type, self.dialect)}, or set evolve: true"
                    )
                additions.append((name, column_type))
        return additions

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
        self._run_ddl(str(ddl).strip(), None)

    def _add_column(self, name: str, column_type: sa.types.TypeEngine[Any]) -> None:
        self._run_ddl(
            f"ALTER TABLE {self.writer.table(self.name)} ADD COLUMN {self.writer.quote(name)} "
            f"{self.writer.compile_type(column_type)} NULL",
            name,
        )

    def _run_ddl(self, statement: str, column: str | None) -> None:
        """Run ``statement``, which creates the table (``column`` None) or adds ``column``
        (not committed: ``ddl_lock`` commits)."""
        try:
            self.writer.execute(statement)
        except Exception as error:
            if self.writer.already_exists(error):
                raise _AlreadyThere(error, column) from error
            raise


class _AlreadyThere(Exception):
    """A CREATE TABLE (``column`` None) or ADD COLUMN failed with ``error``, which says that
    what it makes is already there."""

    def __init__(self, error: Exception, column: str | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.column = column
