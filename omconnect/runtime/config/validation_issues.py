"""Pydantic validation errors turned into issues a person can act on.

Each error's location is mapped back onto the document's key path (dropping the union member
names pydantic adds), unknown keys get a "did you mean" from the model's field names, and the
wording is pydantic's, lower-cased, with the offending value appended unless it may be secret.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from omconnect.runtime.config.problems import Issue, KeyPath
from omconnect.runtime.config.redaction import is_secret_key

_MAX_SHOWN_INPUT = 80
# Plainer words than pydantic's for the commonest type errors (which also name model classes).
_EXPECTED = {
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}


def validation_issues(
    error: ValidationError, data: Any, model: type[BaseModel], prefix: KeyPath = ()
) -> list[Issue]:
    """Issues for every error of ``error``, raised validating ``data`` against ``model``.

    ``prefix`` is where ``data`` sits in the document (``("source",)`` for a connector's
    options). Several errors at one key path (one per union member) become one issue.
    """
    grouped: dict[KeyPath, list[str]] = {}
    suggestions: dict[KeyPath, str] = {}
    for detail in error.errors(include_url=False):
        loc = _document_path(data, detail["loc"])
        message, suggestion = _describe(detail, model, loc)
        messages = grouped.setdefault(loc, [])
        if message not in messages:
            messages.append(message)
        if suggestion is not None:
            suggestions.setdefault(loc, suggestion)
    return [
        Issue((*prefix, *loc), "; ".join(messages), suggestions.get(loc))
        for loc, messages in grouped.items()
    ]


def _describe(detail: Any, model: type[BaseModel], loc: KeyPath) -> tuple[str, str | None]:
    kind = detail["type"]
    if kind == "missing":
        return "missing required key", None
    if kind == "extra_forbidden":
        names = _field_names(_annotations_at(model, loc[:-1]))
        close = difflib.get_close_matches(str(loc[-1]), sorted(names), n=1) if loc else []
        return "unknown key", close[0] if close else None
    message = str(detail["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind in ("value_error", "assertion_error"):
        return message, None
    message = _EXPECTED.get(kind) or message[:1].lower() + message[1:]
    shown = _shown_input(detail.get("input"))
    if shown is not None and not _may_be_secret(model, loc):
        message += f", got {shown}"
    return message, None


def _document_path(data: Any, loc: Iterable[int | str]) -> KeyPath:
    """The part of pydantic's ``loc`` that names keys and indexes of ``data``."""
    path: list[str | int] = []
    current = data
    parts = list(loc)
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        in_mapping = isinstance(current, dict) and isinstance(part, str) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_mapping or in_list:
            current = current[part]
        elif last and isinstance(current, dict):
            path.append(part)  # a missing key: it names what should be there
            break
        else:
            continue  # a union member or function name pydantic inserted
        path.append(part)
    return tuple(path)


def _annotations_at(model: type[BaseModel], loc: KeyPath) -> list[Any]:
    """Every type that may sit at ``loc`` inside ``model`` (best effort)."""
    current: list[Any] = [model]
    for part in loc:
        following: list[Any] = []
        for annotation in current:
            for candidate in _models_in(annotation):
                field = _field_by_key(candidate, part)
                if field is not None:
                    following.append(field)
            if isinstance(part, int) or not following:
                following.extend(get_args(annotation))
        current = following
    return current


def _field_by_key(model: type[BaseModel], key: str | int) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType, Annotated):
        return [model for arg in get_args(annotation) for model in _models_in(arg)]
    return []


def _field_names(annotations: list[Any]) -> set[str]:
    return {
        info.alias or name
        for annotation in annotations
        for model in _models_in(annotation)
        for name, info in model.model_fields.items()
    }


def _may_be_secret(model: type[BaseModel], loc: KeyPath) -> bool:
    if any(is_secret_key(part) for part in loc):
        return True
    return any("Secret" in str(annotation) for annotation in _annotations_at(model, loc))


def _shown_input(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and len(value) <= _MAX_SHOWN_INPUT:
        return f'"{value}"'
    return None
