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

Time zones: a schedule is evaluated in an IANA zone (``zoneinfo``), and croniter decides the
daylight-saving corners: on a spring-forward day a tick in the skipped hour fires at the first
moment after the gap (``30 2 * * *`` in Europe/Berlin fires at 03:00 CEST on 31 March 2024);
on a fall-back day a wall-clock time that happens twice fires once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

_HAIR = timedelta(microseconds=1)

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

    def next_after(self, moment: datetime, zone: tzinfo | None = None) -> datetime | None:
        """The first firing time strictly after ``moment``, or None if never.

        The fields are read as wall-clock times in ``zone`` (default: ``moment``'s own
        tzinfo); the tick is returned in ``moment``'s tzinfo.
        """
        start = moment.astimezone(zone) if zone is not None else moment
        try:
            tick: datetime = croniter(self.fields, start).get_next(datetime)
        except CroniterBadDateError:  # e.g. "0 0 30 2 *": croniter searched and gave up
            return None
        return tick.astimezone(moment.tzinfo) if zone is not None else tick

    def latest_ticks(
        self, after: datetime, until: datetime, limit: int, zone: tzinfo = UTC
    ) -> list[datetime]:
        """The last ``limit`` (at most) firing times strictly after ``after`` and at or before
        ``until``, oldest first, in UTC; the fields are wall-clock times in ``zone``.

        Walks back from ``until``, so a long gap costs ``limit`` steps, not one per tick.
        """
        # croniter's get_prev is strict: start a hair after ``until`` to include it.
        ticks = croniter(self.fields, (until + _HAIR).astimezone(zone))
        found: list[datetime] = []
        while len(found) < limit:
            try:
                tick = ticks.get_prev(datetime).astimezone(UTC)
            except CroniterBadDateError:
                break
            if tick <= after:
                break
            found.append(tick)
        return found[::-1]

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


def check_timezone(name: str) -> str:
    """Validate an IANA time zone name (pydantic after-validator); returns it unchanged.

    Raises:
        ValueError: ``zoneinfo`` does not know ``name``.
    """
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f'unknown time zone "{name}": expected an IANA name such as "UTC", '
            '"Europe/Berlin" or "America/New_York"'
        ) from None
    return name


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
