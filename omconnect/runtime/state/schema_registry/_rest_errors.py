"""The errors of the Confluent Schema Registry REST API: HTTP status, Confluent error code and
message, as Confluent's registry words them (clients such as confluent-kafka's
``SchemaRegistryClient`` act on the codes)."""

from __future__ import annotations

from omconnect.runtime.state.schema_registry.protocol import CompatibilityMode


class RegistryApiError(Exception):
    """An error answer: ``{"error_code": error_code, "message": message}`` with ``status``."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def as_json(self) -> dict[str, object]:
        return {"error_code": self.error_code, "message": self.message}


def not_found() -> RegistryApiError:
    return RegistryApiError(404, 404, "HTTP 404 Not Found")


def method_not_allowed() -> RegistryApiError:
    return RegistryApiError(405, 405, "HTTP 405 Method Not Allowed")


def bad_request(message: str) -> RegistryApiError:
    return RegistryApiError(400, 400, message)


def subject_not_found(subject: str) -> RegistryApiError:
    return RegistryApiError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(version: int | str) -> RegistryApiError:
    return RegistryApiError(404, 40402, f"Version {version} not found.")


def schema_not_found(schema_id: int | None = None) -> RegistryApiError:
    which = f"Schema {schema_id} not found" if schema_id is not None else "Schema not found"
    return RegistryApiError(404, 40403, which)


def subject_soft_deleted(subject: str) -> RegistryApiError:
    return RegistryApiError(
        404, 40404, f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
    )


def subject_not_soft_deleted(subject: str) -> RegistryApiError:
    return RegistryApiError(
        404,
        40405,
        f"Subject '{subject}' was not deleted first before being permanently deleted",
    )


def version_soft_deleted(subject: str, version: int) -> RegistryApiError:
    return RegistryApiError(
        404,
        40406,
        f"Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete "
        "permanently",
    )


def version_not_soft_deleted(subject: str, version: int) -> RegistryApiError:
    return RegistryApiError(
        404,
        40407,
        f"Subject '{subject}' Version {version} was not deleted first before being permanently "
        "deleted",
    )


def subject_compatibility_not_configured(subject: str) -> RegistryApiError:
    return RegistryApiError(
        404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured"
    )


def invalid_schema(reason: str) -> RegistryApiError:
    return RegistryApiError(422, 42201, f"Invalid schema: {reason}")


def unsupported_schema_type(schema_type: str) -> RegistryApiError:
    return RegistryApiError(
        422, 42201, f"Invalid schema type {schema_type}: this registry stores AVRO schemas only"
    )


def invalid_version(text: str) -> RegistryApiError:
    return RegistryApiError(
        422,
        42202,
        f"The specified version '{text}' is not a valid version id. Allowed values are between "
        '[1, 2^31-1] and the string "latest"',
    )


def invalid_compatibility_level() -> RegistryApiError:
    levels = ", ".join(mode.value.lower() for mode in CompatibilityMode)
    return RegistryApiError(422, 42203, f"Invalid compatibility level. Valid values are {levels}")


def operation_not_permitted(message: str) -> RegistryApiError:
    return RegistryApiError(422, 42205, message)


def incompatible_schema(
    subject: str, mode: CompatibilityMode | None, problems: list[str]
) -> RegistryApiError:
    details = [*problems, f"{{compatibility: '{mode.value}'}}"] if mode else problems
    return RegistryApiError(
        409,
        409,
        "Schema being registered is incompatible with an earlier schema for subject "
        f'"{subject}", details: [{", ".join(details)}]',
    )


def store_error() -> RegistryApiError:
    return RegistryApiError(500, 50001, "Error in the backend datastore; see the server's log")
