"""The peer tools of B3 (dlt, sling), installed into their own virtualenv.

Peers live in ``benchmarks/work/peers`` (gitignored), never in the project's environment, at
the versions the field notes pin. Everything here is offline once installed: sling uses the
binary shipped in its wheel, and the DuckDB CLI it needs for Parquet comes from a wheel too,
with its extensions copied where DuckDB looks for them (under a private ``HOME``).

A peer that cannot be installed or found is returned with ``not_run`` set to the reason, so
the benchmark reports it instead of failing.

The SQL benchmarks (``sql_snapshot.py``, ``sql_upsert.py``) add dlt's Postgres extras and the
connectorx backend to the same virtualenv (``SQL_PEER_REQUIREMENTS``); their dlt code lives in
hidden modes of those scripts, run with the peers' Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from contestants import BENCHMARKS_DIR, Contestant, Invocation
from s3_endpoint import S3Endpoint

PEER_REQUIREMENTS = [
    "dlt[parquet]==1.31.0",
    "pandas",
    "sling-linux-amd64==1.4.11",
    "duckdb-cli==1.4.4.post2",
    "duckdb-ext-httpfs==1.4.4.20260205",
    "duckdb-ext-json==1.4.4.20260205",
]
PEER_DISTRIBUTIONS = ["dlt", "pandas", "pyarrow", "sling-linux-amd64", "duckdb-cli"]
# B3 on S3: dlt's filesystem source and destination reach S3 through s3fs (its ``s3`` extra);
# sling's DuckDB CLI needs the ``aws`` extension for an S3 target (its credentials).
S3_PEER_REQUIREMENTS = [
    "dlt[parquet,s3]==1.31.0",
    *PEER_REQUIREMENTS[1:],
    "duckdb-ext-aws==1.4.4.20260205",
]
S3_PEER_DISTRIBUTIONS = [*PEER_DISTRIBUTIONS, "s3fs", "duckdb-ext-aws"]
# B1 and B4 (Postgres): dlt's sql_database source (pyarrow and connectorx backends) and its
# postgres destination, plus sling reading Postgres; pinned as the field notes say.
SQL_PEER_REQUIREMENTS = [
    "dlt[parquet,filesystem,postgres]==1.31.0",
    "connectorx==0.4.6",
    "numpy",  # dlt's sql_database needs it for Arrow rows and does not ask for it
    "psycopg2-binary",
    "sqlalchemy",
    *PEER_REQUIREMENTS[2:],  # sling and the DuckDB CLI it writes Parquet with
]
SQL_PEER_DISTRIBUTIONS = [
    "dlt",
    "connectorx",
    "numpy",
    "psycopg2-binary",
    "sqlalchemy",
    "pyarrow",
    "sling-linux-amd64",
    "duckdb-cli",
]
DUCKDB_VERSION = "1.4.4"
INSTALL_TIMEOUT_SECONDS = 900.0
# Where dlt's filesystem destination puts the table's files: <dataset>/<table>/.
DLT_TABLE_FOLDER = "t1m/t1m/"
# sling writes one folder of files; a single-file Parquet target lost rows in the field notes.
SLING_FILE_MAX_ROWS = 1_000_000


class PeerEnvironment:
    """The peers' virtualenv under ``work_dir``: install, locate, describe."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.venv = work_dir / "peers"
        self.home = work_dir / "peer-home"
        self.python = self.venv / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        """The venv's site-packages (whatever its Python minor version)."""
        found = sorted(self.venv.glob("lib/python3*/site-packages"))
        return found[-1] if found else self.venv / "lib" / "site-packages"

    def ensure_installed(
        self,
        install: bool,
        requirements: list[str] = PEER_REQUIREMENTS,
        distributions: list[str] = PEER_DISTRIBUTIONS,
    ) -> str | None:
        """Create the venv and install the pinned peers when missing (``requirements``, checked
        by ``distributions``); the failure reason or None."""
        if self.python.exists() and not self._missing(distributions):
            return None
        if not install:
            return "peers not installed (run without --no-install-peers)"
        try:
            if not self.python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
            subprocess.run(
                [str(self.python), "-m", "pip", "install", "--quiet", *requirements],
                check=True,
                timeout=INSTALL_TIMEOUT_SECONDS,
                capture_output=True,
                text=True,
            )
        except subprocess.CalledProcessError as error:
            return f"pip install failed: {(error.stderr or '').strip().splitlines()[-1:]}"
        except (subprocess.TimeoutExpired, OSError) as error:
            return f"install failed: {error}"
        missing = self._missing(distributions)
        return f"not installed after pip: {', '.join(missing)}" if missing else None

    def _missing(self, distributions: list[str] = PEER_DISTRIBUTIONS) -> list[str]:
        return [name for name in distributions if self.version(name) is None]

    def version(self, distribution: str) -> str | None:
        """The installed version of ``distribution`` in the peers' venv, or None."""
        folder = distribution.replace("-", "_")
        for info in self.site_packages.glob(f"{folder}-*.dist-info"):
            return info.name[len(folder) + 1 : -len(".dist-info")]
        return None

    def versions(self, distributions: list[str] = PEER_DISTRIBUTIONS) -> dict[str, str]:
        """The versions of the peer distributions that are installed."""
        found = {name: self.version(name) for name in distributions}
        return {name: version for name, version in found.items() if version}

    def sling_binary(self) -> Path:
        return self.site_packages / "sling_linux_amd64" / "bin" / "sling-linux-amd64"

    def duckdb_cli(self) -> Path:
        return self.venv / "bin" / "duckdb"

    def _install_duckdb_extensions(self) -> None:
        """Copy the wheel-shipped extensions to where DuckDB loads installed ones from."""
        shipped = self.site_packages / "duckdb_ext" / "extensions"
        target = self.home / ".duckdb" / "extensions"
        for extension in shipped.rglob("*.duckdb_extension"):
            destination = target / extension.relative_to(shipped)
            if not destination.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(extension, destination)

    def base_env(self) -> dict[str, str]:
        """Environment for any peer: private HOME, no telemetry."""
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            HOME=str(self.home),
            RUNTIME__DLTHUB_TELEMETRY="false",
            SLING_DISABLE_TELEMETRY="true",
        )
        return env

    def dlt(self, reader: str, description: str) -> Contestant:
        """dlt reading the CSV with ``reader`` (``read_csv`` or ``arrow``), Parquet out."""

        def prepare(csv_path: Path, run_dir: Path) -> Invocation:
            return Invocation(
                argv=[
                    str(self.python),
                    str(BENCHMARKS_DIR / "dlt_csv_to_parquet.py"),
                    str(csv_path.resolve()),
                    str(run_dir / "out"),
                    "--reader",
                    reader,
                ],
                env=self.base_env(),
                output_dir=run_dir / "out" / DLT_TABLE_FOLDER,
            )

        name = "dlt-read_csv" if reader == "read_csv" else f"dlt-{reader}"
        return Contestant(name=name, description=description, prepare=prepare)

    def dlt_s3(self, reader: str, description: str, s3: S3Endpoint) -> Contestant:
        """dlt reading the CSV object of ``s3`` with ``reader``, Parquet out to ``s3``."""

        def prepare(csv_path: Path, run_dir: Path) -> Invocation:
            prefix = s3.output_prefix(run_dir.name)
            return Invocation(
                argv=[
                    str(self.python),
                    str(BENCHMARKS_DIR / "dlt_csv_to_parquet.py"),
                    s3.url(csv_path.name),
                    s3.url(prefix),
                    *("--reader", reader, "--s3-endpoint", s3.endpoint_url),
                ],
                env={**self.base_env(), **s3.credentials_env()},
                output_dir=run_dir / "out",
                output_prefix=f"{prefix}{DLT_TABLE_FOLDER}",
            )

        name = "dlt-read_csv" if reader == "read_csv" else f"dlt-{reader}"
        return Contestant(name=name, description=description, prepare=prepare)

    def sling_missing(self) -> str | None:
        """Why sling cannot run (its binary or the DuckDB CLI missing), or None."""
        missing = [p for p in (self.sling_binary(), self.duckdb_cli()) if not p.exists()]
        return f"missing {', '.join(p.name for p in missing)}" if missing else None

    def sling_env(self, run_dir: Path) -> dict[str, str]:
        """The environment of one sling run in ``run_dir``: offline, Parquet via the DuckDB CLI
        of the wheel and its extensions."""
        self._install_duckdb_extensions()
        env = self.base_env()
        env.update(
            SLING_HOME_DIR=str(run_dir / ".sling"),
            DUCKDB_PATH=str(self.duckdb_cli()),
            DUCKDB_VERSION=DUCKDB_VERSION,
            DUCKDB_USE_INSTALLED_EXTENSIONS="true",
        )
        return env

    def sling(self) -> Contestant:
        """sling CSV file -> folder of Parquet files, through its DuckDB CLI."""
        description = (
            f"sling `run --src-stream file://... --tgt-object file://DIR/` "
            f"(parquet, file_max_rows={SLING_FILE_MAX_ROWS:,}), DuckDB CLI {DUCKDB_VERSION}"
        )
        reason = self.sling_missing()
        if reason is not None:
            return Contestant("sling", description, lambda *_: _never(reason), not_run=reason)

        def prepare(csv_path: Path, run_dir: Path) -> Invocation:
            env = self.sling_env(run_dir)
            out = run_dir / "out"
            return Invocation(
                argv=[
                    str(self.sling_binary()),
                    "run",
                    "--src-stream",
                    csv_path.resolve().as_uri(),
                    "--tgt-object",
                    f"{out.as_uri()}/",
                    "--tgt-options",
                    f"{{format: parquet, file_max_rows: {SLING_FILE_MAX_ROWS}}}",
                ],
                env=env,
                output_dir=out,
            )

        return Contestant("sling", description, prepare)

    def sling_s3(self, s3: S3Endpoint) -> Contestant:
        """sling, the CSV object of ``s3`` -> a folder of Parquet files on ``s3``, through one
        S3 connection (``BENCH_S3``, in the environment) that names the endpoint."""
        description = (
            f"sling, S3 connection with `endpoint`: `run --src-conn BENCH_S3 --src-stream KEY "
            f"--tgt-conn BENCH_S3 --tgt-object PREFIX/` (parquet, "
            f"file_max_rows={SLING_FILE_MAX_ROWS:,}), DuckDB CLI {DUCKDB_VERSION}"
        )
        reason = self.sling_missing()
        if reason is not None:
            return Contestant("sling", description, lambda *_: _never(reason), not_run=reason)
        connection = json.dumps(
            {
                "type": "s3",
                "bucket": s3.bucket,
                "endpoint": s3.endpoint_url,
                "region": s3.region,
                "access_key_id": s3.access_key_id,
                "secret_access_key": s3.secret_access_key,
            }
        )

        def prepare(csv_path: Path, run_dir: Path) -> Invocation:
            prefix = s3.output_prefix(run_dir.name)
            env = self.sling_env(run_dir)
            env.update(s3.credentials_env(), BENCH_S3=connection)
            return Invocation(
                argv=[
                    str(self.sling_binary()),
                    "run",
                    *("--src-conn", "BENCH_S3", "--src-stream", csv_path.name),
                    *("--tgt-conn", "BENCH_S3", "--tgt-object", prefix),
                    "--tgt-options",
                    f"{{format: parquet, file_max_rows: {SLING_FILE_MAX_ROWS}}}",
                ],
                env=env,
                output_dir=run_dir / "out",
                output_prefix=prefix,
            )

        return Contestant("sling", description, prepare)


