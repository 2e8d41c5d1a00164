"""Avro object container files read block by block, with the vectorised decoder.

A file is ``Obj\\x01``, a metadata map (``avro.schema``, ``avro.codec``), a 16-byte sync marker,
then blocks: a record count, a byte length, that many (compressed) bytes holding the records
end to end, and the sync marker again.

Records in a block have no boundaries: where one ends is known only by reading it. Blocks are
independent, though, so ``records`` walks the records of many blocks side by side: step k
moves every block's position over its k-th record, one field at a time, reading only lengths
and varints (like ``decode``'s reads, for all blocks at once). The record starts found make a
binary array of one body per record, which ``decode_batch_lenient`` decodes as usual.
"""

from __future__ import annotations

import bz2
import json
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from omconnect.codecs.avro.cursor import BodyCursor, Rows
from omconnect.codecs.avro.decode import decode_batch_lenient
from omconnect.codecs.avro.per_row import decode_rows
from omconnect.codecs.avro.types import (
    AvroType,
    expanded,
    has_container,
    nullable_branches,
    record_fields,
    type_name,
    unwrap,
)

I64 = npt.NDArray[np.int64]

MAGIC = b"Obj\x01"
SYNC_SIZE = 16
_FIXED_SIZES = {"null": 0, "boolean": 1, "float": 4, "double": 8}


@dataclass(frozen=True)
class ContainerHeader:
    """What the header of a container file says.

    Attributes:
        schema: the writer's schema (parsed JSON).
        codec: the codec of the blocks (``null``, ``deflate``, ``snappy`` ...).
        sync: the 16-byte marker after every block.
        metadata: every metadata entry, raw.
    """

    schema: AvroType
    codec: str
    sync: bytes
    metadata: dict[str, bytes]


@dataclass(frozen=True)
class Block:
    """One block of a container file, its data still compressed."""

    count: int
    data: bytes


def _read_exactly(file: IO[bytes], size: int, what: str) -> bytes:
    data = file.read(size)
    if len(data) < size:
        raise EOFError(f"the file ends inside {what}")
    return data


def _read_long(file: IO[bytes], what: str) -> int:
    """One zigzag varint from ``file``."""
    value, shift = 0, 0
    while True:
        byte = _read_exactly(file, 1, what)[0]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (value >> 1) ^ -(value & 1)
        shift += 7
        if shift > 63:
            raise ValueError(f"overlong varint in {what}")


def read_header(file: IO[bytes]) -> ContainerHeader:
    """Read the header at the start of ``file``, leaving it at the first block.

    Raises:
        EOFError: the file ends inside the header.
        ValueError: the file is not an Avro container file.
    """
    magic = file.read(len(MAGIC))
    if magic != MAGIC:
        if MAGIC.startswith(magic):
            raise EOFError("the file ends inside the Avro header")
        raise ValueError("not an Avro container file (no Obj\\x01 magic)")
    metadata: dict[str, bytes] = {}
    while count := _read_long(file, "the Avro header"):
        if count < 0:  # a negative count is followed by the byte size of the entries
            count = -count
            _read_long(file, "the Avro header")
        for _ in range(count):
            key = _read_exactly(file, _read_long(file, "the Avro header"), "the Avro header")
            value = _read_exactly(file, _read_long(file, "the Avro header"), "the Avro header")
            metadata[key.decode()] = value
    sync = _read_exactly(file, SYNC_SIZE, "the Avro header")
    if "avro.schema" not in metadata:
        raise ValueError("the Avro header has no avro.schema")
    codec = metadata.get("avro.codec", b"null").decode()
    return ContainerHeader(json.loads(metadata["avro.schema"]), codec, sync, metadata)


def read_blocks(file: IO[bytes], header: ContainerHeader) -> Iterator[Block]:
    """The blocks after the header, in order, still compressed.

    Raises:
        EOFError: the file ends inside a block (it may still be being written).
        ValueError: a block is not followed by the file's sync marker.
    """
    while True:
        first = file.read(1)
        if not first:
            return
        file.seek(-1, 1)
        count = _read_long(file, "a block")
        size = _read_long(file, "a block")
        if count < 0 or size < 0:
            raise ValueError("a block has a negative record count or size")
        data = _read_exactly(file, size, "a block")
        if _read_exactly(file, SYNC_SIZE, "a block") != header.sync:
            raise ValueError("a block is not followed by the file's sync marker")
        yield Block(count, data)


def _snappy(data: bytes) -> bytes:
    try:
        import cramjam
    except ImportError as err:
        raise ValueError("snappy blocks need the cramjam package") from err
    raw = bytes(cramjam.snappy.decompress_raw(data[:-4]))
    if zlib.crc32(raw).to_bytes(4, "big") != data[-4:]:
        raise ValueError("a snappy block fails its CRC check")
    return raw


