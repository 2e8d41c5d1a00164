"""The filter expression language: what it computes and how it reports mistakes."""

from __future__ import annotations

import datetime
import decimal

import pyarrow as pa
import pytest

from omconnect.connectors.api.errors import ConfigError
from omconnect.transforms.expression import parse_expression


@pytest.fixture
def rows() -> pa.RecordBatch:
    return pa.record_batch(
        {
            "amount": [10, -2, None, 5, 0],
            "status": ["paid", "void", "shipped", None, "PAID"],
            "price": pa.array(
                [decimal.Decimal(x) for x in ("1.50", "0.00", "2.25", "9.99", "3.00")],
                pa.decimal128(6, 2),
            ),
            "ts": pa.array(
                [datetime.datetime(2024, 1, d, tzinfo=datetime.UTC) for d in (1, 2, 3, 4, 5)],
                pa.timestamp("us", "UTC"),
            ),
            "order id": [1, 2, 3, 4, 5],
        }
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("amount > 0", [True, False, None, True, False]),
        ("amount > 0 and status in ('paid', 'shipped')", [True, False, None, None, False]),
        ("amount > 0 AND status IN ('paid', 'shipped')", [True, False, None, None, False]),
        ("amount = 5 OR status = 'void'", [False, True, None, True, False]),
        ("amount <> 5", [True, True, None, False, True]),
        ("NOT amount >= 0", [False, True, None, False, False]),
        ("status not in ('void')", [True, False, True, None, True]),
        ("status is null", [False, False, False, True, False]),
        ("status IS NOT NULL", [True, True, True, False, True]),
        ("0 <= amount < 10", [False, False, None, True, True]),
        ("amount * 2 + 1 = 21", [True, False, None, False, False]),
        ("amount - 1 = -3", [False, True, None, False, False]),
        ("amount / 4 = 2.5", [True, False, None, False, False]),
        ("amount % 3 = 1", [True, False, None, False, False]),
        ("amount / 0 is null", [True, True, True, True, True]),
        ("lower(status) = 'paid'", [True, False, False, None, True]),
        ("upper(status) = 'VOID'", [False, True, False, None, False]),
        ("length(status) = 4", [True, True, False, None, True]),
        ("starts_with(status, 'sh') or ends_with(status, 'id')", [True, True, True, None, False]),
        ("contains(status, 'ai')", [True, False, False, None, False]),
        ("coalesce(amount, 7) = 7", [False, False, True, False, False]),
        ("price >= 2", [False, False, True, True, True]),
        ("price = '2.25'", [False, False, True, False, False]),
        ("ts >= '2024-01-04T00:00:00'", [False, False, False, True, True]),
        ("ts < '2024-01-02T00:00:00+00:00'", [True, False, False, False, False]),
        ("`order id` in (2, 4)", [False, True, False, True, False]),
        ("status = 'it''s'", [False, False, False, None, False]),
        ("TRUE", [True, True, True, True, True]),
        ("  amount\n  > 0", [True, False, None, True, False]),
    ],
)
def test_expression_values(rows: pa.RecordBatch, text: str, expected: list[bool | None]) -> None:
    assert parse_expression(text).condition(rows).to_pylist() == expected


def test_columns_records_what_the_expression_reads() -> None:
    expression = parse_expression("amount > 0 and `order id` = 1 and amount < 9")
    assert set(expression.columns) == {"amount", "order id"}
    assert expression.columns["amount"] == 1
    assert expression.columns["order id"] == 16


def test_unknown_column_names_it_with_position_and_suggestion(rows: pa.RecordBatch) -> None:
    expression = parse_expression("amount > 0 and stauts = 'paid'")
    with pytest.raises(ConfigError) as caught:
        expression.condition(rows)
    message = str(caught.value)
    assert '"stauts"' in message
    assert "position 16" in message
    assert 'did you mean "status"' in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("amount >", "invalid syntax"),
        ("'open", "unterminated string"),
        ("amount.total > 1", "unsupported syntax 'amount.total' at position 1"),
        ("amount ** 2 > 1", "unsupported operator"),
        ("lowr(status) = 'x'", 'unknown function "lowr" at position 1 (did you mean "lower"?)'),
        ("starts_with(status, amount)", "must be a string at position 21"),
        ("starts_with(status)", "takes 2 argument"),
        ("amount is 3", "'is' must be followed by null"),
        ("amount in (status)", "'in' takes a list of literals at position 12"),
        ("[amount][0] > 1", "unsupported syntax"),
        ("__import__('os')", 'unknown function "__import__"'),
        ("", "empty"),
    ],
)
def test_invalid_expressions_are_config_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_expression(text)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("status > 1", "cannot evaluate 'status > 1'"),
        ("lower(amount) = 'x'", "cannot evaluate 'lower(amount)'"),
        ("amount in ('a', 'b')", "cannot evaluate"),
        ("amount + 1", "is not a condition"),
    ],
)
def test_type_mismatches_are_config_errors(rows: pa.RecordBatch, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_expression(text).condition(rows)
    assert fragment in str(caught.value)


def test_no_python_evaluation_happens() -> None:
    # A call to a Python builtin is just an unknown function, never executed.
    with pytest.raises(ConfigError, match='unknown function "exec"'):
        parse_expression("exec('raise SystemExit')")
