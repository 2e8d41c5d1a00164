"""A connector spec's options, flattened into rows for docs and checks over every plugin.

Nested pydantic models (such as ``s3: {endpoint_url, region}``) become dotted rows
(``s3.endpoint_url``); a list of models becomes ``name[].field``. Everything shown is derived
from the spec itself, so the rows change only when the spec does.
"""

from __future__ import annotations

import datetime
import enum
import json
import types
from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from omconnect.connectors.api.spec import secret_fields

_SCALAR_LABELS: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    bytes: "bytes",
    SecretStr: "string",
    SecretBytes: "bytes",
    datetime.datetime: "timestamp",
    datetime.date: "date",
    datetime.time: "time",
    datetime.timedelta: "duration",
    Any: "any",
}


@dataclass(frozen=True)
class SpecOption:
    """One option of a spec as users write it in a pipeline file.

    Attributes:
        name: The dotted path of the option (``s3.endpoint_url``).
        aliases: Other keys accepted for it (pydantic aliases), in declaration order.
        type_label: The type in words (``list of string``, ``one of `append`, `upsert```).
        default_label: The default as YAML-ish text, or "" when the option is required.
        required: True when a pipeline must set it.
        secret: True for secret values (redacted everywhere).
        description: The field's description, "" when it has none.
        info: The pydantic field, for callers that need more than the labels.
    """

    name: str
    aliases: tuple[str, ...]
    type_label: str
    default_label: str
    required: bool
    secret: bool
    description: str
    info: FieldInfo


def spec_options(spec: type[BaseModel], prefix: str = "") -> list[SpecOption]:
    """Every option of ``spec`` in declaration order, nested models expanded after their parent.

    Args:
        spec: A connector spec (or any pydantic model).
        prefix: Prepended to each name; used for nested models.

    Returns:
        One ``SpecOption`` per field, depth first.
    """
    secrets = secret_fields(spec)
    rows: list[SpecOption] = []
    for field_name, info in spec.model_fields.items():
        name = f"{prefix}{field_name}"
        rows.append(
            SpecOption(
                name=name,
                aliases=field_aliases(field_name, info),
                type_label=type_label(info.annotation),
                default_label="" if info.is_required() else default_label(info),
                required=info.is_required(),
                secret=field_name in secrets,
                description=" ".join((info.description or "").split()),
                info=info,
            )
        )
        nested, in_list = nested_model(info.annotation)
        if nested is not None:
            rows.extend(spec_options(nested, f"{name}[]." if in_list else f"{name}."))
    return rows


def field_aliases(field_name: str, info: FieldInfo) -> tuple[str, ...]:
    """The keys besides ``field_name`` that pydantic accepts for the field."""
    found: list[str] = []
    candidates: list[Any] = [info.alias, info.validation_alias]
    for candidate in candidates:
        choices = getattr(candidate, "choices", None)
        for choice in choices if choices is not None else [candidate]:
            if isinstance(choice, str) and choice != field_name and choice not in found:
                found.append(choice)
    return tuple(found)


def type_label(annotation: Any) -> str:
    """The type of an option in words, as a user writing YAML needs it."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:  # a type with validators (``TypeNames``): the type it annotates
        return type_label(args[0])
    if origin is Union or origin is types.UnionType:
        members = [type_label(arg) for arg in args if arg is not type(None)]
        return " or ".join(dict.fromkeys(members))
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in args)
    if origin in (list, tuple, set, frozenset):
        item = args[0] if args else Any
        return f"list of {type_label(item)}"
    if origin is dict:
        key, value = args if len(args) == 2 else (Any, Any)
        return f"map of {type_label(key)} to {type_label(value)}"
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return "one of " + ", ".join(f"`{member.value}`" for member in annotation)
        if issubclass(annotation, BaseModel):
            return "object"
        if issubclass(annotation, PurePath):
            return "path"
    if annotation in _SCALAR_LABELS:
        return _SCALAR_LABELS[annotation]
    return getattr(annotation, "__name__", str(annotation))


def nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model an option holds, if any, and whether it holds a list of them."""
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        for arg in get_args(annotation):
            found = nested_model(arg)
            if found[0] is not None:
                return found
        return None, False
    if origin in (list, tuple, set, frozenset):
        args = get_args(annotation)
        inner, _ = nested_model(args[0]) if args else (None, False)
        return inner, inner is not None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    return None, False


def default_label(info: FieldInfo) -> str:
    """The default of an optional field as JSON text (``null``, ``65536``, ``[]``)."""
    value = info.get_default(call_default_factory=True, validated_data={})
    if isinstance(value, SecretStr | SecretBytes):
        return "(secret)"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(to_jsonable_python(value), sort_keys=True)
