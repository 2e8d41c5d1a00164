"""The base of every connector's typed configuration spec."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr

from omconnect.codecs.type_names import parse_type


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


def _known_type_names(columns: dict[str, str]) -> dict[str, str]:
    for text in columns.values():
        parse_type(text)  # ValueError naming what is wrong: pydantic reports it on the key
    return columns


TypeNames = Annotated[dict[str, str], AfterValidator(_known_type_names)]
"""An option of ``{name: type}`` in omconnect's type names (``int64``, ``decimal(12,2)``,
``timestamp(UTC)``, ``array<string>``, see ``omconnect.codecs.type_names``); a text that is not
one is refused when the pipeline file is validated."""

__all__ = ["ConnectorSpec", "SecretStr", "TypeNames", "secret_fields"]
