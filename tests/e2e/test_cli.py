"""The ``omconnect`` commands as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.omconnect_process import omconnect

CANARY = "s3cr3t-canary-9f2"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_validate_names_file_line_key_and_a_suggestion(tmp_path: Path) -> None:
    write(tmp_path / "data.csv", "id\n1\n")
    write(
        tmp_path / "bad.yaml",
        "name: bad\nsource:\n  connector: csv\n  pth: data.csv\ntopic: t\n",
    )
    result = omconnect("validate", "bad.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "bad.yaml:4: source.pth: " in result.stderr
    assert '"path"' in result.stderr


def test_run_refuses_an_invalid_file_before_anything_runs(tmp_path: Path) -> None:
    write(tmp_path / "bad.yaml", "name: bad\nsource: {connector: cvs, path: x.csv}\n")
    result = omconnect("run", "bad.yaml", "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert 'bad.yaml:2: source.connector: unknown source connector "cvs"' in result.stderr
    assert 'did you mean "csv"' in result.stderr
    assert not (tmp_path / ".omconnect").exists(), "nothing may run for an invalid file"


def test_malformed_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    write(tmp_path / "broken.yaml", "name: x\nsource:\n  connector: csv\n   path: [\n")
    result = omconnect("validate", "broken.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.startswith("broken.yaml:")


def test_secrets_never_appear_in_output(tmp_path: Path) -> None:
    write(tmp_path / "password.txt", CANARY + "\n")
    write(
        tmp_path / "secret.yaml",
        "name: secret\n"
        "broker: embedded://.omconnect\n"
        "source: {connector: csv, path: 'in/${file:password.txt}/*.csv'}\n"
        "topic: t\n",
    )
    for args in (["validate", "secret.yaml"], ["validate", "--print", "secret.yaml"]):
        result = omconnect(*args, cwd=tmp_path)
        assert CANARY not in result.stdout + result.stderr
    ran = omconnect("run", "secret.yaml", "--once", cwd=tmp_path)
    assert CANARY not in ran.stdout + ran.stderr


def test_connectors_list_and_describe() -> None:
    listing = omconnect("connectors", "list", cwd=Path.cwd())
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    for name in ("csv", "jsonl", "parquet", "avro"):
        assert any(line.split()[:2] == [name, "source"] for line in lines), name
        assert any(line.split()[:2] == [name, "sink"] for line in lines), name
    assert any(line.split()[:2] == ["filter", "transform"] for line in lines)
    described = omconnect("connectors", "describe", "csv", cwd=Path.cwd())
    assert described.returncode == 0
    assert "batch_size" in described.stdout and "path" in described.stdout
    unknown = omconnect("connectors", "describe", "nope", cwd=Path.cwd())
    assert unknown.returncode != 0


def test_offsets_list_set_reset_and_topics_list(tmp_path: Path) -> None:
    write(tmp_path / "in.csv", "id,name\n1,a\n2,b\n3,c\n")
    write(
        tmp_path / "p.yaml",
        "name: p\nsource: {connector: csv, path: in.csv}\ntopic: items\n"
        "sink: {connector: jsonl, path: out/}\n",
    )
    assert omconnect("run", "p.yaml", "--once", cwd=tmp_path).returncode == 0

    listed = [
        json.loads(x)
        for x in omconnect("offsets", "list", "p.yaml", cwd=tmp_path).stdout.splitlines()
    ]
    source = [x for x in listed if x["kind"] == "source"]
    sink = [x for x in listed if x["kind"] == "sink"]
    assert source[0]["partition"] == {"file": "in.csv"} and source[0]["offset"]["row"] == 3
    assert sink == [
        {"kind": "sink", "partition": {"topic": "items", "partition": 0}, "offset": {"offset": 3}}
    ]

    topics = omconnect("topics", "list", cwd=tmp_path)
    assert any(line.split() == ["items", "1", "3"] for line in topics.stdout.splitlines())

    # Rewind the source to row 1: the next run publishes rows 2 and 3 again.
    moved = omconnect(
        "offsets",
        "set",
        "p.yaml",
        "--partition",
        '{"file": "in.csv"}',
        "--offset",
        '{"row": 1}',
        cwd=tmp_path,
    )
    assert moved.returncode == 0, moved.stderr
    assert omconnect("run", "p.yaml", "--once", cwd=tmp_path).returncode == 0
    topics = omconnect("topics", "list", cwd=tmp_path)
    assert any(line.split() == ["items", "1", "5"] for line in topics.stdout.splitlines())

    reset = omconnect("offsets", "reset", "p.yaml", cwd=tmp_path)
    assert "removed 1 source position" in reset.stdout
    assert omconnect("run", "p.yaml", "--once", cwd=tmp_path).returncode == 0
    topics = omconnect("topics", "list", cwd=tmp_path)
    assert any(line.split() == ["items", "1", "8"] for line in topics.stdout.splitlines())


def test_offsets_export_then_import_into_a_fresh_state(tmp_path: Path) -> None:
    write(tmp_path / "in.csv", "id\n1\n2\n")
    write(tmp_path / "p.yaml", "name: p\nsource: {connector: csv, path: in.csv}\ntopic: items\n")
    assert omconnect("run", "p.yaml", "--once", cwd=tmp_path).returncode == 0
    exported = omconnect("offsets", "export", "p.yaml", cwd=tmp_path)
    assert exported.returncode == 0
    (tmp_path / "offsets.jsonl").write_text(exported.stdout)
    omconnect("offsets", "reset", "p.yaml", cwd=tmp_path)
    assert omconnect("offsets", "export", "p.yaml", cwd=tmp_path).stdout == ""
    imported = omconnect("offsets", "import", "p.yaml", "offsets.jsonl", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert omconnect("offsets", "export", "p.yaml", cwd=tmp_path).stdout == exported.stdout
    write(tmp_path / "bad.jsonl", '{"partition": 1}\n')
    refused = omconnect("offsets", "import", "p.yaml", "bad.jsonl", cwd=tmp_path)
    assert refused.returncode == 2 and "offset row 0" in refused.stderr