def _never(reason: str) -> Invocation:
    raise RuntimeError(f"not runnable: {reason}")


def peer_contestants(
    work_dir: Path, install: bool, s3: S3Endpoint | None = None
) -> tuple[list[Contestant], dict[str, str]]:
    """The peer contestants and the installed peer versions; with ``s3``, reading and writing
    that endpoint.

    With no usable peers' venv, every peer comes back with ``not_run`` set.
    """
    peers = PeerEnvironment(work_dir)
    if s3 is None:
        requirements, distributions = PEER_REQUIREMENTS, PEER_DISTRIBUTIONS
    else:
        requirements, distributions = S3_PEER_REQUIREMENTS, S3_PEER_DISTRIBUTIONS
    reason = peers.ensure_installed(install, requirements, distributions)
    read_csv = "dlt 1.31 `filesystem() | read_csv()` (pandas chunks) -> parquet"
    arrow = "dlt 1.31, a resource yielding pyarrow `open_csv` batches -> parquet"
    if s3 is None:
        contestants = [
            peers.dlt("read_csv", read_csv),
            peers.dlt("arrow", arrow),
            peers.sling(),
        ]
    else:
        on_s3 = " (s3fs; `AwsCredentials(endpoint_url=...)` for source and destination)"
        contestants = [
            peers.dlt_s3("read_csv", read_csv + on_s3, s3),
            peers.dlt_s3("arrow", arrow.replace("a resource", "a transformer") + on_s3, s3),
            peers.sling_s3(s3),
        ]
    if reason is not None:
        contestants = [
            Contestant(c.name, c.description, c.prepare, not_run=reason) for c in contestants
        ]
    return contestants, peers.versions(distributions)
