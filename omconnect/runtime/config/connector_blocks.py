"""Resolving ``source:``, ``sink:`` and ``transforms:`` blocks against the registered plugins.

A block names a registered plugin (``connector: csv`` or ``type: filter``); every other key
is one of that plugin's options and is validated against its spec.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal, NamedTuple

from pydantic import ValidationError

from omconnect.connectors.api.plugins import (
    Registration,
    UnknownPluginError,
    lookup,
    registrations,
)
from omconnect.connectors.api.spec import ConnectorSpec, secret_fields
from omconnect.runtime.config.problems import Issue, KeyPath
from omconnect.runtime.config.redaction import Redactor
from omconnect.runtime.config.validation_issues import validation_issues

BlockKind = Literal["source", "sink", "transform"]

_NOUNS = {"source": "source connector", "sink": "sink connector", "transform": "transform"}
_MAX_LISTED = 12


class ValidatedConnector(NamedTuple):
    """A block resolved to its registration and its validated spec instance."""

    registration: Registration
    spec: ConnectorSpec


def name_key(kind: BlockKind) -> str:
    """The key that names the plugin in a block of ``kind``: ``connector`` or ``type``."""
    return "type" if kind == "transform" else "connector"


def validate_block(
    kind: BlockKind, block: Any, path: KeyPath, redactor: Redactor
) -> tuple[ValidatedConnector | None, list[Issue]]:
    """Resolve and validate one block found at ``path``.

    Returns the validated connector, or None with the issues found. A block that is not a
    mapping or has no string name yields no issues here: the pipeline model reports those.
    Secret option values are added to ``redactor`` before validation, so that no issue
    message can show them.
    """
    key = name_key(kind)
    if not isinstance(block, dict) or not isinstance(block.get(key), str):
        return None, []
    name = block[key]
    try:
        registration = lookup(kind, name)
    except UnknownPluginError:
        return None, [_unknown(kind, name, (*path, key))]
    except Exception as exc:  # a plugin module that fails to import must not crash validation
        message = f"could not load the plugins to find {_NOUNS[kind]} {name!r}: {exc}"
        return None, [Issue((*path, key), message)]
    options = {option: value for option, value in block.items() if option != key}
    spec = registration.spec
    for secret in secret_fields(spec):
        if secret in options:
            redactor.collect(options[secret], secret=True)
    try:
        instance = spec.model_validate(options)
    except ValidationError as exc:
        return None, validation_issues(exc, options, spec, prefix=path)
    except Exception as exc:  # a spec validator that raises something pydantic does not wrap
        message = f"{_NOUNS[kind]} {name!r} could not validate its options: {exc}"
        return None, [Issue(path, message)]
    redactor.collect(instance)
    return ValidatedConnector(registration, instance), []


def _unknown(kind: BlockKind, name: str, path: KeyPath) -> Issue:
    names = [registration.name for registration in registrations(kind)]
    close = difflib.get_close_matches(name, names, n=1)
    message = f'unknown {_NOUNS[kind]} "{name}"'
    if not close:
        listed = ", ".join(names[:_MAX_LISTED]) + (", ..." if len(names) > _MAX_LISTED else "")
        message += f" (known: {listed})" if names else " (none are registered)"
    return Issue(path, message, close[0] if close else None)
