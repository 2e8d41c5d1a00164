"""The safe YAML reader: positions, limits and refusals."""

from __future__ import annotations

import pytest

from omconnect.runtime.config.yaml_source import YamlSyntaxError, parse_yaml


def test_positions_of_keys_and_items() -> None:
    document = parse_yaml("a:\n  b: [1, 2]\n  c:\n    - x: 1\n    - y\n")
    assert document.data == {"a": {"b": [1, 2], "c": [{"x": 1}, "y"]}}
    assert document.positions[("a",)] == (1, 1)
    assert document.positions[("a", "b")] == (2, 3)
    assert document.positions[("a", "b", 1)] == (2, 10)
    assert document.positions[("a", "c", 0, "x")] == (4, 7)
    assert document.positions[("a", "c", 1)] == (5, 7)
    assert document.line_of(("a", "c", 1, "missing")) == 5


def test_non_string_keys_become_their_text() -> None:
    assert parse_yaml("1: a\non: b\nnull: c\n").data == {"1": "a", "on": "b", "null": "c"}


def test_complex_keys_and_bad_explicit_scalars_are_issues() -> None:
    document = parse_yaml("? [a]\n: 1\nn: !!int abc\nf: !!float x\nok: 1\ne: !!int ''\n")
    assert document.data == {"n": None, "f": None, "ok": 1, "e": None}
    assert [(i.path, i.message, i.line) for i in document.issues] == [
        ((), "a key must be a plain scalar", 1),
        (("n",), '"abc" is not a valid int', None),
        (("f",), '"x" is not a valid float', None),
        (("e",), '"" is not a valid int', None),
    ]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("a: 1\n---\nb: 2\n", 2, "expected a single document"),
        ("[" * 2000 + "]" * 2000, 1, "nested"),
        ("a: &x [*x]\n", 1, "an alias refers to a node that contains it"),
        ("a: 1\nb: *nope\n", 2, "found undefined alias"),
        ("a: \x07\n", 1, "unacceptable character #x0007"),
        ("a: b\n  c: d\n", 2, "mapping values are not allowed here"),
    ],
)
def test_refusals(text: str, line: int, fragment: str) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        parse_yaml(text)
    assert caught.value.line == line
    assert fragment in caught.value.message


def test_depth_limit_below_the_parser_limit() -> None:
    with pytest.raises(YamlSyntaxError, match="nested deeper than 64 levels"):
        parse_yaml("[" * 70 + "]" * 70)


def test_alias_reuse_within_limits_is_fine() -> None:
    document = parse_yaml("a: &a {x: 1}\nb: *a\nc: *a\n")
    assert document.data == {"a": {"x": 1}, "b": {"x": 1}, "c": {"x": 1}}
    assert document.data["b"] is not document.data["c"]


def test_merge_of_a_refused_mapping_is_an_issue_not_a_crash() -> None:
    document = parse_yaml("a:\n  <<: !foo {x: 1}\n  y: 2\n")
    assert document.data == {"a": {"y": 2}}
    assert [issue.message for issue in document.issues] == ['tag "!foo" is not allowed']
