"""One Parquet file per Arrow type through a real pipeline and back, with the ``omconnect``
command: ``parquet`` source -> embedded broker (format ``avro``, then ``json``) -> ``parquet``
sink, and once more without a broker (``broker: none``: the sink takes the source's columns).
The written file must hold the same values with the same Arrow types (issue 7: "maps to an
omconnect type and back losslessly, through every converter").

Every file holds a ``case`` and a ``row`` column (both not null, so nullability is checked
too) and one column named after its case, with a null in it. The files all go through
one pipeline run per format (a process per file takes a second or more): their schemas differ
only in that column, which is nullable, so each is a compatible new version of the topic's
schema; avro bodies name their version, json bodies are read with the newest version holding
their fields. Each case finds its rows in the sink's files by ``case`` and is its own test, so
a failure names the type (and quotes the dead letters of its rows).

A few types legitimately come back as another type; each case says which and why in
``written_as`` and ``why``. Every other case must come back exactly.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.support.file_formats import published_files
from tests.support.omconnect_process import omconnect, tail_topic
from tests.support.schema_strategies import first_difference

FORMATS = ("avro", "json", "none")
NS_PER_DAY = 86_400 * 10**9
NS_EXTREMES = [-(2**63) + 1, 2**63 - 1, None, 1]


@dataclass(frozen=True)
class TypeCase:
    """A column of one Arrow type, and how it comes back when not as itself.

    Attributes:
        name: the case, the file and the column name.
        values: the column written into the source file (nulls included).
        written_as: the type the sink writes, when the type legitimately changes.
        why: why it changes (required with ``written_as``).
    """

    name: str
    values: pa.Array
    written_as: pa.DataType | None = None
    why: str = ""

    def __post_init__(self) -> None:
        if bool(self.why) != (self.written_as is not None):
            raise ValueError(f"{self.name}: a type change needs its reason, and only it")

    def source_rows(self) -> pa.RecordBatch:
        n = len(self.values)
        return pa.RecordBatch.from_arrays(
            [pa.array([self.name] * n, pa.string()), pa.array(range(n), pa.int64()), self.values],
            schema=pa.schema(
                [
                    pa.field("case", pa.string(), nullable=False),
                    pa.field("row", pa.int64(), nullable=False),
                    pa.field(self.name, self.values.type),
                ]
            ),
        )

    def expected_rows(self) -> pa.RecordBatch:
        rows = self.source_rows()
        if self.written_as is None:
            return rows
        changed = rows.schema.field(self.name).with_type(self.written_as)
        return pa.RecordBatch.from_arrays(
            [*rows.columns[:2], rows.column(2).cast(self.written_as)],
            schema=rows.schema.set(2, changed),
        )


def ns(kind: pa.DataType, counts: Sequence[object]) -> pa.Array:
    """Nanosecond values (or lists of them) from their counts: pyarrow takes no Python ints
    for them, and no datetime holds them."""
    storage = pa.list_(pa.int64()) if pa.types.is_list(kind) else pa.int64()
    return pa.array(counts, storage).cast(kind)


def float16s(values: list[float | None]) -> pa.Array:
    mask = np.array([v is None for v in values])
    return pa.array(np.array([0 if v is None else v for v in values], np.float16), mask=mask)


LIST_OF_STRUCTS = pa.list_(pa.struct([("a", pa.int32()), ("b", pa.list_(pa.string()))]))
CASES = [
    TypeCase("uint8", pa.array([0, 2**8 - 1, None, 7], pa.uint8())),
    TypeCase("uint16", pa.array([0, 2**16 - 1, None, 7], pa.uint16())),
    TypeCase("uint32", pa.array([0, 2**32 - 1, None, 7], pa.uint32())),
    TypeCase("uint64", pa.array([0, 2**64 - 1, None, 2**63], pa.uint64())),
    TypeCase("float16", float16s([0.5, -65504.0, float("nan"), float("inf"), None, 6e-8])),
    TypeCase("time64_ns", ns(pa.time64("ns"), [0, NS_PER_DAY - 1, None, 1])),
    TypeCase("timestamp_ns", ns(pa.timestamp("ns"), NS_EXTREMES)),
    TypeCase("timestamp_ns_zoned", ns(pa.timestamp("ns", "Europe/Paris"), NS_EXTREMES)),
    TypeCase(
        "date32",
        pa.array(
            [datetime.date(1, 1, 1), datetime.date(9999, 12, 31), None, datetime.date(1970, 1, 1)]
        ),
    ),
    TypeCase(
        "decimal128_38_10",
        pa.array(
            [decimal.Decimal("9" * 28 + "." + "9" * 10), decimal.Decimal("-1E-10"), None, 0],
            pa.decimal128(38, 10),
        ),
    ),
    TypeCase(
        "decimal256_76_20",
        pa.array(
            [decimal.Decimal("-" + "9" * 56 + "." + "9" * 20), decimal.Decimal("1E-20"), None, 0],
            pa.decimal256(76, 20),
        ),
    ),
    TypeCase(
        "large_string",
        pa.array(["a", 'é€😀\n"', None, ""], pa.large_string()),
        written_as=pa.string(),
        why="omconnect strings have one Arrow type; 64-bit offsets are a storage choice of "
        "the writer (value-lossless, docs/types.md)",
    ),
    TypeCase(
        "large_binary",
        pa.array([b"a", b"\x00\xff", None, b""], pa.large_binary()),
        written_as=pa.binary(),
        why="as large_string: 64-bit offsets are a storage choice (docs/types.md)",
    ),
    TypeCase(
        "dictionary_string",
        pa.array(["x", "y", None, "x"]).dictionary_encode(),
        written_as=pa.string(),
        why="dictionary encoding is a storage choice; a dictionary without omconnect enum "
        "symbols is its value type (docs/types.md), and the values are kept",
    ),
    TypeCase(
        "fixed_size_binary",
        pa.array([b"abcd", b"\x00\x00\x00\x00", None, b"\xff" * 4], pa.binary(4)),
        written_as=pa.binary(),
        why="omconnect's bytes type has no width: fixed-size binary is read as bytes "
        "(value-lossless, docs/types.md)",
    ),
    TypeCase("null", pa.nulls(4)),
    TypeCase(
        "list_of_structs",
        pa.array(
            [[{"a": 1, "b": ["x", None]}], [], None, [None, {"a": None, "b": None}]],
            LIST_OF_STRUCTS,
        ),
    ),
    TypeCase(
        "map_int64_string",
        pa.array(
            [[(1, "a"), (-(2**63), None)], [], None, [(2**63 - 1, "z")]],
            pa.map_(pa.int64(), pa.string()),
        ),
    ),
    TypeCase(
        "map_string_list_double",
        pa.array(
            [[("a", [1.5, None])], [("b", [])], None, [("c", None)]],
            pa.map_(pa.string(), pa.list_(pa.float64())),
        ),
    ),
    TypeCase(
        "struct_with_map",
        pa.array(
            [{"m": [("k", 1)], "x": "a"}, {"m": None, "x": None}, None, {"m": [], "x": "b"}],
            pa.struct([("m", pa.map_(pa.string(), pa.int32())), ("x", pa.string())]),
        ),
    ),
    # What docs/types.md lists as not encoded yet inside lists and maps.
    TypeCase("list_uint64", pa.array([[0, 2**64 - 1, None], [], None, [1]], pa.list_(pa.uint64()))),
    TypeCase(
        "list_timestamp_ns",
        ns(pa.list_(pa.timestamp("ns", "UTC")), [[-(2**63) + 1, 2**63 - 1, None], [], None, [1]]),
    ),
    TypeCase("list_time64_ns", ns(pa.list_(pa.time64("ns")), [[0, NS_PER_DAY - 1], [], None])),
    TypeCase("list_null", pa.array([[None, None], [], None, [None]], pa.list_(pa.null()))),
    TypeCase(
        "map_timestamp_ns_float16",
        pa.MapArray.from_arrays(
            pa.array([0, 2, 2, 2, 3], pa.int32()),
            ns(pa.timestamp("ns"), [-(2**63) + 1, 2**63 - 1, 0]),
            float16s([float("nan"), None, -0.0]),
            mask=pa.array([False, False, True, False]),
        ),
    ),
    TypeCase(
        "map_string_map_int32",
        pa.array(
            [[("a", [(1, "x"), (-(2**31), None)])], [], None, [("b", None)]],
            pa.map_(pa.string(), pa.map_(pa.int32(), pa.string())),
        ),
    ),
]


@dataclass(frozen=True)
class Delivery:
    """One pipeline run over some case files: its working directory, outcome and dead
    letters (as ``omconnect topics tail`` prints them)."""

    directory: Path
    returncode: int
    stderr: str
    dead_letters: list[dict]

    def dead_letter_reasons(self, case: str) -> list[str]:
        """The reasons of the dead letters that hold a row of ``case``."""
        marker = json.dumps({"case": case})[1:-1]
        return [
            d["headers"].get("omconnect.error.reason", "")
            for d in self.dead_letters
            if marker in json.dumps(d.get("value"))
        ]


def deliver(directory: Path, format_name: str, cases: list[TypeCase]) -> Delivery:
    """Write the files of ``cases`` and run a parquet -> ``format_name`` -> parquet pipeline
    over them once."""
    (directory / "in").mkdir()
    for case in cases:
        pq.write_table(
            pa.Table.from_batches([case.source_rows()]), directory / f"in/{case.name}.parquet"
        )
    # "none": no broker, the sink takes the source's columns as they are (no format).
    broker = "none" if format_name == "none" else f"embedded://.omconnect\nformat: {format_name}"
    (directory / "types.yaml").write_text(
        f"""
