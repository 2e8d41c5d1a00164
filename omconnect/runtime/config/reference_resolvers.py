"""Resolvers for ``${PREFIX:name}`` references that an integration plugs into interpolation.

The core knows ``${VAR}`` and ``${file:path}``; an integration adds its own stores of secrets
without the core importing it: the Airflow package registers ``airflow`` (a Connection's URI)
and ``airflow_var`` (a Variable) before it loads a pipeline, so that ``${airflow:warehouse}``
resolves under Airflow and is an error elsewhere. Every value a resolver returns is a secret
(masked like ``${file:...}`` contents).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

ReferenceResolver = Callable[[str], str]
"""Returns the value of one name; raises ``LookupError`` (or any error) when it cannot."""

PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
"""What a prefix may be: lower-case letters, digits and ``_``, starting with a letter."""
_RESERVED = frozenset({"file"})
_lock = threading.Lock()
_resolvers: dict[str, ReferenceResolver] = {}


def register_resolver(prefix: str, resolver: ReferenceResolver) -> None:
    """Resolve ``${prefix:name}`` with ``resolver(name)`` from now on (replacing any earlier
    resolver of that prefix).

    Raises:
        ValueError: ``prefix`` is not lower-case letters, digits and ``_``, or is ``file``.
    """
    if not PREFIX_PATTERN.fullmatch(prefix) or prefix in _RESERVED:
        raise ValueError(f"{prefix!r} cannot be a reference prefix")
    with _lock:
        _resolvers[prefix] = resolver


def unregister_resolver(prefix: str) -> None:
    """Forget the resolver of ``prefix`` (a no-op when there is none)."""
    with _lock:
        _resolvers.pop(prefix, None)


def resolver_for(expression: str) -> tuple[str, str, ReferenceResolver] | None:
    """``(prefix, name, resolver)`` when ``expression`` (the text inside ``${...}``) starts
    with a registered ``prefix:``; None otherwise."""
    prefix, colon, name = expression.partition(":")
    if not colon:
        return None
    with _lock:
        resolver = _resolvers.get(prefix)
    return (prefix, name, resolver) if resolver is not None else None


def registered_prefixes() -> list[str]:
    """The prefixes with a resolver, sorted."""
    with _lock:
        return sorted(_resolvers)
