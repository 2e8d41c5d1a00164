"""No import cycle among the modules of ``omconnect.runtime.config``.

Every import counts, at module level, inside functions and under ``TYPE_CHECKING``: a cycle
hidden in a function is still two modules that each need the other. ``from PACKAGE import X``
is an edge to the package's ``__init__`` (and to ``X`` when it is a module); the implicit
import of a parent package when a submodule is imported is not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import omconnect.runtime.config

PACKAGE = "omconnect.runtime.config"
PACKAGE_DIRECTORY = Path(omconnect.runtime.config.__file__).parent


def package_imports(directory: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (``package`` itself: its __init__)."""
    modules = {
        package if path.stem == "__init__" else f"{package}.{path.stem}": path
        for path in directory.glob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        own_package = module if path.stem == "__init__" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = own_package.rsplit(".", node.level - 1)[0]
                    base = f"{parent}.{base}" if base else parent
                targets.add(base)
                targets.update(f"{base}.{alias.name}" for alias in node.names)
        graph[module] = {target for target in targets if target in modules} - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``a -> b -> a``) through each module that is on one, found depth first."""
    found: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            found.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return found


def test_config_modules_import_no_cycle() -> None:
    found = cycles(package_imports(PACKAGE_DIRECTORY, PACKAGE))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_the_scan_sees_function_level_relative_and_type_checking_imports(
    tmp_path: Path,
) -> None:
    (tmp_path / "__init__.py").write_text("from .loader import load\n")
    (tmp_path / "loader.py").write_text(
        "from demo import redaction\n\ndef load():\n    from .blocks import block\n"
    )
    (tmp_path / "blocks.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import demo.loader\n"
    )
    (tmp_path / "redaction.py").write_text("import json\n")
    graph = package_imports(tmp_path, "demo")
    assert graph == {
        "demo": {"demo.loader"},
        "demo.loader": {"demo", "demo.redaction", "demo.blocks"},
        "demo.blocks": {"demo.loader"},
        "demo.redaction": set(),
    }
    assert cycles(graph) == [
        ["demo", "demo.loader", "demo"],
        ["demo.loader", "demo.blocks", "demo.loader"],
    ]
