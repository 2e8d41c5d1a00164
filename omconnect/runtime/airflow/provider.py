"""omconnect as an Airflow provider (the ``apache_airflow_provider`` entry point).

Airflow's providers manager imports this module without importing the operators, so it
imports nothing from Airflow or the rest of the package.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

INTEGRATION = "omconnect"


def get_provider_info() -> dict[str, Any]:
    """What Airflow's providers manager lists for omconnect (the shape of a provider.yaml)."""
    return {
        "package-name": "omconnect",
        "name": "omconnect",
        "description": (
            "Runs omconnect pipeline files as Airflow tasks and DAGs: an operator that runs "
            "a pipeline once, a deferrable variant for streaming sources, and a DAG factory "
            "over a folder of pipelines."
        ),
        "versions": [_version()],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["omconnect.runtime.airflow.operators"],
            }
        ],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["omconnect.runtime.airflow.triggers"],
            }
        ],
    }


def _version() -> str:
    try:
        return version("omconnect")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "0.0.0"
