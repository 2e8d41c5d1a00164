"""The connector docs generator, on connectors registered by this test only.

The registered plugins are emptied for each test (and restored after), so the pages reflect
exactly the classes below, whatever else is installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
import yaml
from pydantic import BaseModel, Field

from omconnect.connectors.api import (
    ConnectorSpec,
    RecordBatch,
    SecretStr,
    SinkConnector,
    SinkTask,
    SourceConnector,
    SourceTask,
    Transform,
    UnknownPluginError,
    plugins,
    register,
)
from omconnect.runtime.docs import (
    connector_names,
    render_connector_page,
    stale_connector_pages,
    write_connector_pages,
)
from omconnect.runtime.docs.__main__ import main as docs_main


class StoreOptions(BaseModel):
    endpoint_url: str | None = Field(default=None, description="Where the store listens.")
    secret_key: SecretStr = Field(description="The store's secret key.")


class LedgerSourceSpec(ConnectorSpec):
    url: SecretStr = Field(description="Database URL, with credentials.")
    tables: list[str] = Field(description="Tables to read.")
    mode: Literal["snapshot", "incremental"] = "snapshot"
    """How each run reads a table."""
    batch_size: int = Field(default=10_000, description="Rows per batch | at most.")
    store: StoreOptions | None = Field(default=None, description="Object store options.")


class LedgerSinkSpec(ConnectorSpec):
    table: str = Field(examples=["public.ledger"], description="The table written.")
    key: list[str] = Field(default_factory=list, description="Upsert key columns.")


class LedgerSource(SourceConnector):
    """Reads ledger tables.

    Longer text that is not part of the summary."""

    name = "ledger"
    spec = LedgerSourceSpec
    task_class = SourceTask


class LedgerSink(SinkConnector):
    name = "ledger"
    spec = LedgerSinkSpec
    task_class = SinkTask
    description = "Writes ledger rows."


class UpperSpec(ConnectorSpec):
    field: str = Field(description="The column to upper-case.")


class Upper(Transform):
    """Upper-cases a column."""

    name = "upper"
    spec = UpperSpec

    def apply(self, batch: RecordBatch) -> RecordBatch:
        return batch


@pytest.fixture(autouse=True)
def isolated_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # No plugins but these, which load_plugins() leaves alone: only this module's plugins exist.
    monkeypatch.setattr(plugins, "_plugins", {})
    monkeypatch.setattr(plugins, "_loaded", True)
    register(LedgerSource)
    register(LedgerSink)
    register(Upper)
    yield


def table_rows(page: str, section: str) -> dict[str, list[str]]:
    """Option name -> cells of the options table under ``## {section}``."""
    text = page.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[cells[0].split("`")[1]] = cells[1:]
    return rows


def example_of(page: str, section: str) -> dict[str, object]:
    text = page.split(f"## {section}\n", 1)[1]
    loaded = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert isinstance(loaded, dict)
    return loaded


def test_source_and_sink_of_one_name_share_one_page() -> None:
    page = render_connector_page("ledger")
    assert page.startswith("<!-- Generated")
    assert "# ledger\n" in page and "`ledger` is a source and sink." in page
    assert page.index("## Source") < page.index("## Sink")
    assert "Reads ledger tables." in page and "Longer text" not in page
    assert "Writes ledger rows." in page
    assert f"`{LedgerSource.__module__}.LedgerSource`" in page
    assert connector_names() == ["ledger"]


def test_options_table_comes_from_the_spec() -> None:
    source = table_rows(render_connector_page("ledger"), "Source")
    assert list(source) == [
        "url",
        "tables",
        "mode",
        "batch_size",
        "store",
        "store.endpoint_url",
        "store.secret_key",
    ]
    # type, default, required, secret, description
    assert source["url"] == ["string", "", "yes", "yes", "Database URL, with credentials."]
    assert source["tables"][:3] == ["list of string", "", "yes"]
    assert source["mode"] == [
        "one of `snapshot`, `incremental`",
        '`"snapshot"`',
        "no",
        "no",
        "How each run reads a table.",
    ]
    assert source["batch_size"][1] == "`10000`"
    assert source["batch_size"][4] == "Rows per batch \\| at most."
    assert source["store"][:2] == ["object", "`null`"]
    assert source["store.secret_key"][2:4] == ["yes", "yes"]
    sink = table_rows(render_connector_page("ledger"), "Sink")
    assert sink["key"][:3] == ["list of string", "`[]`", "no"]


def test_example_holds_the_required_options_and_validates() -> None:
    page = render_connector_page("ledger")
    source = example_of(page, "Source")
    assert source["name"] == "ledger-source-example"
    block = source["source"]
    assert isinstance(block, dict)
    assert block == {"connector": "ledger", "url": "${LEDGER_URL}", "tables": ["<tables>"]}
    block.pop("connector")
    LedgerSourceSpec.model_validate(block)
    sink = example_of(page, "Sink")
    assert sink["topic"] == "orders"
    assert sink["sink"] == {"connector": "ledger", "table": "public.ledger"}


def test_transforms_render_for_describe() -> None:
    page = render_connector_page("upper")
    assert "## Transform" in page
    assert example_of(page, "Transform") == {"transforms": [{"type": "upper", "field": "<field>"}]}
    assert connector_names() == ["ledger"]


def test_unknown_name_is_refused() -> None:
    with pytest.raises(UnknownPluginError, match="ledger"):
        render_connector_page("ledgr")


def test_a_changed_spec_changes_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    before = render_connector_page("ledger")
    assert render_connector_page("ledger") == before

    class RenamedSpec(LedgerSinkSpec):
        truncate: bool = Field(default=False, description="Empty the table first.")

    monkeypatch.setattr(LedgerSink, "spec", RenamedSpec)
    after = render_connector_page("ledger")
    assert after != before
    assert table_rows(after, "Sink")["truncate"][:2] == ["boolean", "`false`"]


def test_write_pages_then_detect_stale_missing_and_orphaned(tmp_path: Path) -> None:
    directory = tmp_path / "connectors"
    assert docs_main(["--out", str(directory), "--check"]) == 1
    written = write_connector_pages(directory)
    assert [p.name for p in written] == ["README.md", "ledger.md"]
    assert (directory / "ledger.md").read_text() == render_connector_page("ledger")
    assert (
        "[ledger](ledger.md) | source, sink | Reads ledger tables. Writes ledger rows. |"
        in (directory / "README.md").read_text()
    )
    assert stale_connector_pages(directory) == []
    assert docs_main(["--out", str(directory), "--check"]) == 0

    mtime = (directory / "ledger.md").stat().st_mtime_ns
    write_connector_pages(directory)
    assert (directory / "ledger.md").stat().st_mtime_ns == mtime

    (directory / "ledger.md").write_text("edited by hand\n")
    (directory / "gone.md").write_text("an old connector\n")
    problems = stale_connector_pages(directory)
    assert problems == [
        f"{directory / 'ledger.md'}: out of date",
        f"{directory / 'gone.md'}: no connector of that name is registered",
    ]
    (directory / "README.md").unlink()
    assert f"{directory / 'README.md'}: missing" in stale_connector_pages(directory)

    assert docs_main(["--out", str(directory)]) == 0
    assert (directory / "ledger.md").read_text() == render_connector_page("ledger")
    assert (directory / "gone.md").exists(), "orphans are reported, never deleted"
