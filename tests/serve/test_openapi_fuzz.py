"""``/openapi.json`` describes every route of the API, and the API answers what the document
says: schemathesis fuzzes a real served worker (with its token) from the document, and no
answer may be a 5xx or differ from the document's schemas and status codes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from omconnect.runtime.state.schema_registry import SqliteSchemaRegistry
from tests.support.served_worker import ServedWorker, write_orders, write_pipeline

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 12


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedWorker]:
    # A fuzzed body that happens to be a valid pipeline writes relative paths: keep them here.
    monkeypatch.chdir(tmp_path)
    write_orders(tmp_path / "in" / "a.csv", range(1, 4))
    write_pipeline(tmp_path / "pipelines", "orders", tmp_path, tmp_path / "in")
    registry = SqliteSchemaRegistry(tmp_path / "state" / "registry.sqlite")
    with ServedWorker(tmp_path / "pipelines", registry=registry) as served:
        yield served


def test_the_document_lists_exactly_the_served_routes(worker: ServedWorker) -> None:
    document = worker.json("GET", "/openapi.json")
    documented = {
        (path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = {
        (re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method)
        for route in _served_routes(worker)
        for method in route.methods or ()
        if method != "HEAD"
    }
    # The status page's own assets are answered in front of the router.
    assets = {("/status-page.js", "GET"), ("/status-page.css", "GET")}
    assert documented == served | assets
    for path, _ in assets:
        assert worker.request("GET", path, authorized=False)[0] == 200
    for path in ("/pipelines", "/pipelines/{name}/config", "/connector-plugins", "/subjects"):
        assert path in document["paths"]
    assert document["openapi"].startswith("3.1")


def test_fuzzed_requests_get_no_5xx_and_documented_answers(worker: ServedWorker) -> None:
    headers = {"Authorization": f"Bearer {worker.token}"}
    schema = schemathesis.openapi.from_dict(_with_examples(worker.json("GET", "/openapi.json")))
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    # Deleting the served pipeline last lets every other operation reach it first.
    operations.sort(key=lambda operation: operation.label == "DELETE /pipelines/{name}")
    assert len(operations) > 25
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=worker.base_url, headers=headers, checks=CHECKS, timeout=10
            )

        try:
            fuzz()
        except (
            Exception,
            BaseExceptionGroup,
        ) as exc:  # every operation's failure is reported, not just the first
            failures[operation.label] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


def _with_examples(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the served pipeline and a real plugin as the examples of ``{name}``,
    so that the first example of each operation reaches a real pipeline, not just 404s."""
    for path, operations in document["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "name":
                    plugin = path.startswith("/connector-plugins")
                    parameter["example"] = "csv" if plugin else "orders"
    return document


def _served_routes(worker: ServedWorker) -> list[object]:
    from omconnect.runtime.serve.http_api import ServeApi

    return list(ServeApi(worker.supervisor, worker.access, worker.registry).routes)
