"""Orchestrator tests: Airflow in a minimal local mode (a SQLite metadata database in a
temporary AIRFLOW_HOME of this test process) and Dagster in-process.

Airflow reads its configuration when it is first imported, so the environment is set here,
when pytest collects this folder, before any test module imports Airflow; each xdist worker
is its own process and gets its own AIRFLOW_HOME. Airflow itself is imported only by the
``airflow_home`` fixture, so collecting these tests leaves the rest of the suite alone.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="omconnect-airflow-"))
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(_AIRFLOW_HOME / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
)
(_AIRFLOW_HOME / "dags").mkdir()


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """This process's AIRFLOW_HOME with its metadata database created (about 2 s, once);
    DAG files the tests write go into its ``dags`` folder."""
    if "airflow" in sys.modules:
        from airflow.configuration import AIRFLOW_HOME

        if Path(AIRFLOW_HOME) != _AIRFLOW_HOME:
            pytest.fail(
                f"Airflow was imported before tests/orchestrators set its home: {AIRFLOW_HOME}"
            )
    from airflow.utils import db

    db.initdb()
    return _AIRFLOW_HOME
