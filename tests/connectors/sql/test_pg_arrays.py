"""``_pg_arrays``: PostgreSQL's array texts split into their elements, and the shapes that are
no list (more dimensions than one, a first index other than 1), said in a few words.

The texts are those of ``test_pg_text.CASES`` (checked there against what the server writes)
and others: Python's split of a few texts and numpy's of many must agree on every one, and
both tell a list from what is none whichever way the text is split.
"""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from omconnect.connectors.sql._pg_arrays import _split_few, shape_misfit, split_arrays
from tests.connectors.sql.test_pg_text import CASES, ODD_ARRAYS

DIMENSIONS = "it is a multi-dimensional array of {} dimensions, where a list has one"
FIRST_INDEX = "its first index is {}, where a list's is 1"

# An array's text as PostgreSQL writes it, and why it is no list ("": it is one).
SHAPES = {
    "{}": "",
    "{NULL}": "",
    "{1,2,3}": "",
    '{"{1,2}","[0:1]={a}","{{}}"}': "",  # elements that look like arrays
    '{"{","}"}': "",
    "{{1,2},{3,4}}": DIMENSIONS.format(2),
    "{{NULL}}": DIMENSIONS.format(2),
    '{{"a,b",c},{d,"e}"}}': DIMENSIONS.format(2),
    "{{{1}}}": DIMENSIONS.format(3),
    "{{{{{{1}}}}}}": DIMENSIONS.format(6),
    "[0:1]={1,2}": FIRST_INDEX.format(0),
    "[-3:-2]={1,2}": FIRST_INDEX.format(-3),
    '[2:2]={"x\\"y"}': FIRST_INDEX.format(2),
    "[0:0][1:2]={{1,2}}": DIMENSIONS.format(2),  # both: the dimensions are said
    "[1:1][0:1]={{1,2}}": DIMENSIONS.format(2),
}


@pytest.mark.parametrize("text", SHAPES)
def test_what_is_no_list_and_why(text: str) -> None:
    assert shape_misfit(text) == SHAPES[text]
    # Split among lists, a few texts or many: only the shapes above are no list.
    for copies in (1, 20):
        texts = ["{1}", text, None] * copies
        split = split_arrays(pa.array(texts, pa.string()))
        assert split.lists.tolist() == [True, not SHAPES[text], True] * copies


def test_the_elements_of_a_list() -> None:
    """Unquoted, unescaped, NULL as null; a row that is no list has no elements."""
    texts = [
        '{"a b","",NULL,"NULL","x\\"y","back\\\\slash",plain}',
        "{{1,2},{3,4}}",
        None,
        "{}",
        "[0:1]={5,6}",
        '{"{}"}',
    ]
    for copies in (1, 20):
        split = split_arrays(pa.array(texts * copies, pa.string()))
        first = ["a b", "", None, "NULL", 'x"y', "back\\slash", "plain"]
        assert split.elements.to_pylist() == [*first, "{}"] * copies
        per_row = [len(first), 0, 0, 0, 0, 1] * copies
        assert split.offsets.tolist() == [sum(per_row[:i]) for i in range(len(per_row) + 1)]
        assert split.lists.tolist() == [True, False, True, True, False, True] * copies


def test_a_few_texts_split_as_many() -> None:
    """Python's split of a few texts and numpy's of many agree on every text, whether
    PostgreSQL could write it or not."""
    draw = random.Random(3)
    pieces = ["{", "}", ",", '"', "\\", " ", "a", "NULL", "é", "[", ":", "="]
    elements = ["a", '"a b"', '""', "NULL", '"\\\\"', '"x\\"y"', '"{}"', "", "{1}", '"']
    texts: list[str | None] = [c.text for c in CASES if c.column.endswith("[]")]
    texts += [*ODD_ARRAYS, *SHAPES, None]
    texts += ["".join(draw.choices(pieces, k=draw.randint(0, 10))) for _ in range(20_000)]
    texts += [
        "{" + ",".join(draw.choices(elements, k=draw.randint(1, 4))) + "}" for _ in range(5_000)
    ]
    many = split_arrays(pa.array(texts, pa.string()))
    few = _split_few(texts)
    assert 1000 < many.lists.sum() < len(texts) - 1000  # lists and not
    assert many.lists.tolist() == few.lists.tolist()
    assert many.offsets.tolist() == few.offsets.tolist()
    assert many.elements.to_pylist() == few.elements.to_pylist()
