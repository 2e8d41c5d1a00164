"""benchmarks/generate.py makes the same t1m bytes for the same seed; the oracle checks keys."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
ROWS = 10_000


def load_script(name: str) -> ModuleType:
    """Import benchmarks/<name>.py by path: benchmarks/ is a folder of scripts, not a package."""
    spec = importlib.util.spec_from_file_location(
        f"benchmark_scripts.{name}", BENCHMARKS / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


generate = load_script("generate")
oracle = load_script("oracle")


@pytest.fixture(scope="module")
def t10k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("t10k") / "t10k.csv"
    assert generate.main(["--rows", str(ROWS), "--out", str(path)]) == 0
    return path


def test_same_seed_same_bytes_other_seed_other_bytes(t10k: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.csv"
    assert generate.write_csv(again, ROWS) == ROWS
    assert again.read_bytes() == t10k.read_bytes()
    other = tmp_path / "other.csv"
    generate.write_csv(other, ROWS, seed=generate.DEFAULT_SEED + 1)
    assert other.read_bytes() != t10k.read_bytes()


def test_fewer_rows_are_a_prefix_across_a_block_boundary(tmp_path: Path) -> None:
    rows = generate.BLOCK_ROWS + 10
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    generate.write_csv(small, rows)
    generate.write_csv(large, rows + 500)
    small_lines = small.read_bytes().splitlines()
    assert len(small_lines) == rows + 1
    assert large.read_bytes().splitlines()[: rows + 1] == small_lines


def test_ten_columns_of_the_t1m_types(t10k: Path) -> None:
    text = t10k.read_text().splitlines()
    assert text[0].replace('"', "").split(",") == generate.T1M_SCHEMA.names
    assert len(generate.T1M_SCHEMA) == 10
    # Read back with the declared types: every value must parse as its column's type.
    options = pa_csv.ConvertOptions(column_types=generate.T1M_SCHEMA)
    table = pa_csv.read_csv(t10k, convert_options=options)
    assert table.column_names == generate.T1M_SCHEMA.names
    assert table.schema.types == generate.T1M_SCHEMA.types
    assert table.num_rows == ROWS
    assert all(table.column(name).null_count == 0 for name in table.column_names)
    assert table.column("id").to_pylist() == list(range(1, ROWS + 1))
    assert set(table.column("country").to_pylist()) <= set(generate._COUNTRIES.to_pylist())
    assert len(set(table.column("status").to_pylist())) == len(generate._STATUSES)
    payloads = table.column("payload").to_pylist()
    assert all(len(p) == 64 and int(p, 16) >= 0 for p in payloads[:100])
    assert len(set(payloads)) == ROWS
    assert pa.compute.all(
        pa.compute.greater_equal(table.column("updated_at"), table.column("created_at"))
    ).as_py()
    amounts = table.column("amount").cast(pa.float64()).to_numpy()
    assert amounts.min() > 0 and amounts.max() < 10**10


def test_generated_decimals_match_their_text(t10k: Path) -> None:
    first = next(generate.generate_batches(3))
    lines = t10k.read_text().splitlines()[1:4]
    assert [line.split(",")[2] for line in lines] == [str(d) for d in first.column(2).to_pylist()]


def test_parquet_output_has_the_same_rows(t10k: Path, tmp_path: Path) -> None:
    path = tmp_path / "t10k.parquet"
    assert generate.main(["--rows", str(ROWS), "--out", str(path)]) == 0
    table = pq.read_table(path)
    assert table.schema.equals(generate.T1M_SCHEMA, check_metadata=False)
    options = pa_csv.ConvertOptions(column_types=generate.T1M_SCHEMA)
    from_csv = pa_csv.read_csv(t10k, convert_options=options).cast(generate.T1M_SCHEMA)
    assert table.equals(from_csv)


def test_oracle_on_the_generated_table(t10k: Path, tmp_path: Path) -> None:
    expected = oracle.expected_checksum(ROWS)
    assert oracle.key_set_checksum(t10k) == expected
    assert expected == oracle.KeySetChecksum(ROWS, ROWS * (ROWS + 1) // 2, _xor_range(ROWS))
    assert oracle.main([str(t10k), "--expect-rows", str(ROWS)]) == 0
    assert oracle.main([str(t10k), "--expect-rows", str(ROWS + 1)]) == 1


def test_oracle_over_a_split_parquet_directory_sees_loss_and_duplicates(
    t10k: Path, tmp_path: Path
) -> None:
    table = pa_csv.read_csv(t10k)
    out = tmp_path / "out"
    (out / "part=1").mkdir(parents=True)
    pq.write_table(table.slice(0, 4_000), out / "a.parquet")
    pq.write_table(table.slice(4_000), out / "part=1" / "b.parquet")
    pq.write_table(table.slice(0, 10), out / ".c.parquet.tmp.parquet")  # hidden: in progress
    assert oracle.key_set_checksum(out) == oracle.expected_checksum(ROWS)

    pq.write_table(table.slice(0, 1), out / "dup.parquet")
    duplicated = oracle.key_set_checksum(out)
    assert duplicated.count == ROWS + 1 and duplicated != oracle.expected_checksum(ROWS)

    (out / "dup.parquet").unlink()
    (out / "a.parquet").unlink()
    pq.write_table(table.slice(1, 3_999), out / "a.parquet")  # row with id 1 lost
    lost = oracle.key_set_checksum(out)
    assert lost == oracle.expected_checksum(ROWS - 1, first_id=2)


def test_checksum_parts_add_up_and_negative_keys_wrap() -> None:
    keys = pa.array([-1, 5, 2**63 - 1, -(2**63)], type=pa.int64())
    whole = oracle.checksum_of_keys(keys)
    parts = oracle.sum_checksums(oracle.checksum_of_keys(keys.slice(i, 1)) for i in range(4))
    assert whole == parts
    assert whole.sum == (-1 + 5 + 2**63 - 1 - 2**63) % 2**64
    assert whole.xor == (2**64 - 1) ^ 5 ^ (2**63 - 1) ^ 2**63
    with pytest.raises(ValueError, match="null"):
        oracle.checksum_of_keys(pa.array([1, None]))


def _xor_range(n: int) -> int:
    value = 0
    for i in range(1, n + 1):
        value ^= i
    return value
