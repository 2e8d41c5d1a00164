"""Message id runs stand for exactly the strings the runtime built per row before runs existed,
and slicing, joining and filtering them commute with building the strings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omconnect.schemas import types as t
from omconnect.schemas.message_batch import MessageBatch
from omconnect.schemas.message_ids import MessageIdRuns
from omconnect.schemas.record import RecordBatch
from omconnect.schemas.schema import Schema
from omconnect.schemas.types import Field

_BYTE_HEX = np.frombuffer(b"".join(f"{v:02x}".encode() for v in range(256)), dtype=np.uint16)


def _old_join_ids(
    prefixes: list[str], starts: list[int], lengths: list[int], first_index: list[int], n: int
) -> pa.StringArray:
    """The per-row builder message ids had before runs (omconnect 1b4c6d9..92d6ff5), kept
    as the reference the runs must match byte for byte."""
    if n == 0:
        return pa.array([], pa.string())
    index = np.arange(n, dtype=np.int64) - np.repeat(np.asarray(starts, np.int64), lengths)
    index += np.repeat(np.asarray(first_index, np.int64), lengths)
    wide = int(index.max()) >= 1 << 32
    index_bytes = index.astype(">u8" if wide else ">u4").view(np.uint8).reshape(n, -1)
    digits = 2 * index_bytes.shape[1]
    width = 16 + 1 + digits
    data = np.empty((n, width), dtype=np.uint8)
    if len(prefixes) == 1:
        data[:, :17] = np.frombuffer(f"{prefixes[0]}-".encode(), dtype=np.uint8)
    else:
        segment = np.repeat(np.arange(len(prefixes)), lengths)
        prefix_bytes = np.frombuffer("".join(prefixes).encode("ascii"), dtype=np.uint8)
        data[:, :16] = prefix_bytes.reshape(-1, 16)[segment]
        data[:, 16] = ord("-")
    data[:, 17:] = _BYTE_HEX[index_bytes].view(np.uint8).reshape(n, digits)
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


_prefix = st.text("0123456789abcdef", min_size=16, max_size=16)
# Indexes around 2**32, so some batches need 16 index digits.
_first_index = st.one_of(
    st.integers(0, 1000), st.integers((1 << 32) - 50, (1 << 32) + 50), st.integers(0, 1 << 40)
)
_polled_runs = st.lists(st.tuples(_prefix, _first_index, st.integers(0, 40)), max_size=6)


def _derived(runs: list[tuple[str, int, int]]) -> MessageIdRuns:
    return MessageIdRuns.derived(
        [p for p, _, _ in runs], [f for _, f, _ in runs], [n for *_, n in runs]
    )


def _old(runs: list[tuple[str, int, int]]) -> pa.StringArray:
    lengths = [n for *_, n in runs]
    starts = [sum(lengths[:i]) for i in range(len(runs))]
    prefixes = [p for p, _, _ in runs]
    return _old_join_ids(prefixes, starts, lengths, [f for _, f, _ in runs], sum(lengths))


@given(_polled_runs)
def test_runs_build_the_same_strings_as_before(runs: list[tuple[str, int, int]]) -> None:
    built = _derived(runs).to_array()
    assert built.type == pa.string()
    assert built.equals(_old(runs))
    assert len(_derived(runs)) == len(built)


@given(_polled_runs, st.integers(0, 250), st.one_of(st.none(), st.integers(0, 250)))
def test_slicing_runs_commutes_with_building_strings(
    runs: list[tuple[str, int, int]], offset: int, length: int | None
) -> None:
    ids = _derived(runs)
    strings = ids.to_array()
    assert ids.slice(offset, length).to_array().equals(strings.slice(offset, length))


@given(st.lists(_polled_runs, min_size=1, max_size=4), st.data())
def test_joining_and_filtering_runs_commute_with_building_strings(
    batches: list[list[tuple[str, int, int]]], data: st.DataObject
) -> None:
    parts = [_derived(runs) for runs in batches]
    joined = MessageIdRuns.concat(parts)
    strings = pa.concat_arrays([p.to_array() for p in parts])
    assert joined.to_array().equals(strings)
    assert joined == strings
    flags = data.draw(st.lists(st.booleans(), min_size=len(joined), max_size=len(joined)))
    mask = pa.array(flags, pa.bool_())
    assert joined.filter(mask).equals(strings.filter(mask))
    rows = data.draw(st.lists(st.integers(0, max(len(joined) - 1, 0)), max_size=len(joined)))
    assert joined.take(pa.array(rows, pa.int64())).equals(strings.take(pa.array(rows, pa.int64())))


@given(_polled_runs)
def test_the_stored_form_reads_back_as_the_same_runs(runs: list[tuple[str, int, int]]) -> None:
    ids = _derived(runs)
    assert MessageIdRuns.from_bytes(ids.to_bytes()) == ids


def test_consecutive_slices_join_back_into_one_run() -> None:
    ids = _derived([("0123456789abcdef", 7, 100)])
    rejoined = MessageIdRuns.concat([ids.slice(0, 30), ids.slice(30, 50), ids.slice(80)])
    assert rejoined == ids and len(rejoined.runs) == 1


def test_an_index_width_is_kept_by_slices_of_a_wide_batch() -> None:
    ids = _derived([("0123456789abcdef", 0, 2), ("fedcba9876543210", 1 << 32, 1)])
    assert ids.slice(0, 1).to_array().to_pylist() == ["0123456789abcdef-0000000000000000"]


@pytest.mark.parametrize(
    "stored",
    [
        b"",
        b"{}",
        b'[["0123", 0, 1, 8]]',
        b'[["0123456789abcdef", 0, 1, 12]]',
        b'[["0123456789abcdef", 4294967295, 2, 8]]',
    ],
)
def test_unreadable_runs_are_refused(stored: bytes) -> None:
    with pytest.raises(ValueError):
        MessageIdRuns.from_bytes(stored)


_ITEMS = Schema("items", (Field("id", t.int64()),))


def _batch(rows: int, ids: MessageIdRuns | pa.StringArray | None) -> RecordBatch:
    values = pa.record_batch({"id": pa.array(range(rows), pa.int64())})
    return RecordBatch(values=values, schema=_ITEMS, message_ids=ids)


def test_a_record_batch_reads_runs_as_strings_and_keeps_them_runs_when_cut() -> None:
    ids = _derived([("0123456789abcdef", 0, 3), ("fedcba9876543210", 9, 2)])
    batch = _batch(5, ids)
    assert batch.message_ids is not None and batch.message_ids.equals(ids.to_array())
    assert batch.carried_message_ids is ids
    cut = batch.slice(1, 3)
    assert cut.carried_message_ids == ids.slice(1, 3)
    joined = RecordBatch.concat([batch, cut])
    assert isinstance(joined.carried_message_ids, MessageIdRuns)
    assert joined.message_ids == pa.concat_arrays([ids.to_array(), ids.slice(1, 3).to_array()])
    kept = batch.filter(pa.array([True, False, True, True, False]))
    assert kept.message_ids is not None
    assert kept.message_ids.to_pylist() == [ids.to_array()[i].as_py() for i in (0, 2, 3)]
    assert dataclasses.replace(batch, stream="s").carried_message_ids is ids
    assert dataclasses.replace(batch, message_ids=None).message_ids is None


def test_a_record_batch_joins_runs_with_strings_as_strings() -> None:
    ids = _derived([("0123456789abcdef", 0, 2)])
    joined = RecordBatch.concat([_batch(2, ids), _batch(1, pa.array(["cdc-1"]))])
    assert joined.message_ids is not None
    assert joined.message_ids.to_pylist() == [*ids.to_array().to_pylist(), "cdc-1"]
    with pytest.raises(ValueError, match="3 entries for 2 rows"):
        _batch(2, _derived([("0123456789abcdef", 0, 3)]))


def test_a_message_batch_counts_runs_at_their_compact_size() -> None:
    ids = _derived([("0123456789abcdef", 0, 1000)])
    with_runs = MessageBatch.build([b"v"] * 1000, timestamps=1, message_ids=ids)
    without = MessageBatch.build([b"v"] * 1000, timestamps=1)
    id_column = without.table.column("message_id").nbytes
    assert with_runs.nbytes < without.nbytes - id_column + 100
    assert with_runs.message_ids.equals(ids.to_array())
    assert with_runs.header_dict(3)["oms.message_id"] == b"0123456789abcdef-00000003"
    strings = MessageBatch.build([b"v"] * 1000, timestamps=1, message_ids=ids.to_array())
    mixed = MessageBatch.concat([with_runs.slice(0, 10), strings.slice(10, 5)])
    assert mixed.id_runs is None and mixed.message_ids.equals(ids.to_array().slice(0, 15))
    assert MessageBatch.concat([with_runs.slice(0, 10), with_runs.slice(10)]).id_runs == ids
    assert with_runs.take([5, 1]).message_ids.to_pylist() == [
        "0123456789abcdef-00000005",
        "0123456789abcdef-00000001",
    ]
