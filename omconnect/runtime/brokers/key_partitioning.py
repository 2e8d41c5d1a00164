"""Keyed partitioning: which partition a message goes to, computed for a whole batch at once.

The hash is Kafka's murmur2 (the Java client's default partitioner), so a key lands on the same
partition number here as it would through a Kafka producer with the same partition count. It is
computed with numpy over the Arrow key buffers: the loop runs over 4-byte words of the longest
key, never over messages.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from omconnect.schemas.message_batch import MessageBatch

_SEED = np.uint32(0x9747B28C)
_M = np.uint32(0x5BD1E995)


def murmur2(keys: pa.Array) -> np.ndarray:
    """Kafka's murmur2 hash of every value of a binary array, as signed 32-bit integers.

    Null entries hash like empty keys; callers route null keys themselves.

    Args:
        keys: a ``binary`` (or ``string``) Arrow array.

    Returns:
        An int32 array, element ``i`` equal to ``Utils.murmur2(keys[i])`` of the Kafka client.
    """
    if keys.type == pa.string():
        keys = keys.cast(pa.binary())
    if keys.type != pa.binary():
        raise TypeError(f"murmur2 hashes binary keys, not {keys.type}")
    n = len(keys)
    _, offsets_buffer, data_buffer = keys.buffers()
    if offsets_buffer is None:
        offsets = np.zeros(n + 1, dtype=np.int64)
    else:
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32, count=n + 1, offset=keys.offset * 4)
        offsets = offsets.astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else None
    starts = offsets[:-1]
    lengths = np.diff(offsets)
    if keys.null_count:
        # Arrow allows a null slot to span bytes; a null key hashes as empty, not as garbage.
        lengths = np.where(keys.is_valid().to_numpy(zero_copy_only=False), lengths, 0)

    h = _SEED ^ lengths.astype(np.uint32)
    words = lengths // 4
    longest = int(words.max()) if n else 0
    for word in range(longest):
        rows = np.flatnonzero(words > word)
        at = starts[rows] + 4 * word
        assert data is not None
        k = (
            data[at].astype(np.uint32)
            | (data[at + 1].astype(np.uint32) << 8)
            | (data[at + 2].astype(np.uint32) << 16)
            | (data[at + 3].astype(np.uint32) << 24)
        )
        k *= _M
        k ^= k >> 24
        k *= _M
        h[rows] = (h[rows] * _M) ^ k

    tail = lengths % 4
    tail_at = starts + words * 4
    if data is not None:
        for size, shift in ((3, 16), (2, 8), (1, 0)):
            rows = np.flatnonzero(tail >= size)
            h[rows] ^= data[tail_at[rows] + size - 1].astype(np.uint32) << shift
    h[tail > 0] *= _M

    h ^= h >> 13
    h *= _M
    h ^= h >> 15
    return h.view(np.int32)


def partitions_for_keys(keys: pa.Array, partitions: int, null_key_partition: int) -> np.ndarray:
    """The partition of every message: murmur2 of the key (Kafka's rule), or
    ``null_key_partition`` where the key is null.

    Args:
        keys: the batch's binary key column.
        partitions: how many partitions the topic has (at least 1).
        null_key_partition: where messages without a key go; callers rotate it per batch.

    Returns:
        An int64 array of partition numbers, one per message.
    """
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    if partitions == 1:
        return np.zeros(len(keys), dtype=np.int64)
    positive = murmur2(keys).view(np.uint32) & np.uint32(0x7FFFFFFF)
    result = (positive % np.uint32(partitions)).astype(np.int64)
    if keys.null_count:
        nulls = keys.is_null().to_numpy(zero_copy_only=False)
        result[nulls] = null_key_partition
    return result


class KeyPartitioner:
    """A producer's partitioning of its batches: by key hash (``partitions_for_keys``), the
    messages without a key going to the next partition in turn with each batch that has any
    (Kafka's sticky rotation per batch), or all to an explicit partition."""

    def __init__(self) -> None:
        self._null_key_turn = 0

    def targets(self, messages: MessageBatch, partitions: int) -> np.ndarray:
        """The partition of every message of ``messages`` (an int64 array)."""
        keys = messages.keys
        null_key_partition = self._null_key_turn % partitions
        if keys.null_count:
            self._null_key_turn += 1
        return partitions_for_keys(keys, partitions, null_key_partition)

    def split(
        self, messages: MessageBatch, partitions: int, partition: int | None = None
    ) -> list[tuple[int, MessageBatch]]:
        """``messages`` as (partition, its messages in send order) pairs, in partition order.

        Raises:
            ValueError: ``partition`` is not one of the topic's ``partitions``.
        """
        if partition is not None:
            if not 0 <= partition < partitions:
                raise ValueError(
                    f"partition {partition} does not exist: the topic has {partitions}"
                )
            return [(partition, messages)]
        targets = self.targets(messages, partitions)
        if partitions == 1:
            return [(0, messages)]
        first = int(targets[0])
        if bool((targets == first).all()):
            return [(first, messages)]
        # One gather for the whole batch, then zero-copy slices; the stable sort keeps each
        # partition's messages in send order.
        order = np.argsort(targets, kind="stable")
        ordered = messages.take(order)
        numbers, starts = np.unique(targets[order], return_index=True)
        ends = [*starts[1:].tolist(), len(messages)]
        return [
            (int(number), ordered.slice(int(start), int(end) - int(start)))
            for number, start, end in zip(numbers, starts, ends, strict=True)
        ]
