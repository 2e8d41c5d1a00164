"""Durations, sizes and cron expressions."""

from __future__ import annotations

from datetime import datetime

import pytest

from omconnect.runtime.config import parse_cron, parse_duration, parse_size


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (5, 5.0),
        (0.2, 0.2),
        ("200ms", 0.2),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("1d", 86400.0),
        ("10", 10.0),
        (" 3 S ", 3.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", [True, -1, "-5s", "5 weeks", "s", "", None, [], "nan", "inf"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (1024, 1024),
        (2.0, 2),
        ("16MiB", 16 * 1024**2),
        ("16MB", 16 * 10**6),
        ("512KiB", 512 * 1024),
        ("1GB", 10**9),
        ("1.5 GiB", 3 * 1024**3 // 2),
        ("100", 100),
        ("7b", 7),
        ("2tib", 2 * 1024**4),
    ],
)
def test_sizes(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [False, -1, 1.5, "16QB", "MiB", "", "-1MB", None, {}])
def test_bad_sizes(value: object) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(value)


def test_cron_fields_lists_ranges_steps_and_names() -> None:
    schedule = parse_cron("0,30 8-18/2 1,15 JAN-mar mon-fri")
    assert schedule.minutes == {0, 30}
    assert schedule.hours == {8, 10, 12, 14, 16, 18}
    assert schedule.days_of_month == {1, 15}
    assert schedule.months == {1, 2, 3}
    assert schedule.days_of_week == {1, 2, 3, 4, 5}
    assert parse_cron("5/20 * * * 7").minutes == {5, 25, 45}
    assert parse_cron("* * * * 7").days_of_week == {0}


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/15 * * * *", datetime(2024, 5, 1, 10, 7, 30), datetime(2024, 5, 1, 10, 15)),
        ("@hourly", datetime(2024, 5, 1, 23, 0), datetime(2024, 5, 2, 0, 0)),
        ("@daily", datetime(2024, 12, 31, 12, 0), datetime(2025, 1, 1, 0, 0)),
        ("0 9 * * MON", datetime(2024, 5, 1, 12, 0), datetime(2024, 5, 6, 9, 0)),
        # Both day fields restricted: either matches (the 13th, or any Friday).
        ("0 0 13 * 5", datetime(2024, 5, 1, 0, 0), datetime(2024, 5, 3, 0, 0)),
        ("0 0 29 2 *", datetime(2024, 3, 1), datetime(2028, 2, 29)),
    ],
)
def test_cron_next_after(expression: str, after: datetime, expected: datetime) -> None:
    assert parse_cron(expression).next_after(after) == expected


def test_cron_that_never_fires() -> None:
    assert parse_cron("0 0 30 2 *").next_after(datetime(2024, 1, 1)) is None


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", 'minute "60": 60 is out of range 0-59'),
        ("* 24 * * *", 'hour "24": 24 is out of range 0-23'),
        ("* * 0 * *", 'day of month "0": 0 is out of range 1-31'),
        ("* * * 13 *", 'month "13": 13 is out of range 1-12'),
        ("* * * * 8", 'day of week "8": 8 is out of range 0-7'),
        ("*/x * * * *", 'step "x" must be a positive integer'),
        ("1,,2 * * * *", "empty list item"),
        ("a * * * *", '"a" is not a number'),
        ("@reboot", "unknown alias"),
    ],
)
def test_bad_cron(expression: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="invalid cron expression") as caught:
        parse_cron(expression)
    assert fragment in str(caught.value)
