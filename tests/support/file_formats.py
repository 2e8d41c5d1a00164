"""Writing and reading the four file formats in tests, independently of the connectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.csv as arrow_csv
import pyarrow.json as arrow_json
import pyarrow.parquet as pq

from omconnect.schemas.arrow import from_arrow_schema
from omconnect.schemas.avro import to_avro_schema


def next_name(root: Path, extension: str) -> Path:
    """A new file name in ``root`` sorting after the files already there."""
    return root / f"part-{len(list(root.iterdir())):05d}.{extension}"


def write_csv(root: Path, rows: pa.Table) -> None:
    arrow_csv.write_csv(rows, next_name(root, "csv"))


def write_jsonl(root: Path, rows: pa.Table) -> None:
    with next_name(root, "jsonl").open("w") as file:
        for row in rows.to_pylist():
            file.write(_json_line(row) + "\n")


def write_parquet(root: Path, rows: pa.Table) -> None:
    pq.write_table(rows, next_name(root, "parquet"), row_group_size=128)


def write_avro(root: Path, rows: pa.Table) -> None:
    schema = fastavro.parse_schema(to_avro_schema(from_arrow_schema(rows.schema, "rows")))
    with next_name(root, "avro").open("wb") as file:
        fastavro.writer(file, schema, rows.to_pylist(), codec="deflate", sync_interval=2000)


def published_files(directory: Path, extension: str) -> list[Path]:
    """The files a reader sees: finished files, not hidden temporary ones."""
    return sorted(
        p for p in directory.iterdir() if p.suffix == f".{extension}" and not p.name.startswith(".")
    )


def read_back(directory: Path, extension: str) -> pa.Table:
    """Every published file of ``directory`` as one table (columns unified)."""
    tables = [read_file(p) for p in published_files(directory, extension)]
    if not tables:
        return pa.table({"id": pa.array([], pa.int64())})
    return pa.concat_tables(tables, promote_options="permissive")


def read_file(path: Path) -> pa.Table:
    if path.suffix == ".csv":
        return arrow_csv.read_csv(path)
    if path.suffix == ".jsonl":
        return arrow_json.read_json(path)
    if path.suffix == ".parquet":
        return pq.read_table(path)
    with path.open("rb") as file:
        return pa.Table.from_pylist(list(fastavro.reader(file)))


def _json_line(row: dict[str, Any]) -> str:
    import json

    return json.dumps(row)
