"""Plugins: the connector and transform classes pipelines name, and how they are found.

Built-in and third-party plugins register the same way: a module ends with
``register(MySource)``, and its distribution names the module in the entry-point group
``omconnect.connectors`` (transforms: ``omconnect.transforms``). ``load_plugins()`` imports
every module of those groups once; ``registrations`` loads them first, ``lookup`` first only the
modules named like the plugin it looks for.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Literal

from omconnect.connectors.api.sink import SinkConnector
from omconnect.connectors.api.source import SourceConnector
from omconnect.connectors.api.spec import ConnectorSpec
from omconnect.connectors.api.transform import Transform

CONNECTOR_GROUP = "omconnect.connectors"
TRANSFORM_GROUP = "omconnect.transforms"

Kind = Literal["source", "sink", "transform"]
Plugin = type[SourceConnector] | type[SinkConnector] | type[Transform]


@dataclass(frozen=True)
class Registration:
    """One registered plugin: its name, kind, class, spec and the module it lives in."""

    name: str
    kind: Kind
    cls: Plugin
    module: str

    @property
    def spec(self) -> type[ConnectorSpec]:
        return self.cls.spec

    @property
    def description(self) -> str:
        return self.cls.description or (self.cls.__doc__ or "").strip().split("\n")[0]


_plugins: dict[tuple[Kind, str], Registration] = {}
_loaded = False


class UnknownPluginError(LookupError):
    """No plugin of that kind and name; the message lists near matches."""


def register(cls: Plugin) -> Plugin:
    """Register a connector or transform class under ``cls.name``."""
    kind: Kind
    if issubclass(cls, SourceConnector):
        kind = "source"
    elif issubclass(cls, SinkConnector):
        kind = "sink"
    elif issubclass(cls, Transform):
        kind = "transform"
    else:
        raise TypeError(f"{cls!r} is not a SourceConnector, SinkConnector or Transform")
    existing = _plugins.get((kind, cls.name))
    if existing is not None and existing.cls is not cls:
        raise ValueError(f"{kind} {cls.name!r} is registered twice ({existing.module})")
    _plugins[(kind, cls.name)] = Registration(cls.name, kind, cls, cls.__module__)
    return cls


@functools.cache
def _entry_points(group: str) -> tuple[EntryPoint, ...]:
    """The entry points of ``group`` (found once: each look reads every installed
    distribution's metadata, a few hundred files in an environment with Airflow)."""
    return tuple(entry_points(group=group))


def load_plugins() -> None:
    """Import every module named in the plugin entry-point groups (once)."""
    global _loaded
    if _loaded:
        return
    for group in (CONNECTOR_GROUP, TRANSFORM_GROUP):
        for ep in _entry_points(group):
            ep.load()
    _loaded = True


def _load_named(kind: Kind, name: str) -> Registration | None:
    """Import the entry points whose name is ``name`` (``-`` as ``_``), alone or followed by
    ``_<kind>``; the registration of ``name`` if they made one."""
    if _loaded:
        return None
    stem = name.replace("-", "_")
    wanted = {stem, f"{stem}_{kind}"}
    group = TRANSFORM_GROUP if kind == "transform" else CONNECTOR_GROUP
    for ep in _entry_points(group):
        if ep.name in wanted:
            ep.load()
    return _plugins.get((kind, name))


def registrations(kind: Kind | None = None) -> list[Registration]:
    """Every registered plugin (of ``kind``), sorted by kind and name."""
    load_plugins()
    found = [r for (k, _), r in _plugins.items() if kind is None or k == kind]
    return sorted(found, key=lambda r: (r.kind, r.name))


def lookup(kind: Kind, name: str) -> Registration:
    """The plugin of ``kind`` called ``name``; raises ``UnknownPluginError`` with suggestions.

    The entry points named like the plugin (``sql``, ``sql_source``, ``postgres_cdc`` for
    ``postgres-cdc``) are imported first, and every other only when those do not register
    it: a run imports the connectors it uses, not every plugin's module."""
    found = _plugins.get((kind, name)) or _load_named(kind, name)
    if found is not None:
        return found
    load_plugins()
    found = _plugins.get((kind, name))
    if found is not None:
        return found
    names = sorted(n for (k, n) in _plugins if k == kind)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    raise UnknownPluginError(f'unknown {kind} "{name}"{hint}; known: {", ".join(names)}')
