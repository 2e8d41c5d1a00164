"""The base of every connector's typed configuration spec."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr


class ConnectorSpec(BaseModel):
    """A connector's options as a pydantic model.

    Field descriptions become the docs page, ``omconnect connectors describe`` and the JSON
    Schema for pipeline files. Unknown keys are refused. Mark secrets with ``SecretStr``: they
    are redacted in every log line, error and API response.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def secret_fields(spec: type[BaseModel]) -> set[str]:
    """Names of the top-level fields of ``spec`` that hold secrets."""
    found = set()
    for name, info in spec.model_fields.items():
        annotation = str(info.annotation)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if "SecretStr" in annotation or extra.get("secret"):
            found.add(name)
    return found


__all__ = ["ConnectorSpec", "SecretStr", "secret_fields"]
