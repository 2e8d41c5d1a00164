"""``${...}`` references inside a pipeline file's string values.

Interpolation runs on parsed string scalars, never on the raw text, so a value can never
inject YAML structure. Forms:

- ``${VAR}``: the environment variable; a problem when it is not set.
- ``${VAR:-default}``: ``default`` when VAR is unset or empty; ``${VAR-default}``: when unset.
- ``${file:path}``: the file's contents without its trailing newline. A relative path is taken
  from the pipeline file's directory and must stay (after ``..`` and symlinks are resolved)
  inside that directory or the working directory; an absolute path is used as written.
  Everything read this way is a secret.
- ``${PREFIX:name}``: the value a resolver registered for ``PREFIX`` returns
  (``reference_resolvers``; the Airflow integration adds ``airflow:`` and ``airflow_var:``).
  A secret too.
- ``$${`` is a literal ``${``; any other ``$`` is itself.

Defaults are literal text: references do not nest. A value made of one reference stays a
string (``"5"``); the model's validation coerces it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omconnect.runtime.config.problems import Issue, KeyPath
from omconnect.runtime.config.reference_resolvers import (
    PREFIX_PATTERN,
    ReferenceResolver,
    resolver_for,
)

MAX_FILE_BYTES = 1024 * 1024

_VARIABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:-|-)(.*))?", re.DOTALL)
_FORMS = "expected ${VAR}, ${VAR:-default}, ${VAR-default} or ${file:path}"


@dataclass
class Interpolated:
    """The document with references replaced, and what happened on the way.

    ``file_values`` are the contents read by ``${file:...}`` and the values of registered
    resolvers (``${PREFIX:name}``), all secrets; ``failed_paths`` are
    the values that could not be interpolated (left as written, already reported in ``issues``).
    """

    data: Any
    issues: list[Issue] = field(default_factory=list)
    file_values: list[str] = field(default_factory=list)
    failed_paths: set[KeyPath] = field(default_factory=set)


def interpolate(
    data: Any, env: Mapping[str, str], base_dir: Path, cwd: Path | None = None
) -> Interpolated:
    """Replace every reference in the string values of ``data`` (keys are left alone)."""
    resolver = _Resolver(env, base_dir, cwd if cwd is not None else Path.cwd())
    result = Interpolated(data=None)
    result.data = resolver.walk(data, (), result)
    return result


class _Resolver:
    def __init__(self, env: Mapping[str, str], base_dir: Path, cwd: Path) -> None:
        self.env = env
        self.base_dir = base_dir
        self.roots = [base_dir.resolve(), cwd.resolve()]

    def walk(self, value: Any, path: KeyPath, result: Interpolated) -> Any:
        if isinstance(value, dict):
            return {key: self.walk(item, (*path, key), result) for key, item in value.items()}
        if isinstance(value, list):
            return [self.walk(item, (*path, i), result) for i, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return self.string(value, path, result)
        return value

    def string(self, text: str, path: KeyPath, result: Interpolated) -> str:
        out: list[str] = []
        i = 0
        while i < len(text):
            if text.startswith("$${", i):
                out.append("${")
                i += 3
            elif text.startswith("${", i):
                end = text.find("}", i + 2)
                if end < 0:
                    return self._fail(
                        result, path, 'unterminated "${" (write "$${" for a literal "${")', text
                    )
                resolved = self.reference(text[i + 2 : end], path, result)
                if resolved is None:
                    result.failed_paths.add(path)
                    return text
                out.append(resolved)
                i = end + 1
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def reference(self, expression: str, path: KeyPath, result: Interpolated) -> str | None:
        if expression.startswith("file:"):
            return self.file(expression[len("file:") :], path, result)
        registered = resolver_for(expression)
        if registered is not None and not registered[1].startswith("-"):
            return self.registered(*registered, path, result)
        match = _VARIABLE.fullmatch(expression)
        if match is None:
            message = f'invalid reference "${{{expression}}}": {_FORMS}'
            prefix = expression.partition(":")[0]
            if ":" in expression and PREFIX_PATTERN.fullmatch(prefix):
                message += f' ("{prefix}:" resolves only where an integration registered it)'
            result.issues.append(Issue(path, message))
            return None
        name, operator, default = match.groups()
        value = self.env.get(name)
        if operator == ":-" and not value:
            return default
        if operator == "-" and value is None:
            return default
        if value is None:
            message = f'environment variable "{name}" is not set and has no default'
            result.issues.append(Issue(path, message))
            return None
        return value

    def registered(
        self,
        prefix: str,
        name: str,
        resolver: ReferenceResolver,
        path: KeyPath,
        result: Interpolated,
    ) -> str | None:
        try:
            value = resolver(name)
        except Exception as exc:  # a store's own error type: reported, never raised
            reason = str(exc) or type(exc).__name__
            result.issues.append(Issue(path, f'cannot resolve "${{{prefix}:{name}}}": {reason}'))
            return None
        result.file_values.append(value)
        return value

    def file(self, reference: str, path: KeyPath, result: Interpolated) -> str | None:
        if not reference:
            result.issues.append(Issue(path, '"${file:}" needs a path'))
            return None
        written = Path(reference)
        target = written if written.is_absolute() else self.base_dir / written
        try:
            if not written.is_absolute() and not self._inside_roots(target):
                message = (
                    f'file "{reference}" is outside the pipeline\'s directory and the '
                    "working directory"
                )
                result.issues.append(Issue(path, message))
                return None
            with target.open("rb") as handle:
                content = handle.read(MAX_FILE_BYTES + 1)
        except (OSError, ValueError, RuntimeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            result.issues.append(Issue(path, f'cannot read file "{reference}": {reason}'))
            return None
        if len(content) > MAX_FILE_BYTES:
            message = f'file "{reference}" is larger than {MAX_FILE_BYTES} bytes'
            result.issues.append(Issue(path, message))
            return None
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            result.issues.append(Issue(path, f'file "{reference}" is not UTF-8 text'))
            return None
        text = text.removesuffix("\n").removesuffix("\r")
        result.file_values.append(text)
        return text

    def _inside_roots(self, target: Path) -> bool:
        # resolve() follows symlinks and "..", so a link pointing outside is caught too.
        real = target.resolve()
        return any(real.is_relative_to(root) for root in self.roots)

    def _fail(self, result: Interpolated, path: KeyPath, message: str, text: str) -> str:
        result.issues.append(Issue(path, message))
        result.failed_paths.add(path)
        return text
