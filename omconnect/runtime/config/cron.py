"""Five-field cron expressions, as used by a pipeline's ``schedule:``, evaluated by croniter.

Why croniter: Airflow and Dagster, which run the same pipeline files, evaluate schedules with
it, so a schedule fires at the same times under ``serve`` as under either orchestrator; and
it already gets the calendar's corners right (both day fields restricted: a day matches if
either does, as in Vixie cron; February 29th; ``L``, ``W`` and ``#``; ranges that wrap, such
as hours ``22-2``).

What stays omconnect's: the five-field form (croniter also takes seconds and years), the
aliases (``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight``,
``@hourly``) and errors that say which field is wrong and why, which the config loader
prefixes with ``file:line: schedule:``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from croniter import CroniterBadDateError, CroniterError, croniter

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# (field name, lowest, highest, what a name in it looks like)
_FIELDS = (
    ("minute", 0, 59, ""),
    ("hour", 0, 23, ""),
    ("day of month", 1, 31, ""),
    ("month", 1, 12, " or a name (JAN-DEC)"),
    ("day of week", 0, 7, " or a name (SUN-SAT)"),
)


@dataclass(frozen=True)
class CronSchedule:
    """A valid cron expression (``parse_cron``); croniter computes its ticks."""

    expression: str
    """As written in the pipeline file."""
    fields: str
    """The five fields croniter evaluates (an alias expanded)."""

    def next_after(self, moment: datetime) -> datetime | None:
        """The first firing time strictly after ``moment`` (same tzinfo), or None if never."""
        try:
            tick: datetime = croniter(self.fields, moment).get_next(datetime)
        except CroniterBadDateError:  # e.g. "0 0 30 2 *": croniter searched and gave up
            return None
        return tick

    @property
    def minutes(self) -> frozenset[int]:
        return self._allowed(0)

    @property
    def hours(self) -> frozenset[int]:
        return self._allowed(1)

    @property
    def days_of_month(self) -> frozenset[int]:
        return self._allowed(2)

    @property
    def months(self) -> frozenset[int]:
        return self._allowed(3)

    @property
    def days_of_week(self) -> frozenset[int]:
        """0 is Sunday; 7 is folded into 0."""
        return self._allowed(4) - {7}

    def _allowed(self, index: int) -> frozenset[int]:
        """The numbers field ``index`` allows (``L`` and the like are left out)."""
        values = croniter(self.fields).expanded[index]
        if values == ["*"]:
            _, low, high, _ = _FIELDS[index]
            return frozenset(range(low, high + 1))
        return frozenset(value for value in values if isinstance(value, int))


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
    if not _accepted(parts):
        raise ValueError(f'invalid cron expression "{expression}": {_problem(parts)}')
    return CronSchedule(expression=expression, fields=" ".join(parts))


def check_cron(expression: str) -> str:
    """Validate ``expression`` (pydantic after-validator); returns it unchanged."""
    parse_cron(expression)
    return expression


def _accepted(parts: list[str]) -> bool:
    try:
        croniter(" ".join(parts))
    except (CroniterError, ValueError):
        return False
    return True


def _problem(parts: list[str]) -> str:
    """Which field croniter refuses and why, in words: its own errors name neither."""
    for index, (part, (field, low, high, names)) in enumerate(zip(parts, _FIELDS, strict=True)):
        for item in part.split(","):
            alone = ["*"] * 5
            alone[index] = item
            if item and _accepted(alone):
                continue
            return f'{field} "{part}": {_item_problem(item, low, high, names)}'
    return "croniter does not accept these fields together"


def _item_problem(item: str, low: int, high: int, names: str) -> str:
    if not item:
        return "empty list item"
    span, slash, step = item.partition("/")
    if slash and not (step.isascii() and step.isdigit() and int(step) > 0):
        return f'step "{step}" must be a positive integer'
    for value in span.split("-"):
        if value.isascii() and value.isdigit() and not low <= int(value) <= high:
            return f"{int(value)} is out of range {low}-{high}"
    return f'"{item}" is not a number{names}'
