"""The shared database layer of the sql connector: names from config are found by reflection
(globs included) and quoted, hostile names are refused, and driver errors reach the user as
one line without the password, through the real CLI."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from omconnect.connectors.api import ConfigError
from omconnect.connectors.sql._database import Database, describe_url, mask_url
from omconnect.runtime.testing import SourceDriver
from tests.support.omconnect_process import omconnect
from tests.support.sql_databases import SqlDatabase

PASSWORD = "s3cret-pw"


def make_tables(database: SqlDatabase, *names: str) -> None:
    metadata = database.metadata()
    for name in names:
        sa.Table(name, metadata, sa.Column("id", sa.Integer, primary_key=True))
    metadata.create_all(database.engine)


HEAVY_MODULES = ("sqlalchemy", "adbc_driver", "connectorx", "pymysql", "psycopg")

LOADED_AFTER_PLUGINS = """
import json, sys
from omconnect.connectors.api.plugins import load_plugins, lookup
load_plugins()
lookup("source", "sql"), lookup("sink", "sql")
print(json.dumps(sorted(sys.modules)))
"""


def test_loading_the_plugins_imports_no_database_library() -> None:
    """Every command loads every plugin: the sql plugin modules must not pull SQLAlchemy or a
    driver in (they cost a pipeline run that never touches a database ~0.3 s)."""
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", LOADED_AFTER_PLUGINS], capture_output=True, check=True
        ).stdout
    )
    assert "omconnect.connectors.sql.source" in loaded
    assert "omconnect.connectors.sql.sink" in loaded
    heavy = [m for m in loaded if m.split(".")[0].startswith(HEAVY_MODULES)]
    assert heavy == []


def test_mask_and_describe_never_show_the_password() -> None:
    url = f"postgresql://reader:{PASSWORD}@db.example:5432/shop"
    assert PASSWORD not in mask_url(url)
    assert mask_url(url) == "postgresql://reader:***@db.example:5432/shop"
    assert describe_url(url) == 'postgresql database "shop" on db.example:5432 as reader'
    assert mask_url("not a url at all") == "***"


def test_globs_expand_over_reflection(sql_database: SqlDatabase) -> None:
    make_tables(sql_database, "orders", "order_lines", "customers")
    database = Database.open(sql_database.url)
    try:
        found = database.resolve_tables(
            [sql_database.table("order*"), sql_database.table("customers")]
        )
        every = database.resolve_tables([f"{sql_database.schema}.*"])
    finally:
        database.close()
    assert [str(n) for n in found] == [
        sql_database.table("order_lines"),
        sql_database.table("orders"),
        sql_database.table("customers"),
    ]
    assert sorted(n.name for n in every) == ["customers", "order_lines", "orders"]


@pytest.mark.parametrize(
    "hostile",
    ['orders"; DROP TABLE orders; --', "orders` ; DROP TABLE orders; #", "orders' OR '1'='1"],
)
def test_a_hostile_table_name_is_refused_and_nothing_runs(
    sql_database: SqlDatabase, hostile: str
) -> None:
    make_tables(sql_database, "orders")
    config = {"url": sql_database.url, "tables": [f"{sql_database.schema}.{hostile}"]}
    with pytest.raises(ConfigError, match="no table") as refused:
        SourceDriver("sql", config)
    assert refused.value.key == "tables[0]"
    assert sa.inspect(sql_database.engine).has_table(
        "orders", schema=None if sql_database.dialect == "sqlite" else sql_database.schema
    )


def test_a_hostile_column_name_is_refused(sql_database: SqlDatabase) -> None:
    make_tables(sql_database, "orders")
    config = {
        "url": sql_database.url,
        "tables": [sql_database.table("orders")],
        "mode": "incremental",
        "cursor": "id; DELETE FROM orders",
    }
    with pytest.raises(ConfigError, match="has no column") as refused:
        SourceDriver("sql", config)
    assert refused.value.key == "cursor[0]"


def test_a_quoted_name_with_odd_characters_is_read(sql_database: SqlDatabase) -> None:
    odd = 'Odd "Name" ; x'
    if sql_database.dialect == "mysql":
        odd = "Odd `Name` ; x"
    table = sa.Table(
        odd,
        sql_database.metadata(),
        sa.Column("Key Col", sa.Integer, primary_key=True, autoincrement=False),
    )
    table.create(sql_database.engine)
    with sql_database.engine.begin() as connection:
        connection.execute(table.insert(), [{"Key Col": i} for i in range(1, 6)])
    config = {
        "url": sql_database.url,
        "tables": [f"{sql_database.schema}.{odd}"],
        "chunk_size": 2,
    }
    batches = SourceDriver("sql", config).read_to_end()
    assert sorted(v for b in batches for v in b.values.column("Key Col").to_pylist()) == list(
        range(1, 6)
    )


def pipeline_file(tmp_path: Path, table: str, retry_timeout: str = "2s") -> str:
    """``p.yaml`` in ``tmp_path``: table ``table`` of the database ``${SQL_URL}`` to a topic,
    retrying for ``retry_timeout``."""
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: sql-errors
            source:
              connector: sql
              url: ${{SQL_URL}}
              tables: ["{table}"]
            topic: errors
            errors: {{retry_timeout: {retry_timeout}, retry_max_delay: 0.5s}}
            """
        )
    )
    return "p.yaml"


