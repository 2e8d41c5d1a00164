"""``schedule:`` evaluated by croniter, as Airflow and Dagster evaluate it, with omconnect's
own errors: five fields only, and the field at fault named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from omconnect.runtime.config.cron import parse_cron


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # A range that wraps past midnight, the last day of the month, the 2nd Friday.
        ("0 22-1 * * *", datetime(2024, 5, 1, 23, 30), datetime(2024, 5, 2, 0, 0)),
        ("0 22-1 * * *", datetime(2024, 5, 2, 1, 0), datetime(2024, 5, 2, 22, 0)),
        ("30 6 L * *", datetime(2024, 2, 2), datetime(2024, 2, 29, 6, 30)),
        ("0 9 * * 5#2", datetime(2024, 5, 1), datetime(2024, 5, 10, 9, 0)),
        (
            "* * * * *",
            datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC),
            datetime(2030, 1, 1, 12, 1, tzinfo=UTC),
        ),
    ],
)
def test_croniter_syntax_and_ticks(expression: str, after: datetime, expected: datetime) -> None:
    assert parse_cron(expression).next_after(after) == expected


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        (
            "0 0 * * * *",
            "expected 5 fields (minute hour day-of-month month day-of-week) or an alias like "
            "@daily, got 6",
        ),
        ("0 12,25 * * *", 'hour "12,25": 25 is out of range 0-23'),
        ("0 0 * JANX *", 'month "JANX": "JANX" is not a number or a name (JAN-DEC)'),
        ("0 0 * * 1-9", 'day of week "1-9": 9 is out of range 0-7'),
        ("H * * * *", 'minute "H": "H" is not a number'),
    ],
)
def test_errors_name_the_field(expression: str, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_cron(expression)
    assert str(caught.value) == f'invalid cron expression "{expression}": {problem}'
