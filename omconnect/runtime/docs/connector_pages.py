"""One Markdown page per registered connector, generated from its config spec.

The pages under ``docs/connectors/`` are committed; ``python -m omconnect.runtime.docs``
rewrites them and a test over every plugin fails when one is stale. A page covers every
registration of its name, so the csv source and the csv sink share ``csv.md``. The output
depends only on the registered classes, never on the machine, the date or the order of
entry points, so regenerating unchanged plugins changes no byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from omconnect.connectors.api.plugins import Registration, UnknownPluginError, registrations
from omconnect.runtime.docs.example_config import example_options
from omconnect.runtime.docs.spec_options import SpecOption, spec_options

INDEX_PAGE = "README.md"
REGENERATE_COMMAND = "python -m omconnect.runtime.docs"

_KIND_ORDER = {"source": 0, "sink": 1, "transform": 2}
_KIND_TITLES = {"source": "Source", "sink": "Sink", "transform": "Transform"}
_GENERATED_NOTE = (
    f"<!-- Generated from the connector's config spec by `{REGENERATE_COMMAND}`. "
    "Do not edit by hand. -->"
)


def connector_names() -> list[str]:
    """Names of every registered source and sink, sorted; one docs page each."""
    return sorted({r.name for r in registrations() if r.kind in ("source", "sink")})


def render_connector_page(name: str) -> str:
    """The Markdown page of the plugin ``name``: one section per registration of that name.

    Args:
        name: A registered connector (or transform) name, e.g. ``csv``.

    Returns:
        The page text, ending in a newline.

    Raises:
        UnknownPluginError: Nothing is registered under ``name``.
    """
    found = sorted(
        (r for r in registrations() if r.name == name), key=lambda r: _KIND_ORDER[r.kind]
    )
    if not found:
        known = ", ".join(sorted({r.name for r in registrations()}))
        raise UnknownPluginError(f'nothing is registered as "{name}"; known: {known}')
    kinds = " and ".join(r.kind for r in found)
    lines = [_GENERATED_NOTE, "", f"# {name}", "", f"`{name}` is a {kinds}."]
    for registration in found:
        lines.extend(["", *_registration_section(registration)])
    return "\n".join(lines) + "\n"


def render_connector_index(names: Iterable[str]) -> str:
    """The index page: a table of the connectors ``names`` with their kinds and summaries."""
    by_name: dict[str, list[Registration]] = {}
    for registration in registrations():
        by_name.setdefault(registration.name, []).append(registration)
    lines = [
        _GENERATED_NOTE,
        "",
        "# Connectors",
        "",
        "Every connector registered in the `omconnect.connectors` entry-point group.",
        "",
        "| Connector | Kinds | Description |",
        "|---|---|---|",
    ]
    for name in names:
        found = sorted(by_name[name], key=lambda r: _KIND_ORDER[r.kind])
        kinds = ", ".join(r.kind for r in found)
        summary = " ".join(dict.fromkeys(r.description for r in found if r.description))
        lines.append(f"| [{name}]({name}.md) | {kinds} | {_cell(summary)} |")
    return "\n".join(lines) + "\n"


def expected_pages() -> dict[str, str]:
    """File name -> content of every page the registered connectors call for, the index included."""
    names = connector_names()
    pages = {f"{name}.md": render_connector_page(name) for name in names}
    pages[INDEX_PAGE] = render_connector_index(names)
    return pages


def write_connector_pages(directory: Path | str) -> list[Path]:
    """Write every connector page and the index into ``directory``.

    Files whose content is already right are left untouched. Pages of connectors that are no
    longer registered are not deleted; ``stale_connector_pages`` reports them.

    Returns:
        The path of every page the registered connectors call for, sorted.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, content in expected_pages().items():
        path = root / file_name
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
        written.append(path)
    return sorted(written)


def stale_connector_pages(directory: Path | str) -> list[str]:
    """What is wrong with the pages in ``directory``, one line each; empty when current."""
    root = Path(directory)
    expected = expected_pages()
    problems = []
    for file_name, content in expected.items():
        path = root / file_name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"{path}: out of date")
    if root.is_dir():
        for path in sorted(root.glob("*.md")):
            if path.name not in expected:
                problems.append(f"{path}: no connector of that name is registered")
    return problems


def _registration_section(registration: Registration) -> list[str]:
    title = _KIND_TITLES[registration.kind]
    cls = registration.cls
    lines = [f"## {title}", ""]
    if registration.description:
        lines.extend([registration.description, ""])
    lines.append(f"Class: `{registration.module}.{cls.__qualname__}`")
    options = spec_options(registration.spec)
    lines.extend(["", "### Options", ""])
    if options:
        lines.extend(_options_table(options))
    else:
        lines.append("This plugin has no options.")
    lines.extend(["", "### Example", "", "```yaml", _example_yaml(registration), "```"])
    return lines


def _options_table(options: list[SpecOption]) -> list[str]:
    lines = [
        "| Option | Type | Default | Required | Secret | Description |",
        "|---|---|---|---|---|---|",
    ]
    for option in options:
        name = f"`{option.name}`"
        if option.aliases:
            name += " (also " + ", ".join(f"`{alias}`" for alias in option.aliases) + ")"
        default = f"`{option.default_label}`" if option.default_label else ""
        lines.append(
            "| "
            + " | ".join(
                [
                    _cell(name),
                    _cell(option.type_label),
                    _cell(default),
                    "yes" if option.required else "no",
                    "yes" if option.secret else "no",
                    _cell(option.description),
                ]
            )
            + " |"
        )
    return lines


def _example_yaml(registration: Registration) -> str:
    options = example_options(registration.spec, registration.name)
    if registration.kind == "transform":
        document: object = {"transforms": [{"type": registration.name, **options}]}
    else:
        block = {"connector": registration.name, **options}
        pipeline: dict[str, object] = {"name": f"{registration.name}-{registration.kind}-example"}
        if registration.kind == "sink":
            pipeline["topic"] = "orders"
        pipeline[registration.kind] = block
        document = pipeline
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False).rstrip("\n")


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")
