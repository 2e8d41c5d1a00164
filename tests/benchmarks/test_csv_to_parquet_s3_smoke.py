"""benchmarks/csv_to_parquet.py --storage s3 (B3 on object storage): its options and pipeline,
and a run on tiny input against moto's S3 server started as a subprocess, its output
downloaded and verified, then deleted. The whole tiny race runs on S3 in
``test_runner_smoke.py`` (parametrised over the storage)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# benchmarks/ is a folder of scripts that import each other by plain name, as when run.
sys.path.insert(0, str(BENCHMARKS))

import csv_to_parquet  # noqa: E402
from contestants import omconnect_pipeline_yaml  # noqa: E402
from s3_endpoint import S3Endpoint, running_s3  # noqa: E402

ROWS = 2_000


def test_storage_picks_the_results_file_and_section() -> None:
    assert csv_to_parquet.parse_args([]).json.name == "csv_to_parquet.json"
    s3 = csv_to_parquet.parse_args(["--storage", "s3"])
    assert s3.json.name == "csv_to_parquet_s3.json"
    assert csv_to_parquet.SECTIONS[s3.storage] == "csv-to-parquet-s3"
    with pytest.raises(SystemExit):
        csv_to_parquet.parse_args(["--storage", "s3", "--baseline", "HEAD~1"])


def test_the_pipeline_names_the_endpoint_and_keeps_the_secret_out() -> None:
    endpoint = S3Endpoint("http://127.0.0.1:9")
    text = omconnect_pipeline_yaml("s3://b/t.csv", "s3://b/out-x/", s3=endpoint)
    assert text.count("endpoint_url: http://127.0.0.1:9") == 2  # source and sink
    assert "secret_access_key: ${BENCH_S3_SECRET}" in text
    assert endpoint.secret_access_key not in text
    assert "s3:" not in omconnect_pipeline_yaml(Path("t.csv"))


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return csv_to_parquet.ensure_csv(tmp_path_factory.mktemp("data"), ROWS)


def test_a_wrong_output_on_s3_is_failed_and_the_outputs_are_deleted(
    csv_file: Path, tmp_path: Path
) -> None:
    with running_s3(tmp_path / "moto.log") as s3:
        s3.upload(csv_file)
        [pyarrow], _ = csv_to_parquet.select_contestants(["pyarrow"], tmp_path, False, s3)
        record = csv_to_parquet.run_once(
            pyarrow, csv_file, ROWS + 1, tmp_path / "run", "measured", s3
        )
        assert record.failure is not None and "wrong output" in record.failure
        assert record.checksum is not None and record.checksum["count"] == ROWS
        assert s3.keys("") == [csv_file.name]  # the run's output went, the input stayed
