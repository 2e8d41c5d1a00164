"""A schema change the registry refuses, through ``omconnect run``: by default the run stops
saying which subject, mode and field; with ``errors.incompatible_schema: dead_letter`` the
refused records go to the dead letter topic and the rest flows on."""

from __future__ import annotations

from pathlib import Path

from omconnect.runtime.state.schema_registry import SqliteSchemaRegistry
from tests.support.omconnect_process import omconnect, tail_topic


def write_files(directory: Path) -> None:
    """``a.csv`` has a numeric ``amount``, ``b.csv`` (read after it) a text one: reading
    ``b``'s data with ``a``'s schema is impossible, so BACKWARD refuses the change."""
    (directory / "in").mkdir()
    (directory / "in" / "a.csv").write_text("id,amount\n1,10\n2,20\n")
    (directory / "in" / "b.csv").write_text("id,amount\n3,three\n4,four\n")


def pipeline(errors: str = "") -> str:
    return "name: orders\nsource: {connector: csv, path: in/*.csv}\ntopic: orders\n" + (
        f"errors: {errors}\n" if errors else ""
    )


def test_a_refused_change_stops_the_run_until_the_mode_allows_it(tmp_path: Path) -> None:
    write_files(tmp_path)
    (tmp_path / "p.yaml").write_text(pipeline())

    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)

    assert ran.returncode == 1
    assert "IncompatibleSchemaError: schema for subject 'orders-value' is not BACKWARD " in (
        ran.stderr
    )
    assert "amount: no branch of ['null', 'string'] reads long" in ran.stderr
    assert [m["value"]["id"] for m in tail_topic("orders", tmp_path)] == [1, 2]

    registry = SqliteSchemaRegistry(tmp_path / ".omconnect" / "registry.sqlite")
    registry.set_compatibility("NONE", "orders-value")
    again = omconnect("run", "p.yaml", "--once", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert [m["value"]["id"] for m in tail_topic("orders", tmp_path)] == [1, 2, 3, 4]
    assert registry.versions("orders-value") == [1, 2]


def test_dead_letter_setting_sends_the_refused_records_there(tmp_path: Path) -> None:
    write_files(tmp_path)
    (tmp_path / "p.yaml").write_text(pipeline("{tolerance: all, incompatible_schema: dead_letter}"))

    ran = omconnect("run", "p.yaml", "--once", cwd=tmp_path)

    assert ran.returncode == 0, ran.stderr
    assert [m["value"]["id"] for m in tail_topic("orders", tmp_path)] == [1, 2]
    dead = tail_topic("orders.dlq", tmp_path)
    assert [(m["value"]["id"], m["value"]["amount"]) for m in dead] == [(3, "three"), (4, "four")]
    headers = dead[0]["headers"]
    assert headers["omconnect.error.stage"] == "convert"
    assert headers["omconnect.error.exception"] == "IncompatibleSchemaError"
    assert "not BACKWARD compatible" in headers["omconnect.error.reason"]
    assert "amount" in headers["omconnect.error.reason"]


def test_dead_letter_setting_needs_tolerance_all(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(pipeline("{incompatible_schema: dead_letter}"))
    checked = omconnect("validate", "p.yaml", cwd=tmp_path)
    assert checked.returncode == 1
    assert "p.yaml:4: errors: incompatible_schema: dead_letter " in checked.stderr
    assert "needs tolerance: all" in checked.stderr
