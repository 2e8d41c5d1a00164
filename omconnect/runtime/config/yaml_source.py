"""Safe YAML loading that remembers where every key was written.

The document is composed into nodes by PyYAML (no object is constructed there, so aliases stay
shared nodes) and then built into plain Python values here, which lets this module:

- accept only the standard scalar tags (a ``!!python/object`` tag is a problem, never code),
- refuse duplicate keys, recursive aliases and alias expansions beyond ``MAX_ALIAS_NODES``
  (the "billion laughs" bomb), and nesting deeper than ``MAX_DEPTH``,
- record the (line, column) of every key path for error messages,
- read scalars the YAML 1.2 way where 1.1 surprises people: only ``true``/``false`` are
  booleans (``no`` stays the string "no"), ``1:30`` is a string, and timestamps stay strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from omconnect.runtime.config.problems import Issue, KeyPath

MAX_DOCUMENT_CHARS = 4 * 1024 * 1024
MAX_ALIAS_NODES = 10_000
MAX_DEPTH = 64

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp")}
_MERGE_TAG = _TAG + "merge"


class YamlSyntaxError(Exception):
    """The text is not a YAML document this loader accepts; nothing could be built.

    ``line`` is 1-based; ``message`` is the parser's problem.
    """

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass
class YamlDocument:
    """The built document, where each key path was written, and non-fatal issues found.

    ``dropped`` holds the paths whose value was refused (an unsafe tag) and replaced by None.
    """

    data: Any
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    dropped: set[KeyPath] = field(default_factory=set)

    def line_of(self, path: KeyPath) -> int:
        """The 1-based line of ``path``, or of its nearest ancestor that was written."""
        for end in range(len(path), -1, -1):
            position = self.positions.get(path[:end])
            if position is not None:
                return position[0]
        return 1


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document.

    Raises:
        YamlSyntaxError: malformed YAML, several documents, too large, too deep, a recursive
            alias or an alias bomb.
    """
    if len(text) > MAX_DOCUMENT_CHARS:
        raise YamlSyntaxError(1, f"document is larger than {MAX_DOCUMENT_CHARS} characters")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        parts = [part for part in (exc.context, exc.problem) if part]
        raise YamlSyntaxError(line, ": ".join(parts) or "malformed YAML") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise YamlSyntaxError(line, f"unacceptable character #x{exc.character:04x}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, str(exc).splitlines()[0] if str(exc) else "bad YAML") from None
    except RecursionError:
        raise YamlSyntaxError(1, "the document is nested too deeply") from None
    if root is None:
        return YamlDocument(data=None, positions={(): (1, 1)})
    builder = _Builder()
    data = builder.build(root, (), depth=0, aliased=False)
    return YamlDocument(data, builder.positions, builder.issues, builder.dropped)


class _Builder:
    def __init__(self) -> None:
        self.positions: dict[KeyPath, tuple[int, int]] = {}
        self.issues: list[Issue] = []
        self.dropped: set[KeyPath] = set()
        self._constructor = SafeConstructor()
        self._built: set[int] = set()
        self._open: set[int] = set()
        self._alias_nodes = 0

    def build(self, node: yaml.Node, path: KeyPath, depth: int, aliased: bool) -> Any:
        line = node.start_mark.line + 1
        if depth > MAX_DEPTH:
            raise YamlSyntaxError(line, f"the document is nested deeper than {MAX_DEPTH} levels")
        if id(node) in self._open:
            raise YamlSyntaxError(line, "an alias refers to a node that contains it")
        # A node built before is reached again through an alias: count what it expands to.
        aliased = aliased or id(node) in self._built
        if aliased:
            self._alias_nodes += 1
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise YamlSyntaxError(
                    line, f"aliases expand to more than {MAX_ALIAS_NODES} nodes (alias bomb?)"
                )
        self._built.add(id(node))
        self.positions.setdefault(path, (line, node.start_mark.column + 1))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if node.tag not in (_TAG + "seq", _TAG + "map"):
            return self._drop(path, f'tag "{node.tag}" is not allowed')
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth, aliased)
            return [
                self.build(item, (*path, index), depth + 1, aliased)
                for index, item in enumerate(node.value)
            ]
        finally:
            self._open.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, path: KeyPath) -> Any:
        tag = node.tag
        if tag not in _SCALAR_TAGS:
            return self._drop(path, f'tag "{tag}" is not allowed')
        text = node.value
        if tag == _TAG + "timestamp":
            return text
        if tag == _TAG + "bool" and text.lower() not in ("true", "false"):
            return text
        if tag in (_TAG + "int", _TAG + "float") and ":" in text:
            return text
        try:
            return self._constructor.construct_object(node, deep=True)
        except Exception:  # PyYAML's converters fail in many ways on text an explicit tag forces
            return self._drop(path, f'"{text}" is not a valid {tag.removeprefix(_TAG)}')

    def _drop(self, path: KeyPath, message: str) -> None:
        self.issues.append(Issue(path, message))
        self.dropped.add(path)

    def _mapping(self, node: yaml.MappingNode, path: KeyPath, depth: int, aliased: bool) -> Any:
        result: dict[str, Any] = {}
        key_lines: dict[str, int] = {}
        merges = [value for key, value in node.value if key.tag == _MERGE_TAG]
        for merged in merges:
            sources = merged.value if isinstance(merged, yaml.SequenceNode) else [merged]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    line = source.start_mark.line + 1
                    raise YamlSyntaxError(line, "a merge key (<<) needs a mapping or mappings")
                built = self.build(source, path, depth, aliased)
                for key, value in built.items() if isinstance(built, dict) else ():
                    result.setdefault(key, value)
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                self.issues.append(Issue(path, "a key must be a plain scalar", line=line))
                continue
            key = key_node.value
            key_path = (*path, key)
            if key in key_lines:
                message = f"duplicate key (first defined on line {key_lines[key]})"
                self.issues.append(Issue(key_path, message, line=line))
                continue
            key_lines[key] = line
            self.positions[key_path] = (line, key_node.start_mark.column + 1)
            result[key] = self.build(value_node, key_path, depth + 1, aliased)
        return result
