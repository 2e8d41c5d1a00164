"""Finding the JSON values in message bodies, without a Python object per row.

Two tools cut JSON text apart, and this module owns both; what the pieces mean as typed values
is ``json_values``'s business:

- ``pyarrow.json``, which parses every body of an array in one call (``read_json_objects``),
  with an explicit schema or by inference. A body it refuses is found by halving the bodies
  until the refused ones stand alone (``read_json_objects_refusing``).
- a structural scan for what ``pyarrow.json`` cannot parse into a column (a map is an object
  keyed by each key's text, a JSON column holds any document) and for the names of the
  top-level fields of each body: quotes, escapes and brackets are found with numpy over the
  whole buffer, and each container is split into its members at the commas and colons of its
  own depth (``split_members``, ``object_keys``). The value texts are cut out of the same
  buffer (``Members.values``) and keep the text they were written with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from omconnect.codecs.json_text import data_bytes, text_offsets

Mask = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]
UnexpectedFields = Literal["ignore", "infer", "error"]
Container = Literal["object", "array"]

_MIN_BLOCK_SIZE = 1 << 20
_NO_FIELDS = pa.schema([])
# Codes of the bytes the structural scan looks at; every other byte is 0.
_OPEN_OBJECT, _OPEN_ARRAY, _CLOSE, _COMMA, _COLON, _QUOTE, _BACKSLASH = range(1, 8)
_OPENER = {"object": _OPEN_OBJECT, "array": _OPEN_ARRAY}
_SCAN_CODE = np.zeros(256, np.uint8)
for _char, _code in (
    ("{", _OPEN_OBJECT),
    ("[", _OPEN_ARRAY),
    ("}", _CLOSE),
    ("]", _CLOSE),
    (",", _COMMA),
    (":", _COLON),
    ('"', _QUOTE),
    ("\\", _BACKSLASH),
):
    _SCAN_CODE[ord(_char)] = _code


def read_json_objects(
    bodies: pa.Array, schema: pa.Schema | None = None, unexpected: UnexpectedFields = "infer"
) -> pa.Table:
    """All ``bodies`` parsed in one ``pyarrow.json`` call, one row each.

    Args:
        bodies: one JSON object per element, none null.
        schema: the explicit schema of the parse; None infers every field.
        unexpected: what becomes of fields ``schema`` lacks (``pyarrow.json``'s
            ``unexpected_field_behavior``).

    Raises:
        pyarrow.ArrowInvalid: a body is malformed, or a value does not fit its type.
        ValueError: a body is null, or does not hold exactly one object.
    """
    n = len(bodies)
    if bodies.null_count:
        raise ValueError("a body is null")
    if not n:  # pyarrow.json refuses an empty text
        return schema.empty_table() if schema is not None else pa.table({})
    bodies = bodies.cast(pa.binary())
    lines = pc.binary_join_element_wise(bodies, b"\n", b"")
    offsets = text_offsets(lines)
    data = lines.buffers()[2]
    text = data[int(offsets[0]) : int(offsets[-1])] if n and data is not None else b""
    longest = pc.max(pc.binary_length(bodies)).as_py() or 0
    table = pa_json.read_json(
        pa.BufferReader(text),
        read_options=pa_json.ReadOptions(block_size=max(_MIN_BLOCK_SIZE, 2 * longest + 2)),
        parse_options=pa_json.ParseOptions(
            explicit_schema=schema,
            unexpected_field_behavior=unexpected,
            newlines_in_values=bool((data_bytes(bodies) == ord("\n")).any()),
        ),
    )
    if table.num_rows != n:
        raise ValueError(f"{n} bodies held {table.num_rows} JSON objects")
    return table


def read_json_objects_refusing(
    bodies: pa.BinaryArray, schema: pa.Schema, unexpected: UnexpectedFields, what: str
) -> tuple[pa.Table, dict[int, Exception]]:
    """``read_json_objects`` of the bodies that parse, when a parse of them all failed: a
    body that does not is found by halving, fails with ``pyarrow``'s reason (said of
    ``what``) and is read as ``{}``."""
    refused: dict[int, Exception] = {}
    _find_refused(bodies, 0, (schema, unexpected, what), refused)
    return read_json_objects(refused_as_empty(bodies, refused), schema, unexpected), refused


def refused_as_empty(bodies: pa.BinaryArray, refused: dict[int, Exception]) -> pa.BinaryArray:
    """``bodies`` with the ``refused`` ones replaced by ``{}``."""
    if not refused:
        return bodies
    bad = np.zeros(len(bodies), dtype=np.bool_)
    bad[list(refused)] = True
    return pc.if_else(pa.array(bad), pa.scalar(b"{}", pa.binary()), bodies)


@dataclass(frozen=True)
class ObjectKeys:
    """The top-level keys of JSON objects.

    Attributes:
        names: every key of every object (unescaped), in order.
        objects: the index of the object each key is in.
        refused: the bodies that are not one well-formed JSON object (they have no keys),
            with the reason.
    """

    names: pa.StringArray
    objects: I64
    refused: dict[int, Exception]


def object_keys(bodies: pa.Array) -> ObjectKeys:
    """The top-level keys of every body (one JSON object each, none null). The bodies are
    parsed once for their syntax only (no value is read), then scanned."""
    bodies = bodies.cast(pa.binary())
    refused: dict[int, Exception] = {}
    try:
        read_json_objects(bodies, _NO_FIELDS, "ignore")
    except (pa.ArrowInvalid, ValueError):
        _find_refused(bodies, 0, (_NO_FIELDS, "ignore", "the body"), refused)
    members = split_members(refused_as_empty(bodies, refused), "object")
    return ObjectKeys(unescaped_keys(members.keys), members.rows, refused)


class Members:
    """The members of JSON containers, one container per text; the texts of values are cut
    out of the buffer only when asked for.

    Attributes:
        texts: the texts split, whitespace trimmed (``null`` where null or a misfit).
        offsets: the members of text ``i`` are ``offsets[i]:offsets[i + 1]`` (int32).
        nulls: true where the text is null (or ``null``, or a misfit).
        misfits: true where the text is neither ``null`` nor a container of the kind asked.
        keys: the text of each object member's key (a JSON string), whitespace trimmed.
        rows: the index of the text each member is in.
    """

    def __init__(
        self,
        texts: pa.StringArray,
        offsets: npt.NDArray[np.int32],
        masks: tuple[Mask, Mask],
        keys: pa.StringArray,
        value_spans: tuple[I64, I64],
        rows: I64,
    ) -> None:
        self.texts = texts
        self.offsets = offsets
        self.nulls, self.misfits = masks
        self.keys = keys
        self.rows = rows
        self._value_spans = value_spans

    def values(self, members: I64 | None = None) -> pa.StringArray:
        """The value texts of ``members`` (ascending indices), or of all members."""
        starts, ends = self._value_spans
        if members is not None:
            starts, ends = starts[members], ends[members]
        return _span_texts(self.texts, starts, ends)

    def null_mask(self) -> pa.BooleanArray | None:
        return pa.array(self.nulls) if self.nulls.any() else None


def split_members(texts: pa.Array, container: Container) -> Members:
    """Split each text (a JSON object or array, as ``container`` says, or ``null``) into its
    members; a text that is neither is a misfit, split as ``null``.

    The texts must be well-formed JSON (they were parsed before). One pass over the bytes
    finds quotes, backslashes and the structural bytes; the rest works on those positions.
    """
    opener = _OPENER[container]
    texts = pc.utf8_trim_whitespace(pc.fill_null(texts.cast(pa.string()), "null"))
    n = len(texts)
    nulls = numpy_mask(pc.equal(texts, "null"))
    first = pc.utf8_slice_codeunits(texts, 0, 1)
    containers = numpy_mask(pc.equal(first, "{" if opener == _OPEN_OBJECT else "["))
    misfits = ~(nulls | containers)
    if misfits.any():
        texts = pc.if_else(pa.array(misfits), pa.scalar("null", pa.string()), texts)
        nulls |= misfits
    positions, codes = _structure(texts)
    step = np.where(codes <= _OPEN_ARRAY, 1, np.where(codes == _CLOSE, -1, 0)).astype(np.int8)
    depth_after = np.cumsum(step, dtype=np.int32)
    depth_before = depth_after - step
    # The tokens of each container's own level, in order: its opener, the commas and colons
    # between its members, its closer ({ : , : } for an object of two members, [ , ] for an
    # array of two elements). Each member lies between two neighbouring tokens.
    own = ((depth_before == 0) & (codes == opener)) | ((depth_after == 0) & (codes == _CLOSE))
    own |= (depth_before == 1) & ((codes == _COMMA) | (codes == _COLON))
    positions, codes = positions[own], codes[own]
    container_index = np.cumsum(codes == opener) - 1
    keys = pa.array([], pa.string())
    if opener == _OPEN_OBJECT:
        colons = np.flatnonzero(codes == _COLON)
        keys = _span_texts(texts, positions[colons - 1] + 1, positions[colons])
        starts, ends = positions[colons] + 1, positions[colons + 1]
        member_container = container_index[colons]
    else:
        before = np.flatnonzero(codes != _CLOSE)
        starts, ends = positions[before] + 1, positions[before + 1]
        member_container = container_index[before]
        maybe_empty = np.flatnonzero((codes[before] == opener) & (codes[before + 1] == _CLOSE))
        empty = maybe_empty[~_has_text(texts, starts[maybe_empty], ends[maybe_empty])]
        real = np.ones(len(starts), dtype=np.bool_)
        real[empty] = False  # "[]" and "[ ]" hold no element
        starts, ends, member_container = starts[real], ends[real], member_container[real]
    container_rows = np.flatnonzero(containers & ~nulls)
    member_rows = container_rows[member_container]
    counts = np.bincount(member_rows, minlength=n)
    member_offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=member_offsets[1:])
    return Members(texts, member_offsets, (nulls, misfits), keys, (starts, ends), member_rows)


def member_texts(members: Members, names: pa.StringArray, name: str, rows: int) -> pa.Array:
    """For every one of the ``rows`` objects split into ``members`` (whose unescaped key
    ``names`` are given), the value text of its member called ``name``: null where it has
    none, the last one where it has several."""
    matches = np.flatnonzero(numpy_mask(pc.equal(names, name)))
    where = np.full(rows, -1, dtype=np.int64)
    where[members.rows[matches]] = np.arange(len(matches))
    return members.values(matches).take(pa.array(where, mask=where < 0))


def unescaped_keys(keys: pa.StringArray) -> pa.StringArray:
    """JSON string texts as the strings they hold."""
    if not (data_bytes(keys) == ord("\\")).any():
        return pc.utf8_slice_codeunits(keys, 1, -1)
    wrapped = pc.binary_join_element_wise('{"v":', keys, "}", "")
    table = read_json_objects(wrapped, pa.schema([pa.field("v", pa.string())]), "ignore")
    return single_chunk(table.column(0))


def single_chunk(column: pa.ChunkedArray) -> pa.Array:
    """``column`` as one array (its only chunk, without a copy, when it has one)."""
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def numpy_mask(mask: pa.Array | Mask) -> Mask:
    """A boolean Arrow array (or a numpy mask) as a numpy mask, null as false."""
    if isinstance(mask, np.ndarray):
        return mask
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=np.bool_)


def _find_refused(
    bodies: pa.BinaryArray,
    first: int,
    parse: tuple[pa.Schema, UnexpectedFields, str],
    refused: dict[int, Exception],
) -> None:
    """Add the bodies of ``bodies`` (index ``first`` onwards) that do not parse."""
    schema, unexpected, what = parse
    half = len(bodies) // 2
    for start, part in ((0, bodies.slice(0, half)), (half, bodies.slice(half))):
        if not len(part):
            continue
        try:
            read_json_objects(part, schema, unexpected)
        except (pa.ArrowInvalid, ValueError) as error:
            if len(part) == 1:
                refused[first + start] = ValueError(f"{what}: {error}")
            else:
                _find_refused(part, first + start, parse, refused)


def _structure(texts: pa.StringArray) -> tuple[I64, npt.NDArray[np.uint8]]:
    """The positions (into ``texts``' data buffer) and codes of the structural bytes of
    ``texts`` that are outside strings."""
    offsets = text_offsets(texts)
    region = data_bytes(texts)
    codes_all = _SCAN_CODE[region]
    positions = np.flatnonzero(codes_all)
    codes = codes_all[positions]
    positions += int(offsets[0]) if len(texts) else 0
    quotes = codes == _QUOTE
    if (codes == _BACKSLASH).any():
        quotes &= ~_escaped(positions, codes)
    inside = (np.cumsum(quotes, dtype=np.uint8) & 1).astype(np.bool_)  # parity survives wrapping
    structural = (codes < _QUOTE) & ~inside
    return positions[structural], codes[structural]


def _escaped(positions: I64, codes: npt.NDArray[np.uint8]) -> Mask:
    """True at each quote preceded by an odd run of backslashes (escaped, inside a string)."""
    backslash = codes == _BACKSLASH
    follows = np.r_[False, backslash[:-1] & (np.diff(positions) == 1)]
    run_start = backslash & ~follows
    index = np.arange(len(codes))
    first_of_run = np.maximum.accumulate(np.where(run_start, index, 0))
    previous = np.maximum(index - 1, 0)
    run_length = previous - first_of_run[previous] + 1
    return (codes == _QUOTE) & follows & (run_length % 2 == 1)


def _has_text(texts: pa.StringArray, starts: I64, ends: I64) -> Mask:
    """True for each span that holds more than whitespace."""
    if not len(starts):
        return np.zeros(0, dtype=np.bool_)
    lengths = pc.binary_length(_span_texts(texts, starts, ends))
    return numpy_mask(pc.not_equal(lengths, 0))


def _span_texts(texts: pa.StringArray, starts: I64, ends: I64) -> pa.StringArray:
    """The texts at ``[starts[i], ends[i])`` of ``texts``' data buffer (sorted, disjoint
    spans), whitespace trimmed. The spans and the gaps between them are read as one string
    array over the same buffer, and the spans taken out of it."""
    count = len(starts)
    if not count:
        return pa.array([], pa.string())
    bounds = np.empty(2 * count, dtype=np.int32)
    bounds[0::2] = starts
    bounds[1::2] = ends
    spans_and_gaps = pa.StringArray.from_buffers(
        2 * count - 1, pa.py_buffer(bounds), texts.buffers()[2]
    )
    spans = spans_and_gaps.take(pa.array(np.arange(0, 2 * count - 1, 2)))
    return pc.utf8_trim_whitespace(spans)
