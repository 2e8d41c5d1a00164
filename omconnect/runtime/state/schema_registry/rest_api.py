"""The Confluent Schema Registry REST API over any ``SchemaRegistry``, apart from HTTP servers.

``SchemaRegistryApi.handle(method, path, query, body)`` answers one request with a status and
a JSON value; a server only moves bytes (``omconnect serve`` mounts it at its root, as a real
registry is, so confluent-kafka's ``SchemaRegistryClient`` and other Confluent clients take
the worker's URL as their registry URL). Paths, JSON shapes and error codes are Confluent's;
responses are ``application/vnd.schemaregistry.v1+json``:

===================================================  ======================================
``GET /schemas/types``                               ``["AVRO"]``
``GET /schemas/ids/{id}``                            ``{"schema": "..."}`` (40403)
``GET /schemas/ids/{id}/schema``                     the schema itself
``GET /schemas/ids/{id}/subjects`` ``/versions``     where the id is used (``?deleted=true``)
``GET /subjects``                                    ``?subjectPrefix=&deleted=&deleted_only=``
``POST /subjects/{s}``                               look a schema up (40401, 40403)
``DELETE /subjects/{s}``                             soft, ``?permanent=true`` after (40404/5)
``GET /subjects/{s}/versions``                       ``[1, 2]`` (40401)
``POST /subjects/{s}/versions``                      register: ``{"id": n}`` (409, 42201)
``GET /subjects/{s}/versions/{v|latest}``            ``{"subject","version","id","schema"}``
``GET /subjects/{s}/versions/{v}/schema``            the schema itself
``GET /subjects/{s}/versions/{v}/referencedby``      ``[]`` (references are not supported)
``DELETE /subjects/{s}/versions/{v}``                soft, ``?permanent=true`` after (40406/7)
``GET|PUT|DELETE /config``, ``/config/{s}``          ``compatibilityLevel`` (40408, 42203)
``POST /compatibility/subjects/{s}/versions[/{v}]``  ``{"is_compatible": b}`` (``?verbose``)
``GET /mode``                                        ``{"mode": "READWRITE"}``
===================================================  ======================================

Only Avro is stored: another ``schemaType``, or schema references, get a 42201 error. A
schema id keeps answering after its versions are deleted (see ``protocol``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omconnect.runtime.state.schema_registry import _rest_errors as errors
from omconnect.runtime.state.schema_registry._rest_errors import RegistryApiError
from omconnect.runtime.state.schema_registry._rest_requests import RegistryRequest, match_path
from omconnect.runtime.state.schema_registry.compatibility import incompatibilities
from omconnect.runtime.state.schema_registry.protocol import (
    AvroSchema,
    CompatibilityMode,
    IncompatibleSchemaError,
    SchemaNotFoundError,
    SchemaRegistry,
)
from omconnect.runtime.state.schema_registry.registration import canonical_json

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ROOTS = frozenset({"schemas", "subjects", "config", "compatibility", "mode"})

log = logging.getLogger("omconnect.schema_registry")


@dataclass(frozen=True)
class RegistryResponse:
    """An answer: the HTTP status and the JSON value of the body."""

    status: int
    body: Any

    def encoded(self) -> bytes:
        return json.dumps(self.body).encode()


_Handler = Callable[[RegistryRequest], Any]


class SchemaRegistryApi:
    """Answers Confluent Schema Registry requests from ``registry`` (see the module doc).

    ``handle`` blocks on the registry (SQLite, or another registry over HTTP): an asyncio
    server runs it in a worker thread.
    """

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry
        routes: dict[str, dict[str, _Handler]] = {
            "schemas/types": {"GET": lambda r: ["AVRO"]},
            "schemas/ids/{id}": {"GET": self._schema_by_id},
            "schemas/ids/{id}/schema": {"GET": self._by_id},
            "schemas/ids/{id}/subjects": {"GET": self._subjects_of_id},
            "schemas/ids/{id}/versions": {"GET": self._versions_of_id},
            "subjects": {"GET": self._subjects},
            "subjects/{subject}": {"POST": self._lookup, "DELETE": self._delete_subject},
            "subjects/{subject}/versions": {"GET": self._versions, "POST": self._register},
            "subjects/{subject}/versions/{version}": {
                "GET": self._version,
                "DELETE": self._delete_version,
            },
            "subjects/{subject}/versions/{version}/schema": {"GET": self._version_schema},
            "subjects/{subject}/versions/{version}/referencedby": {"GET": self._referenced_by},
            "config": {"GET": self._config, "PUT": self._set_config, "DELETE": self._reset},
            "config/{subject}": {
                "GET": self._config,
                "PUT": self._set_config,
                "DELETE": self._reset,
            },
            "compatibility/subjects/{subject}/versions": {"POST": self._check},
            "compatibility/subjects/{subject}/versions/{version}": {"POST": self._check},
            "mode": {"GET": lambda r: {"mode": "READWRITE"}},
        }
        self._routes = [(path.split("/"), methods) for path, methods in routes.items()]

    @staticmethod
    def handles(path: str) -> bool:
        """Whether ``path`` is one of the registry's (its first segment is)."""
        return path.strip("/").split("/", 1)[0] in ROOTS

    def handle(
        self, method: str, path: str, query: Mapping[str, Sequence[str]], body: bytes = b""
    ) -> RegistryResponse:
        """The answer to ``method path?query`` with the request ``body`` (JSON bytes).

        Args:
            method: the HTTP method (HEAD is answered as GET; the server drops the body).
            path: the percent-decoded path, such as ``/subjects/orders-value/versions``.
            query: every query parameter's values.
            body: the request body.
        """
        try:
            handler, params = self._route(method, path)
            return RegistryResponse(200, handler(RegistryRequest(params, query, body)))
        except RegistryApiError as error:
            return RegistryResponse(error.status, error.as_json())
        except Exception:  # the store failed: a Confluent 50001, the details in the log
            log.exception("schema registry: %s %s failed", method, path)
            failed = errors.store_error()
            return RegistryResponse(failed.status, failed.as_json())

    def _route(self, method: str, path: str) -> tuple[_Handler, dict[str, str]]:
        segments = path.strip("/").split("/")
        for pattern, methods in self._routes:
            params = match_path(pattern, segments)
            if params is None:
                continue
            handler = methods.get("GET" if method == "HEAD" else method)
            if handler is None:
                raise errors.method_not_allowed()
            return handler, params
        raise errors.not_found()

    def _by_id(self, request: RegistryRequest) -> AvroSchema:
        text = request.params["id"]
        try:
            return self.registry.get(int(text))
        except (ValueError, SchemaNotFoundError):
            raise errors.schema_not_found(int(text) if text.isdigit() else None) from None

    def _schema_by_id(self, request: RegistryRequest) -> dict[str, Any]:
        return {"schema": canonical_json(self._by_id(request))}

    def _uses_of_id(self, request: RegistryRequest) -> list[tuple[str, int]]:
        """Every (subject, version) registered with the id (soft-deleted ones on request)."""
        self._by_id(request)
        schema_id, deleted = int(request.params["id"]), request.flag("deleted")
        return [
            (subject, version)
            for subject in self.registry.subjects(deleted)
            for version in self.registry.versions(subject, deleted)
            if (found := self.registry.version(subject, version, deleted)) is not None
            and found[0] == schema_id
        ]

    def _subjects_of_id(self, request: RegistryRequest) -> list[str]:
        return sorted({subject for subject, _ in self._uses_of_id(request)})

    def _versions_of_id(self, request: RegistryRequest) -> list[dict[str, Any]]:
        return [{"subject": s, "version": v} for s, v in self._uses_of_id(request)]

    def _subjects(self, request: RegistryRequest) -> list[str]:
        subjects = self.registry.subjects(deleted=request.flag("deleted"))
        if request.flag("deleted_only"):
            live = set(self.registry.subjects())
            subjects = [s for s in self.registry.subjects(deleted=True) if s not in live]
        prefix = (request.query.get("subjectPrefix") or [""])[-1]
        if prefix not in ("", ":*:"):  # Confluent's "every context", the default
            subjects = [s for s in subjects if s.startswith(prefix)]
        return request.page(subjects)

    def _versions(self, request: RegistryRequest) -> list[int]:
        subject = request.params["subject"]
        every = self.registry.versions(subject, deleted=True)
        if not every:
            raise errors.subject_not_found(subject)
        live = self.registry.versions(subject)
        if request.flag("deleted_only"):
            return request.page([v for v in every if v not in live])
        return request.page(every if request.flag("deleted") else live)

    def _resolve(self, request: RegistryRequest) -> tuple[int, int, AvroSchema]:
        """(version, id, schema) of the request's subject and version (``latest``, -1)."""
        subject, deleted = request.params["subject"], request.flag("deleted")
        wanted = request.version()
        versions = self.registry.versions(subject, deleted)
        if not versions:
            raise errors.subject_not_found(subject)
        version = versions[-1] if wanted is None else wanted
        found = self.registry.version(subject, version, deleted)
        if found is None:
            raise errors.version_not_found(version)
        return version, found[0], found[1]

    def _version(self, request: RegistryRequest) -> dict[str, Any]:
        version, schema_id, schema = self._resolve(request)
        return _registered(request.params["subject"], version, schema_id, schema)

    def _version_schema(self, request: RegistryRequest) -> AvroSchema:
        return self._resolve(request)[2]

    def _referenced_by(self, request: RegistryRequest) -> list[int]:
        """No schema references another: references are not supported."""
        self._resolve(request)
        return []

    def _register(self, request: RegistryRequest) -> dict[str, Any]:
        subject, fields = request.params["subject"], request.json()
        if fields.get("id") is not None:
            raise errors.operation_not_permitted(
                f"Subject '{subject}': registering a schema with a given id needs IMPORT mode, "
                "which this registry does not have"
            )
        schema = request.schema()
        try:
            return {"id": self.registry.register(subject, schema)}
        except IncompatibleSchemaError as refused:
            raise errors.incompatible_schema(subject, refused.mode, refused.problems) from None
        except ValueError as invalid:  # the registry's own Avro check
            raise errors.invalid_schema(str(invalid)) from None

    def _lookup(self, request: RegistryRequest) -> dict[str, Any]:
        subject, deleted = request.params["subject"], request.flag("deleted")
        wanted = canonical_json(request.schema())
        versions = self.registry.versions(subject, deleted)
        if not versions:
            raise errors.subject_not_found(subject)
        for version in reversed(versions):
            found = self.registry.version(subject, version, deleted)
            if found is not None and canonical_json(found[1]) == wanted:
                return _registered(subject, version, found[0], found[1])
        raise errors.schema_not_found()

    def _delete_subject(self, request: RegistryRequest) -> list[int]:
        subject = request.params["subject"]
        every = self.registry.versions(subject, deleted=True)
        if not every:
            raise errors.subject_not_found(subject)
        live = self.registry.versions(subject)
        if request.flag("permanent"):
            if live:
                raise errors.subject_not_soft_deleted(subject)
            self.registry.delete_versions(subject, every, permanent=True)
            return every
        if not live:
            raise errors.subject_soft_deleted(subject)
        self.registry.delete_versions(subject, live)
        self.registry.set_compatibility(None, subject)  # as Confluent: the subject's config goes
        return live

    def _delete_version(self, request: RegistryRequest) -> int:
        subject, permanent = request.params["subject"], request.flag("permanent")
        wanted = request.version()
        every = self.registry.versions(subject, deleted=True)
        if not every:
            raise errors.subject_not_found(subject)
        live = self.registry.versions(subject)
        candidates = every if permanent else live
        version = wanted if wanted is not None else (candidates[-1] if candidates else None)
        if version is None or version not in every:
            raise errors.version_not_found(request.params["version"])
        if permanent and version in live:
            raise errors.version_not_soft_deleted(subject, version)
        if not permanent and version not in live:
            raise errors.version_soft_deleted(subject, version)
        self.registry.delete_versions(subject, [version], permanent=permanent)
        return version

    def _config(self, request: RegistryRequest) -> dict[str, str]:
        subject = request.params.get("subject")
        if subject is None:
            return {"compatibilityLevel": self.registry.compatibility().value}
        own = self.registry.subject_compatibility(subject)
        if own is None:
            if not request.flag("defaultToGlobal"):
                raise errors.subject_compatibility_not_configured(subject)
            own = self.registry.compatibility()
        return {"compatibilityLevel": own.value}

    def _set_config(self, request: RegistryRequest) -> dict[str, str]:
        level = request.json().get("compatibility")
        try:
            mode = CompatibilityMode(str(level).upper())
        except ValueError:
            raise errors.invalid_compatibility_level() from None
        self.registry.set_compatibility(mode, request.params.get("subject"))
        return {"compatibility": mode.value}

    def _reset(self, request: RegistryRequest) -> dict[str, str]:
        """Remove the subject's own mode (40401 when it has none) or reset the default; the
        old mode is answered."""
        subject = request.params.get("subject")
        if subject is None:
            old = self.registry.compatibility()
        else:
            own = self.registry.subject_compatibility(subject)
            if own is None:
                raise errors.subject_not_found(subject)
            old = own
        self.registry.set_compatibility(None, subject)
        return {"compatibilityLevel": old.value}

    def _check(self, request: RegistryRequest) -> dict[str, Any]:
        """Whether the body's schema may follow the given version (``latest`` or none: the
        versions the subject's mode checks against)."""
        subject = request.params["subject"]
        schema = request.schema()
        wanted = request.version()
        if wanted is None:
            earlier = [
                (version, found[1])
                for version in self.registry.versions(subject)
                if (found := self.registry.version(subject, version)) is not None
            ]
        else:
            version, _, old = self._resolve(request)
            earlier = [(version, old)]
        problems = incompatibilities(self.registry.compatibility(subject), schema, earlier)
        answer: dict[str, Any] = {"is_compatible": not problems}
        if request.flag("verbose"):
            answer["messages"] = problems
        return answer


def _registered(subject: str, version: int, schema_id: int, schema: AvroSchema) -> dict[str, Any]:
    """The JSON of one version (Confluent leaves ``schemaType`` out for Avro)."""
    return {
        "subject": subject,
        "version": version,
        "id": schema_id,
        "schema": canonical_json(schema),
    }
