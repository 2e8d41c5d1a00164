"""Checks over every plugin and layer: every registered connector has docs, a conformance test,
canonical option names and described options; the package dependency direction holds.

Exceptions to the option-name rule live in ``WAIVERS``, which may only shrink: a waiver that
is no longer needed fails ``test_every_waiver_is_still_needed``.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from omconnect.connectors.api.plugins import CONNECTOR_GROUP, Registration, registrations
from omconnect.runtime.docs import render_connector_page, spec_options
from omconnect.runtime.docs.connector_pages import INDEX_PAGE, render_connector_index

ROOT = Path(__file__).resolve().parents[1]
DOCS_DIRECTORY = ROOT / "docs" / "connectors"
TESTS_DIRECTORY = ROOT / "tests"
PACKAGE_DIRECTORY = ROOT / "omconnect"
REGENERATE = "run python -m omconnect.runtime.docs"

# Canonical option name -> spellings that mean the same and must not be used instead.
# Variants in case or separators (`batchSize`, `batch-size`, `batchsize`) are caught for
# every canonical name without being listed.
CANONICAL_OPTION_NAMES: dict[str, frozenset[str]] = {
    "batch_size": frozenset(
        {"max_records", "max_batch_size", "records_per_batch", "rows_per_batch", "batch"}
    ),
    "path": frozenset({"file", "files", "filename", "file_name", "file_path", "paths"}),
    "url": frozenset(
        {"uri", "dsn", "connection_string", "connection_url", "conn_str", "database_url"}
    ),
    "key": frozenset({"keys", "key_columns", "primary_key", "primary_keys", "pk"}),
    "cursor": frozenset({"cursor_field", "cursor_column", "incremental_column", "replication_key"}),
    "slot": frozenset({"slot_name", "replication_slot", "replication_slot_name"}),
    "publication": frozenset({"publication_name"}),
    "heartbeat_interval": frozenset({"heartbeat", "heartbeat_ms", "heartbeat_interval_ms"}),
    "poll_interval": frozenset({"poll_interval_ms", "polling_interval", "scan_interval"}),
    "query": frozenset({"sql", "sql_query", "statement"}),
    "compression": frozenset({"codec", "compression_codec", "compression_type"}),
    "delimiter": frozenset({"sep", "separator", "delim", "field_delimiter"}),
    "password": frozenset({"passwd", "pwd", "pass"}),
    "username": frozenset({"user", "user_name", "login"}),
    "endpoint_url": frozenset({"endpoint", "endpoint_uri", "s3_endpoint"}),
    "region": frozenset({"region_name", "aws_region"}),
}
# A source reads `tables`; a sink writes one `table`.
CANONICAL_BY_KIND: dict[str, dict[str, frozenset[str]]] = {
    "source": {"tables": frozenset({"table", "table_name", "table_names", "include_tables"})},
    "sink": {"table": frozenset({"tables", "table_name", "target_table", "destination_table"})},
}
# (connector, kind, dotted option) -> why the non-canonical name stays. Only ever shrinks.
WAIVERS: dict[tuple[str, str, str], str] = {}

# The conformance kit's factories, and the names of its base classes (`SourceConnectorTests`,
# `SinkConnectorTests`, and bases derived from them such as `FileSourceTests`): a base's name
# says which kind it tests.
_FACTORIES = {"source_test_class": "source", "sink_test_class": "sink"}
_KIT_BASE = re.compile(r"(?P<kind>Source|Sink)\w*Tests$")


def _load_registrations() -> tuple[list[Registration], BaseException | None]:
    try:
        return registrations(), None
    except Exception as error:  # a broken entry point; test_every_plugin_loads reports it
        return [], error


def _installed(registration: Registration) -> bool:
    """Registered by an installed distribution, not by a test module registering a fake:
    its top-level package is one that names modules in the ``omconnect.connectors`` group."""
    packages = {ep.module.split(".")[0] for ep in entry_points(group=CONNECTOR_GROUP)}
    return registration.module.split(".")[0] in packages


ALL_REGISTRATIONS, LOAD_ERROR = _load_registrations()
CONNECTORS = [r for r in ALL_REGISTRATIONS if r.kind in ("source", "sink") and _installed(r)]
CONNECTOR_NAMES = sorted({r.name for r in CONNECTORS})


def _id(registration: Registration) -> str:
    return f"{registration.kind}:{registration.name}"


def test_every_plugin_loads() -> None:
    assert LOAD_ERROR is None, f"an entry point of omconnect.connectors failed: {LOAD_ERROR!r}"


# (a) docs -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONNECTOR_NAMES)
def test_docs_page_is_current(name: str) -> None:
    page = DOCS_DIRECTORY / f"{name}.md"
    assert page.is_file(), f"{page.relative_to(ROOT)} is missing: {REGENERATE}"
    assert page.read_text(encoding="utf-8") == render_connector_page(name), (
        f"{page.relative_to(ROOT)} is stale: {REGENERATE}"
    )


def test_docs_index_is_current_and_has_no_orphans() -> None:
    index = DOCS_DIRECTORY / INDEX_PAGE
    assert index.is_file(), f"{index.relative_to(ROOT)} is missing: {REGENERATE}"
    assert index.read_text(encoding="utf-8") == render_connector_index(CONNECTOR_NAMES), (
        f"{index.relative_to(ROOT)} is stale: {REGENERATE}"
    )
    pages = {p.stem for p in DOCS_DIRECTORY.glob("*.md") if p.name != INDEX_PAGE}
    orphans = pages - set(CONNECTOR_NAMES)
    assert not orphans, f"pages of unregistered connectors: {sorted(orphans)}; delete them"


# (b) conformance tests ------------------------------------------------------------------


def conformance_tests_in(directory: Path, skip: Path | None = None) -> set[tuple[str, str]]:
    """(kind, name) of every conformance test pytest collects in ``directory``'s tests: a
    module-level ``class TestX(SourceConnectorTests): connector = "name"`` (or a base named
    ``...SourceTests`` / ``...SinkTests``), or ``TestX = source_test_class("name", ...)``."""
    found = set()
    for path in sorted(directory.rglob("*.py")):
        if skip is not None and path.resolve() == skip.resolve():
            continue
        for statement in ast.parse(path.read_text(encoding="utf-8")).body:
            declared = _declared_conformance_test(statement)
            if declared is not None:
                found.add(declared)
    return found


def _declared_conformance_test(statement: ast.stmt) -> tuple[str, str] | None:
    if isinstance(statement, ast.ClassDef) and statement.name.startswith("Test"):
        bases = [_KIT_BASE.search(_dotted_tail(base)) for base in statement.bases]
        kind = next((b["kind"].lower() for b in bases if b is not None), None)
        assigned = (_assigned_string(s, "connector") for s in statement.body)
        name = next((n for n in assigned if n is not None), None)
        return (kind, name) if kind and name else None
    value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
    if isinstance(value, ast.Call) and _dotted_tail(value.func) in _FACTORIES:
        named = (k.value for k in value.keywords if k.arg in ("connector_name", "name"))
        arguments = [*value.args[:1], *named]
        names = [a.value for a in arguments if isinstance(a, ast.Constant)]
        if names and isinstance(names[0], str):
            return _FACTORIES[_dotted_tail(value.func)], names[0]
    return None


def _dotted_tail(node: ast.expr) -> str:
    """``b`` of ``a.b`` or of ``b``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _assigned_string(statement: ast.stmt, target: str) -> str | None:
    """The string ``statement`` assigns to ``target`` (``target = "x"``), if it does."""
    if isinstance(statement, ast.Assign):
        targets = [t.id for t in statement.targets if isinstance(t, ast.Name)]
    elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        targets = [statement.target.id]
    else:
        return None
    value = statement.value
    if target in targets and isinstance(value, ast.Constant) and isinstance(value.value, str):
        return value.value
    return None


