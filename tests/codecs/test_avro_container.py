"""Avro container files: what ``ContainerWriter`` writes, fastavro and our reader read back
the same, for every codec; what fastavro writes, our reader reads; broken files are refused
with an error that names what is wrong."""

from __future__ import annotations

import datetime
import decimal
import io
import json
import re
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa
import pytest

from omconnect.codecs.avro import encode_batch
from omconnect.codecs.avro.container import (
    BLOCK_BYTES,
    Block,
    ContainerWriter,
    decode_blocks,
    decompress,
    read_blocks,
    read_header,
)
from omconnect.schemas.arrow import from_arrow_schema, to_arrow_schema
from omconnect.schemas.avro import from_avro_schema, to_avro_schema

CODECS = ["null", "deflate", "snappy", "bzip2", "xz"]
_JAN_2024_US = int(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC).timestamp()) * 1_000_000


def _rows(count: int, first: int = 0) -> pa.RecordBatch:
    ids = np.arange(first, first + count, dtype=np.int64)
    return pa.record_batch(
        {
            "id": pa.array(ids),
            "name": pa.array([None if i % 7 == 0 else f"name-{i}" * (i % 5) for i in ids.tolist()]),
            "amount": pa.array(ids * 0.25),
            "price": pa.array(
                [decimal.Decimal(i) / 100 for i in ids.tolist()], pa.decimal128(12, 2)
            ),
            "at": pa.array(_JAN_2024_US + ids * 1_000_001, pa.timestamp("us", "UTC")),
            "flag": pa.array(ids % 3 == 0),
        }
    )


def _avro_schema(batch: pa.RecordBatch) -> dict[str, Any]:
    return to_avro_schema(from_arrow_schema(batch.schema, "row"))


def _write(
    path: Path, batches: list[pa.RecordBatch], codec: str, block_bytes: int = BLOCK_BYTES
) -> None:
    schema = _avro_schema(batches[0])
    with path.open("wb") as file:
        writer = ContainerWriter(file, schema, codec)
        for batch in batches:
            writer.write_blocks(encode_batch(batch, schema), block_bytes)


def _read_ours(path: Path) -> pa.Table:
    with path.open("rb") as file:
        header = read_header(file)
        arrow_schema = to_arrow_schema(from_avro_schema(header.schema))
        blocks = list(read_blocks(file, header))
    if not blocks:
        return arrow_schema.empty_table()
    return pa.table(decode_blocks(blocks, header.codec, header.schema, arrow_schema))


def _read_fastavro(path: Path) -> tuple[dict[str, str], list[Any]]:
    """The file's metadata and records, as fastavro reads them."""
    with path.open("rb") as file:
        reader = fastavro.reader(file)
        return dict(reader.metadata), list(reader)


def _same_rows(table: pa.Table, batch: pa.RecordBatch) -> bool:
    return table.select(batch.schema.names).to_pydict() == batch.to_pydict()


@pytest.mark.parametrize("codec", CODECS)
def test_written_files_read_back_by_fastavro_and_by_our_reader(tmp_path: Path, codec: str) -> None:
    path = tmp_path / "rows.avro"
    batches = [_rows(700), _rows(300, first=700)]
    _write(path, batches, codec, block_bytes=2_000)
    expected = pa.Table.from_batches(batches)
    metadata, records = _read_fastavro(path)
    assert metadata["avro.codec"] == codec
    assert records == expected.to_pylist()
    with path.open("rb") as file:
        assert len(list(fastavro.block_reader(file))) > 10, "the test needs many blocks"
    assert _read_ours(path).select(expected.column_names).equals(expected)


@pytest.mark.parametrize("codec", CODECS)
def test_files_fastavro_writes_are_read_by_our_reader(tmp_path: Path, codec: str) -> None:
    path = tmp_path / "rows.avro"
    batch = _rows(1000)
    schema = fastavro.parse_schema(_avro_schema(batch))
    with path.open("wb") as file:
        fastavro.writer(file, schema, batch.to_pylist(), codec=codec, sync_interval=2_000)
    assert _same_rows(_read_ours(path), batch)


def test_blocks_hold_about_block_bytes_of_records(tmp_path: Path) -> None:
    path = tmp_path / "rows.avro"
    batch = _rows(2000)
    bodies = encode_batch(batch, _avro_schema(batch))
    longest = max(len(body) for body in bodies.to_pylist())
    _write(path, [batch], "null", block_bytes=4_096)
    with path.open("rb") as file:
        sizes = [len(block.data) for block in read_blocks(file, read_header(file))]
    assert sum(sizes) == sum(len(body) for body in bodies.to_pylist())
    assert len(sizes) > 5
    # Block k holds the records that start in [k * 4096, (k + 1) * 4096).
    assert all(abs(size - 4_096) < longest for size in sizes[:-1]), sizes


def test_the_default_blocks_are_fastavros_size(tmp_path: Path) -> None:
    path = tmp_path / "rows.avro"
    _write(path, [_rows(5000)], "null")
    with path.open("rb") as file:
        sizes = [len(block.data) for block in read_blocks(file, read_header(file))]
    assert len(sizes) > 5
    assert all(0.9 * BLOCK_BYTES < size < 1.1 * BLOCK_BYTES for size in sizes[:-1]), sizes