def run_pipeline(tmp_path: Path, url: str, table: str) -> tuple[int, str]:
    pipeline = pipeline_file(tmp_path, table)
    ran = omconnect("run", pipeline, "--once", cwd=tmp_path, env={"SQL_URL": url}, timeout=120)
    return ran.returncode, ran.stderr + ran.stdout


def assert_one_line(output: str, *expected: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert PASSWORD not in output and "Traceback" not in output
    for part in expected:
        assert part in lines[0], lines[0]


def assert_failed_after_retries(output: str, *expected: str) -> None:
    """The run retried (warning lines say so), then failed with one error line holding
    ``expected``; no traceback, no password."""
    assert "retrying" in output, output
    failure = "\n".join(line for line in output.splitlines() if " ERROR " in line)
    assert_one_line(failure, *expected)
    assert PASSWORD not in output and "Traceback" not in output


def test_unreachable_database_is_retried_then_one_line(tmp_path: Path) -> None:
    """A server that is down may come back: the run retries for ``errors.retry_timeout``,
    then fails with one line saying what to check."""
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test"
    code, output = run_pipeline(tmp_path, url, "public.orders")
    assert code != 0
    assert_failed_after_retries(output, "127.0.0.1:1", "server runs", "`url`")


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://omconnect_nobody:{PASSWORD}@127.0.0.1:5432/test",
        f"mysql://root:{PASSWORD}@127.0.0.1:3306/test",
    ],
)
def test_wrong_credentials_are_one_line(tmp_path: Path, url: str) -> None:
    code, output = run_pipeline(tmp_path, url, "orders")
    assert code != 0
    assert_one_line(output, "source.url", "user name and password")


def test_missing_table_is_one_line(tmp_path: Path, sql_database: SqlDatabase) -> None:
    make_tables(sql_database, "orders")
    url = sql_database.url
    code, output = run_pipeline(tmp_path, url, sql_database.table("ordrs"))
    assert code != 0
    assert_one_line(output, "source.tables[0]", "ordrs", "did you mean")


KEY_TEXTS = ["plain", "it's", "back\\slash", "per%cent", "$1 dollar", "tab\there", "é ünï", "ok"]


@pytest.mark.parametrize(
    ("key_type", "keys"),
    [
        (sa.Text, KEY_TEXTS),
        (sa.Numeric(12, 3), [decimal.Decimal(v) for v in ("-1.5", "0.001", "2", "99999.999")]),
        (
            sa.DateTime(timezone=True),
            [dt.datetime(2024, 3, d, 1, 2, 3, 456789, tzinfo=dt.UTC) for d in (1, 2, 30, 31)],
        ),
        (sa.Date, [dt.date(2024, 1, d) for d in (1, 2, 3)]),
        (sa.Uuid, [uuid.UUID(int=i * 2**100 + 7) for i in range(4)]),
    ],
    ids=["text", "numeric", "timestamptz", "date", "uuid"],
)
def test_snapshot_chunk_bounds_of_every_key_kind_resume_exactly(
    sql_database: SqlDatabase, key_type: Any, keys: list[Any]
) -> None:
    """Chunk bounds read back from positions go into the next statement (on PostgreSQL as
    literals where their text is exact, else bound): one row per chunk must give every row
    once, quotes, backslashes, zones and fractions included."""
    table = sa.Table(
        "keyed",
        sql_database.metadata(),
        sa.Column("k", key_type if key_type is not sa.Text else sa.String(40), primary_key=True),
        sa.Column("v", sa.Integer),
    )
    table.create(sql_database.engine)
    with sql_database.engine.begin() as connection:
        connection.execute(table.insert(), [{"k": k, "v": i} for i, k in enumerate(keys)])
    config = {"url": sql_database.url, "tables": [f"{sql_database.schema}.keyed"], "chunk_size": 1}
    batches = SourceDriver("sql", config).read_to_end()
    values = [v for b in batches for v in b.values.column("v").to_pylist()]
    assert sorted(values) == list(range(len(keys)))


def test_a_validated_source_keeps_the_tables_it_found_for_its_streams_and_tasks(
    postgres_database: SqlDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run validates the connector it runs: its streams and task configs need no second
    look at the database."""
    from omconnect.connectors.sql import source as sql_source

    postgres_database.execute(
        f"CREATE TABLE {postgres_database.table('first_t')} (id int PRIMARY KEY)",
        f"CREATE TABLE {postgres_database.table('second_t')} (id int PRIMARY KEY)",
    )
    connector = sql_source.SqlSource(
        sql_source.SqlSourceSpec(url=postgres_database.url, tables=[postgres_database.table("*_t")])
    )
    connector.validate()

    def unreachable(_config: object) -> None:
        raise AssertionError("the database was asked again")

    monkeypatch.setattr(sql_source, "_open", unreachable)
    schema = postgres_database.schema
    assert connector.streams() == [f"{schema}.first_t", f"{schema}.second_t"]
    assert [c.tables for c in connector.task_configs(2)] == [  # type: ignore[attr-defined]
        [f"{schema}.first_t"],
        [f"{schema}.second_t"],
    ]