_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "null": lambda data: data,
    "deflate": lambda data: zlib.decompress(data, -15),
    "bzip2": bz2.decompress,
    "xz": lzma.decompress,
    "snappy": _snappy,
}


def decompress(codec: str, data: bytes) -> bytes:
    """The records' bytes of a block written with ``codec``."""
    if codec not in _DECOMPRESS:
        raise ValueError(f"Avro codec {codec!r} is not supported")
    return _DECOMPRESS[codec](data)


def decode_blocks(
    blocks: list[Block], codec: str, schema: AvroType, arrow_schema: pa.Schema
) -> pa.RecordBatch:
    """The records of ``blocks`` (of a file written with ``codec`` and the record
    ``schema``) as one record batch of ``arrow_schema``.

    Raises:
        ValueError: a block or a record is corrupt (the first one is named).
    """
    datas = [decompress(codec, block.data) for block in blocks]
    counts = np.array([block.count for block in blocks], dtype=np.int64)
    sizes = np.array([len(data) for data in datas], dtype=np.int64)
    joined = b"".join(datas)
    starts = records(joined, sizes, counts, expanded(schema))
    total = len(joined)
    large = total > 2**31 - 1
    offsets = np.append(starts, total).astype(np.int64 if large else np.int32)
    bodies = pa.Array.from_buffers(
        pa.large_binary() if large else pa.binary(),
        len(starts),
        [None, pa.py_buffer(offsets), pa.py_buffer(joined)],
    )
    batch, failed = decode_batch_lenient(bodies, schema, arrow_schema)
    if failed:
        row, error = next(iter(failed.items()))
        raise ValueError(f"record {row} of these blocks is corrupt: {error}")
    return batch


def records(data: bytes, sizes: I64, counts: I64, schema: AvroType) -> I64:
    """Where each record starts in ``data`` (blocks of ``sizes`` bytes holding ``counts``
    records each, end to end), in file order.

    Raises:
        ValueError: a block's records do not end exactly where the block ends.
    """
    ends = np.cumsum(sizes)
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    lanes = pa.Array.from_buffers(
        pa.large_binary(), len(sizes), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    cursor = BodyCursor(lanes, 0)
    steps = int(counts.max()) if len(counts) else 0
    found = np.zeros((steps, len(sizes)), dtype=np.int64)
    for step in range(steps):
        active = counts > step
        rows: Rows = None if active.all() else np.flatnonzero(active)
        found[step] = cursor.pos
        skip_value(cursor, rows, schema, "")
    cursor.check_all_consumed()
    if cursor.bad.any():
        block = int(np.flatnonzero(cursor.bad)[0])
        raise ValueError(f"block {block} of these blocks is corrupt: {cursor.reasons[block]}")
    taken = np.arange(steps)[:, None] < counts[None, :]
    padding = int(cursor.end[-1]) - len(data) if len(sizes) else 0  # the cursor's positions
    return found.T[taken.T] - padding


def skip_value(cursor: BodyCursor, rows: Rows, schema: AvroType, path: str) -> None:
    """Move the positions of ``rows`` past one value of ``schema``."""
    schema = unwrap(schema)
    branches = nullable_branches(schema)
    if branches is not None:
        null_index, value_index, inner = branches
        branch = cursor.varints(rows, path)
        has_value = branch == value_index
        cursor.fail_where(rows, ~has_value & (branch != null_index), f"{path}: bad union branch")
        if has_value.all():
            skip_value(cursor, rows, inner, path)
        elif has_value.any():
            skip_value(cursor, cursor.indices(rows)[has_value], inner, path)
        return
    name = type_name(schema)
    if name == "record":
        for field in record_fields(schema):
            skip_value(cursor, rows, field["type"], f"{path}.{field['name']}")
    elif name == "fixed":
        cursor.take_fixed(rows, int(schema["size"]), path)
    elif has_container(schema) or name == "union":
        indices = cursor.indices(rows)
        _, after, failures = decode_rows(
            cursor.stream(), cursor.pos[indices], cursor.end[indices], schema, pa.null()
        )
        cursor.pos[indices] = after
        for index, error in failures.items():
            cursor.fail(indices[index : index + 1], f"{path}: {error}")
    elif name in _FIXED_SIZES:
        cursor.take_fixed(rows, _FIXED_SIZES[name], path)
    elif name in ("int", "long", "enum"):
        cursor.varints(rows, path)
    elif name in ("string", "bytes"):
        cursor.take(rows, cursor.varints(rows, path), path)
    else:
        raise TypeError(f"{path}: unsupported Avro type {name!r}")


__all__ = [
    "Block",
    "ContainerHeader",
    "decode_blocks",
    "decompress",
    "read_blocks",
    "read_header",
    "records",
]