def test_one_block_of_many_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.avro"
    batch = _rows(5_000)
    schema = _avro_schema(batch)
    with path.open("wb") as file:
        ContainerWriter(file, schema, "deflate").write_block(encode_batch(batch, schema))
    with path.open("rb") as file:
        (block,) = fastavro.block_reader(file)
        assert block.num_records == 5_000
    assert _read_fastavro(path)[1] == batch.to_pylist()
    assert _same_rows(_read_ours(path), batch)


def test_a_few_long_blocks_among_short_ones_keep_file_order(tmp_path: Path) -> None:
    """Blocks of thousands of records are walked apart from the short ones (record after
    record); the records still come back in file order."""
    path = tmp_path / "rows.avro"
    sizes = [5_000, 300, 6_000, 200]
    firsts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).tolist()
    batches = [_rows(size, first) for size, first in zip(sizes, firsts, strict=True)]
    schema = _avro_schema(batches[0])
    with path.open("wb") as file:
        writer = ContainerWriter(file, schema, "null")
        for batch in batches:
            writer.write_block(encode_batch(batch, schema))
    assert _same_rows(
        _read_ours(path), pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
    )


def test_a_corrupt_long_block_is_named(tmp_path: Path) -> None:
    batch = _rows(5_000)
    schema = _avro_schema(batch)
    bodies = encode_batch(batch, schema)
    data = b"".join(bodies.to_pylist())
    cut = data[: len(data) - 3]  # the last record is cut short
    header = read_header(_header_only(tmp_path, schema))
    block = Block(count=5_000, data=cut)
    with pytest.raises(ValueError, match="block 0 of these blocks is corrupt"):
        decode_blocks([block], "null", header.schema, to_arrow_schema(from_avro_schema(schema)))


def _header_only(tmp_path: Path, schema: dict[str, Any]) -> io.BytesIO:
    buffer = io.BytesIO()
    ContainerWriter(buffer, schema, "null")
    buffer.seek(0)
    return buffer


def test_a_file_without_rows_is_a_header_only(tmp_path: Path) -> None:
    path = tmp_path / "empty.avro"
    batch = _rows(0)
    schema = _avro_schema(batch)
    with path.open("wb") as file:
        writer = ContainerWriter(file, schema, "snappy", {"written.by": b"a test"})
        header_size = file.tell()
        writer.write_blocks(encode_batch(batch, schema))
        writer.write_block(encode_batch(batch, schema))
    assert path.stat().st_size == header_size
    metadata, records = _read_fastavro(path)
    assert records == [] and metadata["written.by"] == "a test"
    assert json.loads(metadata["avro.schema"]) == schema
    assert _read_ours(path).num_rows == 0


def test_a_truncated_file_reads_up_to_its_last_whole_block(tmp_path: Path) -> None:
    path = tmp_path / "rows.avro"
    _write(path, [_rows(1000)], "deflate", block_bytes=2_000)
    whole = path.read_bytes()
    path.write_bytes(whole[:-30])
    with path.open("rb") as file:
        header = read_header(file)
        blocks = read_blocks(file, header)
        complete = [next(blocks) for _ in range(3)]
        with pytest.raises(EOFError, match="the file ends inside a block"):
            list(blocks)
    assert sum(block.count for block in complete) < 1000
    path.write_bytes(whole[:20])
    with path.open("rb") as file, pytest.raises(EOFError, match="inside the Avro header"):
        read_header(file)


def test_a_bad_sync_marker_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rows.avro"
    _write(path, [_rows(100)], "null")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the sync marker after the last block
    path.write_bytes(bytes(data))
    with path.open("rb") as file:
        header = read_header(file)
        with pytest.raises(ValueError, match="not followed by the file's sync marker"):
            list(read_blocks(file, header))


def test_a_bad_magic_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rows.avro"
    _write(path, [_rows(10)], "null")
    path.write_bytes(b"Obj\x02" + path.read_bytes()[4:])
    with path.open("rb") as file, pytest.raises(ValueError, match=re.escape("(no Obj\\x01 magic)")):
        read_header(file)


def test_a_snappy_block_with_a_wrong_crc_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rows.avro"
    _write(path, [_rows(10)], "snappy")
    data = bytearray(path.read_bytes())
    data[-17] ^= 0xFF  # the block's CRC32 comes just before the sync marker
    path.write_bytes(bytes(data))
    with path.open("rb") as file:
        (block,) = read_blocks(file, read_header(file))
    with pytest.raises(ValueError, match="snappy block is corrupt: the CRC32"):
        decompress("snappy", block.data)


def test_a_corrupt_deflate_block_is_named() -> None:
    with pytest.raises(ValueError, match="a deflate block is corrupt"):
        decompress("deflate", b"\xff" * 20)


def test_unsupported_codecs_and_null_bodies_are_refused() -> None:
    schema = _avro_schema(_rows(1))
    with pytest.raises(ValueError, match="Avro codec 'lz4' is not supported"):
        ContainerWriter(io.BytesIO(), schema, "lz4")
    with pytest.raises(ValueError, match="Avro codec 'lz4' is not supported"):
        decompress("lz4", b"")
    with pytest.raises(ValueError, match="null body"):
        ContainerWriter(io.BytesIO(), schema).write_blocks(pa.array([b"x", None]))
