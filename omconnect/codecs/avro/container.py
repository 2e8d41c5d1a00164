"""Avro object container files, read block by block with the vectorised decoder and written
block by block from the vectorised encoder's bodies.

A file is ``Obj\\x01``, a metadata map (``avro.schema``, ``avro.codec``), a 16-byte sync marker,
then blocks: a record count, a byte length, that many (compressed) bytes holding the records
end to end, and the sync marker again. Reading and writing share that framing and the codecs
(``null``, ``deflate``, ``snappy``, ``bzip2``, ``xz``).

Records in a block have no boundaries: where one ends is known only by reading it. Blocks are
independent, though, so ``records`` walks the records of many blocks side by side: step k
moves every block's position over its k-th record, one field at a time, reading only lengths
and varints (like ``decode``'s reads, for all blocks at once). The record starts found make a
binary array of one body per record, which ``decode_batch_lenient`` decodes as usual.

Writing needs none of that: the bodies ``encode_batch`` returns lie end to end in one Arrow
buffer, so a block's records are a slice of it (``ContainerWriter``), and blocks are cut at
about ``BLOCK_BYTES`` from the bodies' offsets alone.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import os
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Protocol

import cramjam
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from omconnect.codecs.avro.cursor import BodyCursor, Rows
from omconnect.codecs.avro.decode import decode_batch_lenient, skip_value
from omconnect.codecs.avro.per_row import value_starts
from omconnect.codecs.avro.types import AvroType, expanded

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

# Blocks of more records than this, when no more than ``_FEW_BLOCKS`` of them are decoded
# together, are walked record after record by fastavro (see ``records``).
_LONG_BLOCK = 4096
_FEW_BLOCKS = 8

MAGIC = b"Obj\x01"
SYNC_SIZE = 16


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


def _long_bytes(value: int) -> bytes:
    """``value`` as Avro writes a long: a zigzag varint (what ``_read_long`` reads)."""
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag >= 0x80:
        out.append(zigzag & 0x7F | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def _deflate(data: memoryview) -> bytes:
    compressor = zlib.compressobj(wbits=-15)  # raw deflate: no zlib header or checksum
    return compressor.compress(data) + compressor.flush()


def _snappy_compress(data: memoryview) -> bytes:
    """Avro's snappy: a raw snappy block, then the big-endian CRC32 of the uncompressed data."""
    return bytes(cramjam.snappy.compress_raw(data)) + zlib.crc32(data).to_bytes(4, "big")


def _snappy_decompress(data: bytes) -> bytes:
    raw = bytes(cramjam.snappy.decompress_raw(data[:-4]))
    if zlib.crc32(raw).to_bytes(4, "big") != data[-4:]:
        raise ValueError("the CRC32 of its records does not match")
    return raw


@dataclass(frozen=True)
class _Codec:
    """How an Avro codec turns a block's records into the block's data, and back."""

    compress: Callable[[memoryview], bytes | memoryview]
    decompress: Callable[[bytes], bytes]


_CODECS = {
    "null": _Codec(lambda data: data, lambda data: data),
    "deflate": _Codec(_deflate, lambda data: zlib.decompress(data, -15)),
    "snappy": _Codec(_snappy_compress, _snappy_decompress),
    "bzip2": _Codec(bz2.compress, bz2.decompress),
    "xz": _Codec(lzma.compress, lzma.decompress),
}
_CORRUPT_DATA = (zlib.error, lzma.LZMAError, OSError, ValueError, cramjam.DecompressionError)


def _codec(name: str) -> _Codec:
    if name not in _CODECS:
        raise ValueError(f"Avro codec {name!r} is not supported (supported: {', '.join(_CODECS)})")
    return _CODECS[name]


def decompress(codec: str, data: bytes) -> bytes:
    """The records' bytes of a block written with ``codec``.

    Raises:
        ValueError: the codec is not supported, or the data is not valid for it.
    """
    decoder = _codec(codec).decompress
    try:
        return decoder(data)
    except _CORRUPT_DATA as err:
        raise ValueError(f"a {codec} block is corrupt: {err}") from err


BLOCK_BYTES = 16_000
"""About how many bytes of records ``ContainerWriter.write_blocks`` puts in a block (fastavro's
default too): ``records`` walks many blocks side by side, one record of each per step, so
files of small blocks read back faster than files of few large ones, and deflate gains
little from blocks much larger than its 32 kB window."""


class BinaryOutput(Protocol):
    """Where a container file is written: an open binary file or a pyarrow ``NativeFile``."""

    def write(self, data: bytes, /) -> object: ...


