"""``HttpSchemaRegistry`` against real HTTP servers: ``serve``'s registry API (the contract
tests the embedded registry passes, run again through the client), and a registry behind
basic auth and a path prefix; one-line errors that never show a password."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from omconnect.runtime.state.schema_registry import (
    HttpSchemaRegistry,
    IncompatibleSchemaError,
    SchemaNotFoundError,
    SchemaRegistryApi,
    SchemaRegistryError,
    SchemaRegistryUnavailableError,
    SqliteSchemaRegistry,
)
from omconnect.runtime.state.schema_registry.rest_api import CONTENT_TYPE
from tests.state.schema_registry import test_embedded_schema_registry as embedded
from tests.support.served_worker import ServedWorker

# The embedded registry's contract tests, run against the client (the ``registry`` fixture
# below); the tests of stored state and processes stay with the embedded registries.
test_register_is_idempotent_and_ids_are_global = (
    embedded.test_register_is_idempotent_and_ids_are_global
)
test_a_schema_avro_rejects_is_refused = embedded.test_a_schema_avro_rejects_is_refused
test_backward_default_refuses_a_new_field_without_default = (
    embedded.test_backward_default_refuses_a_new_field_without_default
)
test_backward_accepts_promotions_removed_fields_and_nullable_widening = (
    embedded.test_backward_accepts_promotions_removed_fields_and_nullable_widening
)
test_forward_full_and_none = embedded.test_forward_full_and_none
test_transitive_checks_every_version = embedded.test_transitive_checks_every_version

USER, PASSWORD = "reader", "s3cret-Pa55"
ORDERS = {"type": "record", "name": "orders", "fields": [{"name": "id", "type": "long"}]}
WITH_AMOUNT = {
    "type": "record",
    "name": "orders",
    "fields": [{"name": "id", "type": "long"}, {"name": "amount", "type": "double"}],
}


@pytest.fixture
def registry(served_registry: ServedWorker) -> HttpSchemaRegistry:
    return HttpSchemaRegistry(served_registry.url)


class GuardedRegistry:
    """A registry API behind HTTP basic auth under ``/sr``, on a stdlib HTTP server."""

    def __init__(self, path: Path) -> None:
        self.store = SqliteSchemaRegistry(path)
        api = SchemaRegistryApi(self.store)
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("Authorization") != expected:
                    status, payload = 401, b'{"error_code":401,"message":"Unauthorized"}'
                elif not url.path.startswith("/sr/"):
                    status, payload = 404, b"<html>not here</html>"
                else:
                    path, query = unquote(url.path[3:]), parse_qs(url.query)
                    answer = api.handle(self.command, path, query, body)
                    status, payload = answer.status, answer.encoded()
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, password: str = PASSWORD) -> str:
        return f"http://{USER}:{password}@127.0.0.1:{self.port}/sr"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
        self.store.close()


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[GuardedRegistry]:
    server = GuardedRegistry(tmp_path / "guarded.sqlite")
    try:
        yield server
    finally:
        server.stop()


def test_basic_auth_from_the_url_and_a_path_prefix(guarded: GuardedRegistry) -> None:
    client = HttpSchemaRegistry(guarded.url())
    assert client.url == f"http://127.0.0.1:{guarded.port}/sr"
    assert PASSWORD not in repr(client)
    schema_id = client.register("orders-value", ORDERS)
    assert guarded.store.get(schema_id) == ORDERS
    assert client.latest("orders-value") == (schema_id, 1, ORDERS)

    refused = HttpSchemaRegistry(guarded.url(password="wrong"))
    with pytest.raises(SchemaRegistryError, match=r"refused the credentials \(401\)") as error:
        refused.subjects()
    assert "wrong" not in str(error.value) and PASSWORD not in str(error.value)


def test_ids_stay_cached_when_the_registry_goes_away(guarded: GuardedRegistry) -> None:
    client = HttpSchemaRegistry(guarded.url(), timeout=2)
    schema_id = client.register("orders-value", ORDERS)
    guarded.stop()
    assert client.get(schema_id) == ORDERS
    assert client.register("orders-value", ORDERS) == schema_id
    with pytest.raises(SchemaRegistryUnavailableError) as error:
        client.latest("orders-value")
    message = str(error.value)
    assert message.startswith(f"the schema registry at http://127.0.0.1:{guarded.port}/sr is ")
    assert "unreachable" in message and "\n" not in message and PASSWORD not in message


def test_an_unreachable_registry_is_one_line_without_the_password() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = HttpSchemaRegistry(f"http://{USER}:{PASSWORD}@127.0.0.1:{port}")
    with pytest.raises(SchemaRegistryUnavailableError) as error:
        client.register("orders-value", ORDERS)
    assert str(error.value) == (
        f"the schema registry at http://127.0.0.1:{port} is unreachable: [Errno 111] "
        "Connection refused"
    )


def test_a_registry_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # connections queue in the backlog, never answered
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        client = HttpSchemaRegistry(f"http://127.0.0.1:{port}", timeout=0.3)
        with pytest.raises(SchemaRegistryUnavailableError, match="unreachable: timed out"):
            client.subjects()


def test_refusals_and_invalid_schemas_as_the_embedded_registry_raises(
    registry: HttpSchemaRegistry,
) -> None:
    registry.register("orders-value", ORDERS)
    with pytest.raises(IncompatibleSchemaError) as refused:
        registry.register("orders-value", WITH_AMOUNT)
    assert refused.value.subject == "orders-value"
    assert str(refused.value.mode) == "BACKWARD"
    message = str(refused.value)
    assert message.startswith("schema for subject 'orders-value' is not BACKWARD compatible: ")
    assert f"the registry at {registry.url} says: " in message and "orders.amount" in message
    with pytest.raises(ValueError, match="subject 'bad-value': not a valid Avro schema"):
        registry.register("bad-value", {"type": "record", "name": "r", "fields": [{"name": "x"}]})
    with pytest.raises(SchemaNotFoundError):
        registry.get(12345)


def test_a_server_that_is_not_a_registry_is_not_taken_for_an_empty_one(tmp_path: Path) -> None:
    folder = tmp_path / "pipelines"
    folder.mkdir()
    with ServedWorker(folder) as worker:  # serve without a registry: every path is a 404
        client = HttpSchemaRegistry(worker.url)
        with pytest.raises(SchemaRegistryError, match="answered GET /subjects/x/versions with 404"):
            client.versions("x")
        with pytest.raises(SchemaRegistryError, match="with 404"):
            client.register("x", ORDERS)


@pytest.mark.parametrize("url", ["kafka://host:9092", "http://", "host:8081", "file:///tmp/x"])
def test_a_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="http://host:port"):
        HttpSchemaRegistry(url)
