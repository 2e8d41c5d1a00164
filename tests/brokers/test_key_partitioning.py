"""Keyed partitioning matches Kafka's default partitioner and is computed per batch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from omconnect.runtime.brokers.key_partitioning import murmur2, partitions_for_keys

# Utils.murmur2 results from the Kafka client's own unit tests.
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def _murmur2_one(data: bytes) -> int:
    """Kafka's murmur2 written the plain way, one key at a time, as the reference."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & mask
    words = len(data) // 4
    for i in range(words):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = data[4 * words :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def test_murmur2_matches_the_kafka_client() -> None:
    keys = pa.array(list(KAFKA_VECTORS), pa.binary())
    assert murmur2(keys).tolist() == list(KAFKA_VECTORS.values())
    assert murmur2(keys.slice(2, 3)).tolist() == list(KAFKA_VECTORS.values())[2:5]


@given(st.lists(st.one_of(st.none(), st.binary(max_size=40)), max_size=60))
def test_murmur2_matches_the_reference_for_any_keys(keys: list[bytes | None]) -> None:
    hashed = murmur2(pa.array(keys, pa.binary())).tolist()
    assert hashed == [_murmur2_one(k or b"") for k in keys]


def test_partitions_follow_the_kafka_rule_and_route_null_keys() -> None:
    keys = [b"a", None, b"order-17", b"", None, b"zz"]
    partitions = partitions_for_keys(pa.array(keys, pa.binary()), 7, null_key_partition=5)
    expected = [(_murmur2_one(k) & 0x7FFFFFFF) % 7 if k is not None else 5 for k in keys]
    assert partitions.tolist() == expected
    assert partitions.dtype == np.int64


def test_one_partition_needs_no_hash() -> None:
    assert partitions_for_keys(pa.array([b"x", None]), 1, 0).tolist() == [0, 0]
