r"""PostgreSQL's text of an array -> the texts of its elements, a column of arrays at a time.

An array's text output (``{1,2,NULL}``, ``{"a b","",NULL,"x\"y"}``, ``{}``): its elements
between braces, separated by commas; an element is double-quoted when it is empty, spells
NULL (any case) or holds a brace, comma, quote, backslash or white space, and inside the
quotes a backslash comes before each quote and backslash; an unquoted ``NULL`` is SQL NULL.
The text is the same whether pgoutput sends it or a snapshot selects ``col::text``; it does
not depend on the session's settings, but its elements' texts do (see ``_pg_text``).

Only a one-dimensional array whose first index is 1 is a list (``ArrayElements.lists``).
PostgreSQL does not keep the number of dimensions in the column's type (``int4[]`` and
``int4[][]`` are one type, and any value may have any number of them), so it is a property
of each value: a multi-dimensional one (``{{1,2},{3,4}}``) and one with other bounds
(``[0:1]={1,2}``, which PostgreSQL writes only when the first index is not 1) are not lists,
and ``shape_misfit`` says why, for the reason of that value's row.

``split_arrays`` splits a column of texts without Python per value, quoted or not: numpy
finds the braces, commas, quotes and backslashes of every text at once and which of them
delimit (not escaped; outside quotes, by a running count of the quotes), and gathers the
elements' bytes without them, into one string array of every element. 100k ``int4[]`` of 5
elements take about 60 ms of CPU to split and parse, 100k ``text[]`` of 5 quoted and escaped
ones about 105 ms. Fewer than ``_FEW_ARRAYS`` texts are split in Python (``re``), which costs
less than numpy's calls: a batch of one row of one array column about 30 µs instead of 200.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class ArrayElements:
    """A column of array texts split into their elements."""

    offsets: np.ndarray  # int32, a row's elements: elements[offsets[i] : offsets[i + 1]]
    elements: pa.StringArray  # unquoted and unescaped; null: NULL, or in a row not a list
    lists: np.ndarray  # per row, whether it is a one-dimensional array from index 1 (or NULL)


def split_arrays(raw: pa.StringArray) -> ArrayElements:
    """The elements of the array texts of ``raw``: of a few (``_FEW_ARRAYS``) text by text in
    Python, of more over the bytes of every text at once (``_split_many``).

    A text of any other shape than a list's (``{{1,2},{3,4}}``, ``[2:3]={1,2}``, or no
    array's text at all) is false in ``lists``, and split as ``{}`` (in another pass: the
    texts after it are split on the way, and it may have left a quote open)."""
    if raw.type != pa.string():
        raw = raw.cast(pa.string())
    if len(raw) < _FEW_ARRAYS:
        return _split_few(raw.to_pylist())
    if raw.null_count:
        raw = pc.fill_null(raw, _EMPTY_ARRAY)
    bad = np.zeros(len(raw), np.bool_)
    while True:
        split = _split_many(pc.if_else(pa.array(bad), _EMPTY_ARRAY, raw) if bad.any() else raw)
        if isinstance(split, ArrayElements):
            return ArrayElements(split.offsets, split.elements, ~bad)
        bad |= split


def shape_misfit(text: str) -> str:
    """Why the array ``text`` is not a list by its shape: it has more dimensions than one,
    or its first index is not 1; "" when neither (then an element, or the text itself, is
    what does not fit)."""
    body, lower = text, None
    if text.startswith("["):  # explicit bounds: [0:1]={...}, [1:1][1:2]={{...}}
        bounds, _, body = text.partition("=")
        lower = bounds[1:].partition(":")[0]
    dimensions = len(body) - len(body.lstrip("{"))
    if dimensions > 1:
        return f"it is a multi-dimensional array of {dimensions} dimensions, where a list has one"
    if lower is not None and lower != "1":
        return f"its first index is {lower}, where a list's is 1"
    return ""


_OPEN, _CLOSE, _COMMA, _QUOTE, _BACKSLASH = b'{},"\\'
_NULL = tuple(b"NULL")
_EMPTY_ARRAY = pa.scalar("{}", pa.string())


def _split_many(raw: pa.StringArray) -> ArrayElements | np.ndarray:
    """``split_arrays`` of texts without nulls, or a numpy mask true for some that are not
    lists (at least one, perhaps not all).

    Only braces, commas, quotes and backslashes are looked at, as numpy arrays of their
    positions: a quote delimits unless a backslash escapes it (the odd ones of a run of
    backslashes escape the next character); a brace or comma delimits when an even number of
    quotes come before it (once every text is found to hold its quotes in pairs)."""
    rows = len(raw)
    offsets = np.frombuffer(raw.buffers()[1], np.int32)[raw.offset : raw.offset + rows + 1]
    data_buffer = raw.buffers()[2]
    data = (
        np.frombuffer(data_buffer, np.uint8)[offsets[0] : offsets[-1]]
        if data_buffer is not None
        else np.zeros(0, np.uint8)
    )
    starts = offsets[:-1] - np.int64(offsets[0])
    ends = offsets[1:] - np.int64(offsets[0])
    bad = ends - starts < 2
    shaped = ~bad
    bad[shaped] = (data[starts[shaped]] != _OPEN) | (data[ends[shaped] - 1] != _CLOSE)
    if bad.any():
        return bad

    quoting = data == _QUOTE
    backslashes = np.flatnonzero(data == _BACKSLASH)
    escapers = _escapers(backslashes)
    quoting[escapers + 1] = False  # (a text ends with a brace: never with an escaper)
    special = np.flatnonzero((data == _OPEN) | (data == _CLOSE) | (data == _COMMA) | quoting)
    kinds = data[special]
    is_quote = kinds == _QUOTE
    quotes_so_far = np.cumsum(is_quote)
    # A text's first and last characters are braces, among the special ones.
    quotes_in = quotes_so_far[np.searchsorted(special, ends - 1)]
    quotes_in -= quotes_so_far[np.searchsorted(special, starts)]
    bad |= quotes_in % 2 == 1
    if bad.any():
        return bad
    if len(backslashes):  # outside quotes? PostgreSQL quotes an element with a backslash
        quotes = special[is_quote]
        loose = backslashes[np.searchsorted(quotes, backslashes) % 2 == 0]
        bad[np.searchsorted(starts, loose, "right") - 1] = True
    outside = ~is_quote & (quotes_so_far % 2 == 0)
    marks, kinds, quotes_before = special[outside], kinds[outside], quotes_so_far[outside]
    opens = kinds == _OPEN
    braces = marks[opens | (kinds == _CLOSE)]
    if len(braces) != 2 * rows or not (
        np.array_equal(braces[0::2], starts) and np.array_equal(braces[1::2], ends - 1)
    ):  # a brace inside (another dimension), or one missing: which texts?
        bad |= np.bincount(np.searchsorted(starts, braces, "right") - 1, minlength=rows) != 2
    if bad.any():
        return bad

    # An element lies between two marks: its text's opening brace or a comma before it, a
    # comma or the closing brace after it; ``{}`` has none. Each text has one opening brace.
    before, after = marks[:-1], marks[1:]
    empty = (after - before == 1) & opens[:-1] & (kinds[1:] == _CLOSE)
    opening = (kinds[:-1] != _CLOSE) & ~empty
    first = before[opening] + 1
    last = after[opening]
    element_rows = (np.cumsum(opens) - 1)[:-1][opening]
    length = last - first
    quoted = data[first] == _QUOTE
    within = np.diff(quotes_before)[opening]
    closed = (within == 2) & (length >= 2) & (data[last - 1] == _QUOTE)
    fine = np.where(quoted, closed, (within == 0) & (length > 0))
    if not fine.all():
        bad[element_rows[~fine]] = True
        return bad

    # The elements' text: every byte but the marks, the quotes and the escaping backslashes.
    keep = np.ones(len(data), np.bool_)
    keep[marks] = False
    keep[quoting] = False
    keep[escapers] = False
    lengths = length - 2 * quoted
    if len(escapers):
        lengths -= np.bincount(np.searchsorted(first, escapers, "right") - 1, minlength=len(first))
    element_offsets = np.zeros(len(first) + 1, np.int32)
    np.cumsum(lengths, out=element_offsets[1:])
    null = (length == 4) & ~quoted
    candidates = first[null]
    null[null] = (
        (data[candidates] == _NULL[0])
        & (data[candidates + 1] == _NULL[1])
        & (data[candidates + 2] == _NULL[2])
        & (data[candidates + 3] == _NULL[3])
    )
    validity = pa.py_buffer(np.packbits(~null, bitorder="little")) if null.any() else None
    elements = pa.Array.from_buffers(
        pa.string(),
        len(first),
        [validity, pa.py_buffer(element_offsets), pa.py_buffer(data[keep])],
    )
    row_offsets = np.zeros(rows + 1, np.int32)
    np.cumsum(np.bincount(element_rows, minlength=rows), out=row_offsets[1:])
    return ArrayElements(row_offsets, elements, np.ones(rows, np.bool_))


# Below this many texts, splitting each in Python costs less than numpy's calls.
_FEW_ARRAYS = 16
# An element of an array's text: quoted (group 1, escaped) or not (group 2); the whole text.
_ELEMENT = r'"((?:[^"\\]|\\.)*)"|([^",{}\\]+)'
_ELEMENTS = re.compile(rf"\{{(?:(?:{_ELEMENT})(?:,(?:{_ELEMENT}))*)?\}}", re.DOTALL)
_ONE_ELEMENT = re.compile(_ELEMENT, re.DOTALL)
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def _split_few(texts: list[str | None]) -> ArrayElements:
    """``split_arrays`` of a few texts, each split in Python (``_FEW_ARRAYS``)."""
    elements: list[str | None] = []
    offsets = [0]
    lists = []
    for text in texts:
        shaped = text is None or _ELEMENTS.fullmatch(text) is not None
        lists.append(shaped)
        if text is not None and shaped:
            for quoted, plain in _ONE_ELEMENT.findall(text):
                if plain:
                    elements.append(None if plain == "NULL" else plain)
                else:
                    elements.append(_ESCAPED.sub(r"\1", quoted))
        offsets.append(len(elements))
    return ArrayElements(
        np.array(offsets, np.int32), pa.array(elements, pa.string()), np.array(lists, np.bool_)
    )


def _escapers(backslashes: np.ndarray) -> np.ndarray:
    """Of the (sorted) positions of backslashes, those that escape the next character: the
    first, third... of each run of them."""
    if not len(backslashes):
        return backslashes
    index = np.arange(len(backslashes))
    starts_run = np.ones(len(backslashes), np.bool_)
    starts_run[1:] = backslashes[1:] != backslashes[:-1] + 1
    run_start = np.maximum.accumulate(np.where(starts_run, index, 0))
    return backslashes[(index - run_start) % 2 == 0]


__all__ = ["ArrayElements", "shape_misfit", "split_arrays"]