name: types_{format_name}
broker: {broker}
state: .omconnect
source: {{connector: parquet, path: in/}}
topic: types
errors: {{tolerance: all}}
sink: {{connector: parquet, path: out/}}
"""
    )
    ran = omconnect("run", "types.yaml", "--once", cwd=directory)
    dead = re.search(r"dead_lettered=(\d+)", ran.stderr)
    dead_letters = tail_topic("types.dlq", directory) if dead and int(dead[1]) else []
    return Delivery(directory, ran.returncode, ran.stderr, dead_letters)


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Delivery]:
    """The run that delivered every case in ``format_name``, made when first asked for."""
    runs: dict[str, Delivery] = {}

    def delivery(format_name: str) -> Delivery:
        if format_name not in runs:
            directory = tmp_path_factory.mktemp(format_name)
            runs[format_name] = deliver(directory, format_name, CASES)
        return runs[format_name]

    return delivery


def written_rows(delivery: Delivery, case: TypeCase) -> pa.RecordBatch | str:
    """The rows of ``case`` the sink wrote, by ``row``; or why there are none."""
    columns = ["case", "row", case.name]
    parts = []
    for path in published_files(delivery.directory / "out", "parquet"):
        table = pq.read_table(path)
        if "case" not in table.column_names:
            continue
        mine = table.filter(pc.equal(table["case"], case.name))
        if mine.num_rows and case.name not in table.column_names:
            return f"rows written without their column: {table.schema}"
        if mine.num_rows:
            parts.append(mine.select(columns))
    if not parts:
        reasons = delivery.dead_letter_reasons(case.name)
        outcome = f"exit {delivery.returncode}: {delivery.stderr.strip()[-2000:]}"
        return f"no row written; dead letters: {reasons or 'none'}; the run: {outcome}"
    try:
        rows = pa.concat_tables(parts)
    except pa.ArrowInvalid:
        return f"rows written with different types: {[str(p.schema) for p in parts]}"
    return rows.sort_by("row").combine_chunks().to_batches()[0]


@pytest.mark.parametrize(
    ("format_name", "case"),
    [pytest.param(f, c, id=f"{f}-{c.name}") for f in FORMATS for c in CASES],
)
def test_type_comes_back_from_the_topic(
    format_name: str,
    case: TypeCase,
    deliveries: Callable[[str], Delivery],
) -> None:
    delivery = deliveries(format_name)
    written = written_rows(delivery, case)
    if isinstance(written, str):
        pytest.fail(f"{case.name}: {written}")
    difference = first_difference(written, case.expected_rows())
    if difference is not None:
        reasons = delivery.dead_letter_reasons(case.name)
        pytest.fail(f"{case.name}: {difference}; dead letters: {reasons or 'none'}")
