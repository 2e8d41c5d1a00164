"""The smallest valid-looking options of a spec: its required fields (and optional ones that
declare examples) with example values.

A field's own ``examples`` win; otherwise a placeholder by type (``<path>`` for a string
called ``path``). Secrets become ``${CONNECTOR_FIELD}`` so the example also shows how a
pipeline keeps them out of the file.
"""

from __future__ import annotations

import enum
import types
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic_core import to_jsonable_python

from omconnect.connectors.api.spec import secret_fields


def example_options(spec: type[BaseModel], env_prefix: str) -> dict[str, Any]:
    """Example values for the required fields of ``spec`` (and of its required nested models),
    and for the optional fields that declare ``examples`` (one of several alternatives, such as
    the sql source's ``tables`` or ``query``).

    Args:
        spec: A connector spec.
        env_prefix: Prefix of the environment variable names shown for secrets, e.g. ``SQL``.

    Returns:
        A mapping in field declaration order, ready for ``yaml.safe_dump(sort_keys=False)``.
    """
    secrets = secret_fields(spec)
    options: dict[str, Any] = {}
    for name, info in spec.model_fields.items():
        if not info.is_required() and not info.examples:
            continue
        if name in secrets:
            options[name] = "${" + environment_name(env_prefix, name) + "}"
        elif info.examples:
            options[name] = to_jsonable_python(info.examples[0])
        else:
            options[name] = placeholder(name, info.annotation, environment_name(env_prefix, name))
    return options


def environment_name(prefix: str, name: str) -> str:
    """``postgres-cdc`` + ``password`` -> ``POSTGRES_CDC_PASSWORD``."""
    text = f"{prefix}_{name}".upper()
    return "".join(char if char.isalnum() else "_" for char in text)


def placeholder(name: str, annotation: Any, env_name: str) -> Any:
    """An example value of ``annotation`` for the option ``name``.

    ``env_name`` names the environment variable shown for a secret value, and prefixes the
    variables of a nested model's secrets.
    """
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Union or origin is types.UnionType:
        members = [arg for arg in args if arg is not type(None)]
        return placeholder(name, members[0], env_name) if members else None
    if origin is Literal:
        return args[0]
    if origin in (list, tuple, set, frozenset):
        return [placeholder(name, args[0] if args else str, env_name)]
    if origin is dict:
        return {}
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return next(iter(annotation)).value
        if issubclass(annotation, BaseModel):
            return example_options(annotation, env_name)
        if issubclass(annotation, SecretStr | SecretBytes):
            return "${" + env_name + "}"
        if issubclass(annotation, bool):
            return True
        if issubclass(annotation, int):
            return 1
        if issubclass(annotation, float):
            return 1.0
    return f"<{name}>"