class ContainerWriter:
    """Writes one Avro object container file: the header when created, then blocks of the
    bodies ``encode_batch`` returns.

    Nothing is buffered: each call writes whole blocks, so a file cut short after a call
    still reads up to its last block. The writer never closes ``file``.
    """

    def __init__(
        self,
        file: BinaryOutput,
        schema: AvroType,
        codec: str = "deflate",
        metadata: Mapping[str, bytes] | None = None,
    ) -> None:
        """Write the header: ``metadata`` with ``avro.schema`` (``schema`` as JSON) and
        ``avro.codec``, then a random sync marker.

        Raises:
            ValueError: ``codec`` is not supported.
        """
        self._codec = _codec(codec)
        self._file = file
        self.sync = os.urandom(SYNC_SIZE)
        entries = {
            **(metadata or {}),
            "avro.schema": json.dumps(schema).encode(),
            "avro.codec": codec.encode(),
        }
        header = [MAGIC, _long_bytes(len(entries))]
        for key, value in entries.items():
            name = key.encode()
            header += [_long_bytes(len(name)), name, _long_bytes(len(value)), value]
        file.write(b"".join([*header, _long_bytes(0), self.sync]))

    def write_block(self, bodies: pa.Array) -> None:
        """Write ``bodies`` (binary, one record per value, no nulls) as one block; nothing
        when there are none."""
        _, data = _records_of(bodies)
        if len(bodies):
            self._write_block(len(bodies), data)

    def write_blocks(self, bodies: pa.Array, block_bytes: int = BLOCK_BYTES) -> None:
        """Write ``bodies`` (binary, one record per value, no nulls) as blocks of about
        ``block_bytes`` bytes of records each, in order; nothing when there are none."""
        offsets, data = _records_of(bodies)
        if not len(bodies):
            return
        # Block k holds the records starting in [k * block_bytes, (k + 1) * block_bytes).
        marks = np.arange(0, max(len(data), 1), block_bytes)
        bounds = np.append(np.unique(np.searchsorted(offsets[:-1], marks)), len(bodies))
        edges = offsets[bounds].tolist()
        for count, start, end in zip(np.diff(bounds).tolist(), edges[:-1], edges[1:], strict=True):
            self._write_block(count, data[start:end])

    def _write_block(self, count: int, records: memoryview) -> None:
        data = self._codec.compress(records)
        self._file.write(b"".join([_long_bytes(count), _long_bytes(len(data)), data, self.sync]))


def _records_of(bodies: pa.Array) -> tuple[I64, memoryview]:
    """The offsets of ``bodies`` (from 0, one more than there are bodies) and their bytes end
    to end: a view of the array's data buffer, not a copy."""
    if bodies.type not in (pa.binary(), pa.large_binary()):
        raise TypeError(f"Avro bodies must be binary, not {bodies.type}")
    if bodies.null_count:
        raise ValueError("a block cannot hold a null body")
    offset_type = np.int64 if bodies.type == pa.large_binary() else np.int32
    _, offsets_buffer, data_buffer = bodies.buffers()
    if not len(bodies) or data_buffer is None:
        return np.zeros(len(bodies) + 1, dtype=np.int64), memoryview(b"")
    offsets = np.frombuffer(
        offsets_buffer, dtype=offset_type, count=bodies.offset + len(bodies) + 1
    )[bodies.offset :].astype(np.int64)
    first = int(offsets[0])
    return offsets - first, memoryview(data_buffer)[first : int(offsets[-1])]


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

    The blocks are walked side by side, a record of every block per step. A few blocks of
    thousands of records each (a writer that puts a whole file in one block) would take as
    many steps, so those are walked by fastavro, record after record.

    Raises:
        ValueError: a block's records do not end exactly where the block ends.
    """
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    long = counts > _LONG_BLOCK
    if not long.any() or int(long.sum()) > _FEW_BLOCKS:
        return _records_side_by_side(data, offsets, counts, schema, np.zeros_like(long))
    stepped = _records_side_by_side(data, offsets, np.where(long, 0, counts), schema, long)
    short_starts = iter(np.split(stepped, np.cumsum(counts[~long])[:-1]))
    stream = io.BytesIO(data)
    pieces = []
    for block, is_long in enumerate(long.tolist()):
        if not is_long:
            pieces.append(next(short_starts))
            continue
        start, end = int(offsets[block]), int(offsets[block + 1])
        try:
            pieces.append(value_starts(stream, start, end, int(counts[block]), schema))
        except ValueError as err:
            raise ValueError(f"block {block} of these blocks is corrupt: {err}") from err
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


def _records_side_by_side(
    data: bytes, offsets: I64, counts: I64, schema: AvroType, walked_apart: Mask
) -> I64:
    """``records`` of the blocks, a record of every block per step; blocks ``walked_apart``
    (given a count of 0) are left alone."""
    lanes = pa.Array.from_buffers(
        pa.large_binary(), len(counts), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    cursor = BodyCursor(lanes, 0)
    steps = int(counts.max()) if len(counts) else 0
    found = np.zeros((steps, len(counts)), dtype=np.int64)
    for step in range(steps):
        active = counts > step
        rows: Rows = None if active.all() else np.flatnonzero(active)
        found[step] = cursor.pos
        skip_value(cursor, rows, schema, "")
    cursor.pos[walked_apart] = cursor.end[walked_apart]
    cursor.check_all_consumed()
    if cursor.bad.any():
        block = int(np.flatnonzero(cursor.bad)[0])
        raise ValueError(f"block {block} of these blocks is corrupt: {cursor.reasons[block]}")
    taken = np.arange(steps)[:, None] < counts[None, :]
    padding = int(cursor.end[-1]) - len(data) if len(counts) else 0  # the cursor's positions
    return found.T[taken.T] - padding


__all__ = [
    "BLOCK_BYTES",
    "BinaryOutput",
    "Block",
    "ContainerHeader",
    "ContainerWriter",
    "decode_blocks",
    "decompress",
    "read_blocks",
    "read_header",
    "records",
]
