"""``HttpSchemaRegistry``: the ``SchemaRegistry`` of an external Confluent-compatible registry.

A pipeline's ``schema_registry: http://host:8081`` makes its converters register and read
schemas there instead of in the embedded registry of its ``state:``: Confluent's Schema
Registry, or any registry with its REST API (another omconnect's ``serve`` included). Requests
use the standard library, so there is nothing to install.

Schemas by id (an id never changes meaning) and registrations are cached (a version deleted
through another client stays registered for this one, as with Confluent's own clients); the
latest version, version lists and modes are asked each time, as they change. The URL's userinfo
(``https://user:password@host``) is sent as HTTP basic auth and never shown: errors name the
URL without it. Errors are one line: ``SchemaRegistryUnavailableError`` when the registry
cannot be reached, ``SchemaRegistryError`` for any other unexpected answer; a compatibility
refusal (409) raises ``IncompatibleSchemaError`` with the registry's message and an invalid
schema (422) ``ValueError``, as the embedded registry does.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

from omconnect.runtime.state.schema_registry.protocol import (
    AvroSchema,
    CompatibilityMode,
    IncompatibleSchemaError,
    SchemaNotFoundError,
)
from omconnect.runtime.state.schema_registry.registration import canonical_json
from omconnect.runtime.state.schema_registry.rest_api import CONTENT_TYPE

TIMEOUT = 10.0
ACCEPT = f"{CONTENT_TYPE}, application/vnd.schemaregistry+json, application/json"


class SchemaRegistryError(RuntimeError):
    """The schema registry answered something unexpected (the message says what)."""


class SchemaRegistryUnavailableError(SchemaRegistryError):
    """The schema registry cannot be reached (refused, unknown host, timed out)."""


class HttpSchemaRegistry:
    """The registry at ``url`` (``http://`` or ``https://``, with an optional path prefix).

    Raises:
        ValueError: ``url`` is not an http(s) URL with a host.
    """

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a schema registry URL is http://host:port or https://host:port")
        host = parts.netloc.rpartition("@")[2]
        self.url = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
        self._timeout = timeout
        self._auth: str | None = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(pair.encode()).decode()
        self._lock = threading.Lock()
        self._schemas: dict[int, AvroSchema] = {}
        self._ids: dict[tuple[str, str], int] = {}

    def __repr__(self) -> str:
        return f"HttpSchemaRegistry({self.url!r})"

    def register(self, subject: str, avro_schema: AvroSchema) -> int:
        canonical = canonical_json(avro_schema)
        with self._lock:
            cached = self._ids.get((subject, canonical))
        if cached is not None:
            return cached
        path = ["subjects", subject, "versions"]
        status, body = self._send("POST", path, body={"schema": canonical})
        if status == 409:
            said = f"the registry at {self.url} says: {_message(body)}"
            raise IncompatibleSchemaError(subject, self._mode_if_known(subject), [said])
        if status == 422:
            raise ValueError(f"subject {subject!r}: not a valid Avro schema: {_message(body)}")
        schema_id = int(self._expect(status, body, "POST", path)["id"])
        with self._lock:
            self._ids[subject, canonical] = schema_id
            self._schemas.setdefault(schema_id, avro_schema)
        return schema_id

    def get(self, schema_id: int) -> AvroSchema:
        with self._lock:
            cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        found = self._call("GET", ["schemas", "ids", str(int(schema_id))], missing=True)
        if found is None:
            raise SchemaNotFoundError(f"no schema with id {schema_id} in {self.url}")
        schema = _avro_of(found, f"schema {schema_id}")
        with self._lock:
            self._schemas[schema_id] = schema
        return schema

    def latest(self, subject: str) -> tuple[int, int, AvroSchema] | None:
        found = self._call("GET", ["subjects", subject, "versions", "latest"], missing=True)
        if found is None:
            return None
        return int(found["id"]), int(found["version"]), _avro_of(found, subject)

    def version(
        self, subject: str, version: int, deleted: bool = False
    ) -> tuple[int, AvroSchema] | None:
        path = ["subjects", subject, "versions", str(int(version))]
        found = self._call("GET", path, _deleted(deleted), missing=True)
        return (int(found["id"]), _avro_of(found, subject)) if found is not None else None

    def subjects(self, deleted: bool = False) -> list[str]:
        return sorted(str(s) for s in self._call("GET", ["subjects"], _deleted(deleted)))

    def versions(self, subject: str, deleted: bool = False) -> list[int]:
        path = ["subjects", subject, "versions"]
        found = self._call("GET", path, _deleted(deleted), missing=True)
        return sorted(int(v) for v in found) if found is not None else []

    def delete_versions(self, subject: str, versions: list[int], permanent: bool = False) -> None:
        """Each version soft-deleted, then (``permanent``) removed: Confluent's registry only
        removes what was soft-deleted first. Unknown or already soft-deleted versions are
        skipped (404). Cached registrations of the subject are forgotten, so registering a
        deleted schema again makes a new version, as with the embedded registry."""
        with self._lock:
            self._ids = {key: i for key, i in self._ids.items() if key[0] != subject}
        for version in versions:
            path = ["subjects", subject, "versions", str(int(version))]
            self._call("DELETE", path, missing=True)
            if permanent:
                self._call("DELETE", path, {"permanent": "true"}, missing=True)

    def set_compatibility(
        self, mode: CompatibilityMode | str | None, subject: str | None = None
    ) -> None:
        path = ["config", subject] if subject else ["config"]
        if mode is None:
            self._call("DELETE", path, missing=True)
            return
        checked = CompatibilityMode(str(mode).upper())
        self._call("PUT", path, body={"compatibility": checked.value})

    def compatibility(self, subject: str | None = None) -> CompatibilityMode:
        if subject:
            own = self._call("GET", ["config", subject], {"defaultToGlobal": "true"}, missing=True)
            if own is not None:
                return CompatibilityMode(own["compatibilityLevel"])
        return CompatibilityMode(self._call("GET", ["config"])["compatibilityLevel"])

    def subject_compatibility(self, subject: str) -> CompatibilityMode | None:
        own = self._call("GET", ["config", subject], missing=True)
        return CompatibilityMode(own["compatibilityLevel"]) if own is not None else None

    def _mode_if_known(self, subject: str) -> CompatibilityMode | None:
        """The subject's mode, to name in a refusal; None when the registry will not say."""
        try:
            return self.compatibility(subject)
        except (SchemaRegistryError, KeyError, TypeError, ValueError):
            return None

    def _call(
        self,
        method: str,
        path: list[str],
        query: dict[str, str] | None = None,
        body: Any = None,
        missing: bool = False,
    ) -> Any:
        """The JSON answer of a request that must succeed; None when ``missing`` and the
        registry says it has no such thing (a 404 with a 404xx error code: a bare 404 is an
        endpoint this server does not have, so it is not a schema registry)."""
        status, answer = self._send(method, path, query, body)
        if missing and status == 404 and 40400 < _error_code(answer) < 40500:
            return None
        return self._expect(status, answer, method, path)

    def _expect(self, status: int, answer: Any, method: str, path: list[str]) -> Any:
        if 200 <= status < 300:
            return answer
        if status in (401, 403):
            raise SchemaRegistryError(
                f"the schema registry at {self.url} refused the credentials ({status}): "
                f"{_message(answer)}"
            )
        code = _error_code(answer)
        raise SchemaRegistryError(
            f"the schema registry at {self.url} answered {method} /{'/'.join(path)} with "
            f"{status}{f' (error {code})' if code else ''}: {_message(answer)}"
        )

    def _send(
        self,
        method: str,
        path: list[str],
        query: dict[str, str] | None = None,
        body: Any = None,
    ) -> tuple[int, Any]:
        """(status, JSON answer) of one request; error statuses are answers too."""
        target = self.url + "/" + "/".join(quote(segment, safe="") for segment in path)
        if query:
            target += "?" + urlencode(query)
        headers = {"Accept": ACCEPT}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = CONTENT_TYPE
        if self._auth is not None:
            headers["Authorization"] = self._auth
        request = urllib.request.Request(target, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return response.status, _parsed(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, _parsed(error.read())
        except urllib.error.URLError as error:
            raise self._unreachable(error.reason) from None
        except (OSError, http.client.HTTPException) as error:  # timeouts, resets
            raise self._unreachable(error) from None

    def _unreachable(self, reason: object) -> SchemaRegistryUnavailableError:
        text = str(reason) or type(reason).__name__
        return SchemaRegistryUnavailableError(
            f"the schema registry at {self.url} is unreachable: {text}"
        )


def _deleted(deleted: bool) -> dict[str, str] | None:
    return {"deleted": "true"} if deleted else None


def _parsed(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:  # a proxy's HTML page, say: keep its start for the message
        return {"message": raw[:200].decode("utf-8", "replace").strip()}


def _error_code(answer: Any) -> int:
    """Confluent's ``error_code`` of an error answer (0 when there is none)."""
    code = answer.get("error_code") if isinstance(answer, dict) else None
    return code if isinstance(code, int) else 0


def _message(answer: Any) -> str:
    if isinstance(answer, dict) and answer.get("message"):
        return str(answer["message"])
    return json.dumps(answer)[:200]


def _avro_of(answer: dict[str, Any], what: str) -> AvroSchema:
    """The Avro schema of an answer with ``schema`` (and ``schemaType``, absent for Avro)."""
    schema_type = answer.get("schemaType") or "AVRO"
    if schema_type != "AVRO":
        raise ValueError(f"{what} is a {schema_type} schema; omconnect reads AVRO ones")
    return json.loads(answer["schema"])