@pytest.mark.parametrize("registration", CONNECTORS, ids=_id)
def test_connector_runs_the_conformance_kit(registration: Registration) -> None:
    found = conformance_tests_in(TESTS_DIRECTORY, skip=Path(__file__))
    kind, name = registration.kind, registration.name
    assert (kind, name) in found, (
        f"no conformance test for {kind} {name!r}: add to a test module "
        f"`class Test{name.title()}{kind.title()}({kind.title()}ConnectorTests): "
        f'connector = "{name}"`'
    )


def test_conformance_scan_finds_only_collected_tests(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(
        "from omconnect.runtime.testing import sink_test_class, source_test_class\n"
        'TestCsvSource = source_test_class("csv", config={"path": "x"})\n'
        "TestCsvSink = testing.sink_test_class(\n    name='csv',\n)\n"
        'source_test_class("jsonl")  # not assigned: pytest would never collect it\n'
        '# TestOld = source_test_class("avro")\n'
        "def test_x():\n"
        '    suite = source_test_class("parquet", make_config=f)()\n'
        'TestMqtt = source_test_class(connector_name="mqtt", make_config=f)\n'
        "class TestAvroSource(SourceConnectorTests):\n"
        '    connector = "avro"\n'
        "class TestJsonlSink(support.FileSinkTests):\n"
        '    connector: str = "jsonl"\n'
        "class FileSinkTests(SinkConnectorTests):  # a base: pytest does not collect it\n"
        '    connector = "orc"\n'
        "class TestHelper:  # not a conformance test\n"
        '    connector = "kafka"\n'
    )
    assert conformance_tests_in(tmp_path) == {
        ("source", "csv"),
        ("sink", "csv"),
        ("source", "mqtt"),
        ("source", "avro"),
        ("sink", "jsonl"),
    }


# (c) canonical option names -------------------------------------------------------------


def _squashed(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def non_canonical_names(kind: str, option_names: list[str]) -> dict[str, str]:
    """Option (dotted name) -> the canonical name it should use, for every offender."""
    table = {**CANONICAL_OPTION_NAMES, **CANONICAL_BY_KIND.get(kind, {})}
    offenders = {}
    for dotted in option_names:
        leaf = dotted.rsplit(".", 1)[-1]
        for canonical, synonyms in table.items():
            if leaf == canonical:
                break
            if leaf in synonyms or _squashed(leaf) == _squashed(canonical):
                offenders[dotted] = canonical
                break
    return offenders


def _user_facing_names(registration: Registration) -> list[str]:
    names = []
    for option in spec_options(registration.spec):
        names.append(option.name)
        alias = option.info.alias
        parent, _, leaf = option.name.rpartition(".")
        if alias and alias != leaf:
            names.append(f"{parent}.{alias}" if parent else alias)
    return names


def _waived_offenders(registration: Registration) -> dict[str, str]:
    offenders = non_canonical_names(registration.kind, _user_facing_names(registration))
    return {
        option: canonical
        for option, canonical in offenders.items()
        if (registration.name, registration.kind, option) not in WAIVERS
    }


@pytest.mark.parametrize("registration", CONNECTORS, ids=_id)
def test_option_names_are_canonical(registration: Registration) -> None:
    offenders = _waived_offenders(registration)
    assert not offenders, "rename: " + ", ".join(f"{o} -> {c}" for o, c in offenders.items())


def test_every_waiver_is_still_needed() -> None:
    by_key: dict[tuple[str, str], Registration] = {(r.name, r.kind): r for r in CONNECTORS}
    for name, kind, option in WAIVERS:
        registration = by_key.get((name, kind))
        assert registration is not None, f"waiver for unregistered {kind} {name!r}: remove it"
        offenders = non_canonical_names(kind, _user_facing_names(registration))
        assert option in offenders, f"waiver ({name}, {kind}, {option}) is unused: remove it"


@pytest.mark.parametrize(
    ("kind", "names", "expected"),
    [
        ("source", ["batchsize", "path"], {"batchsize": "batch_size"}),
        ("source", ["batchSize"], {"batchSize": "batch_size"}),
        ("sink", ["batch-size"], {"batch-size": "batch_size"}),
        ("source", ["max_records", "table"], {"max_records": "batch_size", "table": "tables"}),
        ("sink", ["table", "key"], {}),
        ("sink", ["tables"], {"tables": "table"}),
        ("source", ["s3.endpoint", "s3.region"], {"s3.endpoint": "endpoint_url"}),
        ("source", ["tables", "batch_size", "heartbeat_interval"], {}),
    ],
)
def test_canonical_name_check(kind: str, names: list[str], expected: dict[str, str]) -> None:
    assert non_canonical_names(kind, names) == expected


# (d) descriptions -----------------------------------------------------------------------


@pytest.mark.parametrize("registration", CONNECTORS, ids=_id)
def test_every_option_is_described(registration: Registration) -> None:
    bare = [o.name for o in spec_options(registration.spec) if not o.description]
    assert not bare, f"options without a description (Field(description=...)): {bare}"


# (e) dependency direction ---------------------------------------------------------------


def module_name(path: Path, root: Path) -> str:
    """``root/omconnect/schemas/types.py`` -> ``omconnect.schemas.types``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path) -> set[str]:
    """Absolute names of everything ``path`` imports (``from a import b`` gives a and a.b),
    relative imports resolved, ``import_module("literal")`` calls included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = package[: len(package) - node.level + 1] if node.level else []
            base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and _imports_by_name(node):
            first = node.args[0]
            assert isinstance(first, ast.Constant)
            found.add(str(first.value))
    return found


def _imports_by_name(call: ast.Call) -> bool:
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return (
        called in ("import_module", "__import__")
        and bool(call.args)
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    )


def _is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def forbidden_imports(directory: Path, allowed: list[str], root: Path = ROOT) -> list[str]:
    """``file: imports module`` for each import of an ``omconnect`` module outside ``allowed``."""
    problems = []
    for path in sorted(directory.rglob("*.py")):
        for module in sorted(imported_modules(path, root)):
            if not _is_within(module, "omconnect") or module == "omconnect":
                continue
            if not any(_is_within(module, package) for package in allowed):
                problems.append(f"{path.relative_to(root)}: imports {module}")
    return problems


# What a plugin package (a connector package, the built-in transforms) may import besides itself.
PLUGIN_MAY_IMPORT = ["omconnect.connectors.api", "omconnect.codecs", "omconnect.schemas"]
# What a connector package may import besides those: the network clients it shares with the
# runtime's broker drivers.
CONNECTOR_MAY_IMPORT = [*PLUGIN_MAY_IMPORT, "omconnect.clients"]


def test_connectors_never_import_the_runtime() -> None:
    problems = forbidden_imports(
        PACKAGE_DIRECTORY / "connectors",
        ["omconnect.connectors", "omconnect.codecs", "omconnect.schemas", "omconnect.clients"],
    )
    assert not problems, "connectors must not depend on the runtime:\n" + "\n".join(problems)


def test_connector_api_imports_only_codecs_and_schemas() -> None:
    problems = forbidden_imports(
        PACKAGE_DIRECTORY / "connectors" / "api",
        ["omconnect.connectors.api", "omconnect.codecs", "omconnect.schemas"],
    )
    assert not problems, "\n".join(problems)


def test_each_connector_package_imports_only_the_api_codecs_schemas_clients_and_itself() -> None:
    problems = []
    for package in sorted((PACKAGE_DIRECTORY / "connectors").iterdir()):
        if package.is_dir() and package.name != "api" and (package / "__init__.py").exists():
            own = f"omconnect.connectors.{package.name}"
            problems += forbidden_imports(package, [*CONNECTOR_MAY_IMPORT, own])
    assert not problems, "\n".join(problems)


def test_builtin_transforms_import_only_the_api_codecs_schemas_and_themselves() -> None:
    """The built-in transforms are plugins like a connector package: no runtime import."""
    allowed = [*PLUGIN_MAY_IMPORT, "omconnect.transforms"]
    problems = forbidden_imports(PACKAGE_DIRECTORY / "transforms", allowed)
    assert not problems, "transforms must not depend on the runtime:\n" + "\n".join(problems)


def test_codecs_import_only_schemas() -> None:
    problems = forbidden_imports(
        PACKAGE_DIRECTORY / "codecs", ["omconnect.codecs", "omconnect.schemas"]
    )
    assert not problems, "codecs sit below the connector API:\n" + "\n".join(problems)


def test_clients_import_no_other_omconnect_package() -> None:
    """The shared network clients sit below the connectors and the runtime: they know
    nothing of records, connectors or brokers."""
    problems = forbidden_imports(PACKAGE_DIRECTORY / "clients", ["omconnect.clients"])
    assert not problems, "\n".join(problems)


def test_schemas_import_no_other_omconnect_package() -> None:
    problems = forbidden_imports(PACKAGE_DIRECTORY / "schemas", ["omconnect.schemas"])
    assert not problems, "\n".join(problems)


def test_the_layers_are_all_checked() -> None:
    """Every top-level package of ``omconnect`` is one the tests above constrain, so a new
    package cannot slip in beside them unchecked."""
    packages = {p.name for p in PACKAGE_DIRECTORY.iterdir() if (p / "__init__.py").exists()}
    assert packages == {"clients", "codecs", "connectors", "runtime", "schemas", "transforms"}


def test_import_scan_sees_every_form(tmp_path: Path) -> None:
    package = tmp_path / "omconnect" / "connectors" / "demo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from . import reader\n")
    (package / "reader.py").write_text(
        "import importlib\n"
        "from omconnect.connectors.api import SourceConnector\n"
        "from ...runtime import worker\n"
        "from omconnect import runtime\n"
        "import omconnect.runtime.cli.main\n"
        "from .. import files\n"
        "importlib.import_module('omconnect.runtime.offsets')\n"
    )
    problems = forbidden_imports(package, ["omconnect.connectors", "omconnect.schemas"], tmp_path)
    own_only = [
        "omconnect.connectors.api",
        "omconnect.codecs",
        "omconnect.schemas",
        "omconnect.connectors.demo",
    ]
    own = forbidden_imports(package, own_only, tmp_path)
    reader = str(Path("omconnect/connectors/demo/reader.py"))
    assert problems == [
        f"{reader}: imports omconnect.runtime",
        f"{reader}: imports omconnect.runtime.cli.main",
        f"{reader}: imports omconnect.runtime.offsets",
        f"{reader}: imports omconnect.runtime.worker",
    ]
    assert f"{reader}: imports omconnect.connectors.files" in own


def test_loading_the_plugins_imports_no_client_library() -> None:
    """Every command loads every plugin module: a connector imports its system's client (an
    extra) when a task or a check needs it, so a command pays nothing for connectors it does
    not use and works without their extras."""
    clients = ["paho", "pymodbus", "asyncua", "boto3", "confluent_kafka", "nats", "aio_pika"]
    probe = (
        "import sys\n"
        "from omconnect.connectors.api.plugins import load_plugins, registrations\n"
        "load_plugins()\n"
        "assert registrations('source'), 'no source loaded'\n"
        f"print(sorted(m for m in {clients!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize(
    ("kind", "name", "module"),
    [
        ("source", "sql", "omconnect.connectors.sql.source"),
        ("sink", "sql", "omconnect.connectors.sql.sink"),
        ("source", "postgres-cdc", "omconnect.connectors.sql.postgres_cdc"),
        ("sink", "parquet", "omconnect.connectors.files.parquet"),
        ("source", "mqtt", "omconnect.connectors.devices.mqtt"),
        ("transform", "filter", "omconnect.transforms.filter"),
    ],
)
def test_looking_up_a_plugin_imports_its_module_and_not_the_others(
    kind: str, name: str, module: str
) -> None:
    """A run looks up the plugins it names: their modules are imported, other plugins'
    modules are not (a sql -> parquet run does not load the device connectors)."""
    others = sorted(
        ep.value
        for group in ("omconnect.connectors", "omconnect.transforms")
        for ep in entry_points(group=group)
        if ep.value != module
    )
    probe = (
        "import sys\n"
        "from omconnect.connectors.api.plugins import lookup\n"
        f"found = lookup({kind!r}, {name!r})\n"
        f"assert found.cls.__module__ == {module!r}, found\n"
        f"print(json.dumps([m for m in {others!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + probe],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    # The sql source and sink share a package, and so do the file formats: only modules of
    # other plugins' packages count.
    package = module.rsplit(".", 1)[0]
    assert [m for m in loaded if m.rsplit(".", 1)[0] != package] == []


def test_a_name_no_entry_point_has_loads_every_plugin_before_it_is_unknown() -> None:
    """A name matching no entry point loads every plugin module before it is called unknown
    (a third-party plugin may register under a name its entry point does not have)."""
    from omconnect.connectors.api.plugins import UnknownPluginError, lookup

    assert lookup("sink", "jsonl").name == "jsonl"
    with pytest.raises(UnknownPluginError, match='unknown source "nope"'):
        lookup("source", "nope")
