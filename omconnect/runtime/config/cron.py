"""Five-field cron expressions, as used by a pipeline's ``schedule:``.

Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC), day of week
(0-7 or SUN-SAT, 0 and 7 both Sunday). Each field is ``*`` or a comma list of ``N``, ``A-B``,
``*/S``, ``A-B/S`` or ``A/S`` (from A to the field's maximum). Aliases: ``@yearly``,
``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight``, ``@hourly``. As in Vixie
cron, when both day fields are restricted a day matches if either matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

# (field name, lowest, highest, names mapped to numbers)
_FIELDS: list[tuple[str, int, int, dict[str, int]]] = [
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTH_NAMES)}),
    ("day of week", 0, 7, {name: i for i, name in enumerate(_DAY_NAMES)}),
]

# A schedule that matches no day within this horizon (e.g. "0 0 30 2 *") never fires.
_SEARCH_DAYS = 366 * 5


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression: the values each field allows."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday; 7 is folded into 0
    day_of_month_restricted: bool
    day_of_week_restricted: bool

    def matches_day(self, day: datetime) -> bool:
        """Whether the schedule fires on some minute of ``day``'s date."""
        if day.month not in self.months:
            return False
        dom = day.day in self.days_of_month
        dow = (day.isoweekday() % 7) in self.days_of_week
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return dom or dow
        return dom and dow

    def next_after(self, moment: datetime) -> datetime | None:
        """The first firing time strictly after ``moment`` (same tzinfo), or None if never."""
        start = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(_SEARCH_DAYS):
            if self.matches_day(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        return None


def parse_cron(expression: str) -> CronSchedule:
    """Parse a five-field cron expression or an ``@alias``.

    Raises:
        ValueError: the message says which field is wrong and what was expected.
    """
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            known = ", ".join(ALIASES)
            raise ValueError(f'invalid cron expression "{expression}": unknown alias ({known})')
        text = ALIASES[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(
            f'invalid cron expression "{expression}": expected 5 fields (minute hour '
            f"day-of-month month day-of-week) or an alias like @daily, got {len(parts)}"
        )
    values = []
    for part, (field, low, high, names) in zip(parts, _FIELDS, strict=True):
        try:
            values.append(_parse_field(part, low, high, names))
        except ValueError as exc:
            raise ValueError(
                f'invalid cron expression "{expression}": {field} "{part}": {exc}'
            ) from None
    days_of_week = frozenset(0 if day == 7 else day for day in values[4])
    return CronSchedule(
        expression=expression,
        minutes=values[0],
        hours=values[1],
        days_of_month=values[2],
        months=values[3],
        days_of_week=days_of_week,
        day_of_month_restricted=not parts[2].startswith("*"),
        day_of_week_restricted=not parts[4].startswith("*"),
    )


def check_cron(expression: str) -> str:
    """Validate ``expression`` (pydantic after-validator); returns it unchanged."""
    parse_cron(expression)
    return expression


def _parse_field(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    allowed: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError("empty list item")
        span, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) < 1:
                raise ValueError(f'step "{step_text}" must be a positive integer')
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, _, last_text = span.partition("-")
            first = _value(first_text, low, high, names)
            last = _value(last_text, low, high, names)
            if first > last:
                raise ValueError(f"range {first}-{last} runs backwards")
        else:
            first = _value(span, low, high, names)
            last = high if slash else first
        allowed.update(range(first, last + 1, step))
    return frozenset(allowed)


def _value(text: str, low: int, high: int, names: dict[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f'"{text}" is not a number')
    number = int(text)
    if not low <= number <= high:
        raise ValueError(f"{number} is out of range {low}-{high}")
    return number
